package console

import (
	"context"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-io/strata/gateway"
)

// Lag history for the sparklines: every sampleEvery the console asks the
// lag of every group (at most maxSampledGroups) and keeps the last
// lagSamples totals of each, in memory. It samples only once a page was
// asked for, so a gateway nobody looks at spends nothing on it.
const (
	sampleEvery      = 10 * time.Second
	lagSamples       = 60 // ten minutes
	maxSampledGroups = 500
)

type lagHistory struct {
	mu        sync.Mutex
	samples   map[string][]int64
	keep, max int
}

func newLagHistory(keep, max int) *lagHistory {
	return &lagHistory{samples: map[string][]int64{}, keep: keep, max: max}
}

// add records one round: groups not in it are forgotten.
func (h *lagHistory) add(round map[string]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for g := range h.samples {
		if _, ok := round[g]; !ok {
			delete(h.samples, g)
		}
	}
	for g, lag := range round {
		s := h.samples[g]
		if s == nil && len(h.samples) >= h.max {
			continue
		}
		s = append(s, lag)
		if len(s) > h.keep {
			s = s[len(s)-h.keep:]
		}
		h.samples[g] = s
	}
}

// spark is group's samples with now, the lag just read, as the last.
func (h *lagHistory) spark(group string, now int64) sparkline {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(sparkline(slices.Clone(h.samples[group])), now)
}

// startSampler starts sampling on the first page asked for.
func (c *Console) startSampler() {
	c.samplerMu.Lock()
	defer c.samplerMu.Unlock()
	if c.sampling {
		return
	}
	c.sampling = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			c.sample()
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (c *Console) sample() {
	ctx, cancel := context.WithTimeout(context.Background(), pageTimeout)
	defer cancel()
	lags, err := c.groupLags(ctx)
	if err != nil {
		c.logger.Debug("console: lag sample", "error", err)
		return
	}
	round := map[string]int64{}
	for g, l := range lags {
		if l.Error() == nil {
			round[g] = l.Lag.Total()
		}
	}
	c.lag.add(round)
}

// sparkline is a series of lag samples, drawn as an inline SVG.
type sparkline []int64

const sparkW, sparkH = 120, 24

// SVG draws the series scaled to its own maximum (a flat line at the
// bottom for all zeros); fewer than two samples draw nothing.
func (s sparkline) SVG() template.HTML {
	if len(s) < 2 {
		return ""
	}
	top := slices.Max(s)
	var pts []string
	for i, v := range s {
		x := float64(i) * sparkW / float64(len(s)-1)
		y := float64(sparkH - 2)
		if top > 0 {
			y = 1 + float64(sparkH-2)*(1-float64(v)/float64(top))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	return template.HTML(fmt.Sprintf(`<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="lag over the last %d samples, at most %d"><polyline points="%s"/></svg>`,
		sparkW, sparkH, sparkW, sparkH, len(s), top, strings.Join(pts, " ")))
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"bytes": func(n int64) string {
		switch {
		case n < 1<<10:
			return fmt.Sprintf("%d B", n)
		case n < 1<<20:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		case n < 1<<30:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		default:
			return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
		}
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"secs": func(s float64) string { return (time.Duration(s * float64(time.Second))).Round(time.Second).String() },
	"ids": func(ids []int32) string {
		var b []string
		for _, id := range ids {
			b = append(b, fmt.Sprint(id))
		}
		return strings.Join(b, ", ")
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"live": func(ns []gateway.NodeStatus) int {
		n := 0
		for _, s := range ns {
			if s.Live {
				n++
			}
		}
		return n
	},
	"ms": func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05") },
}
