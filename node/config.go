package node

import (
	"strconv"
	"time"

	plog "github.com/strata-io/strata/node/log"
)

// logConfig turns a topic's configs (validated by meta) into a log
// config over the broker defaults.
func logConfig(defaults plog.Config, configs map[string]string) plog.Config {
	c := defaults
	ms := func(v string) time.Duration {
		n, _ := strconv.ParseInt(v, 10, 64)
		if n < 0 {
			return -1
		}
		return time.Duration(n) * time.Millisecond
	}
	num := func(v string) int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
	for k, v := range configs {
		switch k {
		case "local.retention.ms", "local.retention.bytes":
			continue // applied below, for tiered topics
		case "segment.bytes":
			c.SegmentBytes = num(v)
		case "segment.ms":
			c.SegmentAge = ms(v)
		case "retention.ms":
			c.RetentionAge = ms(v)
		case "retention.bytes":
			c.RetentionBytes = num(v)
		case "max.message.bytes":
			c.MaxMessageBytes = int(num(v))
		case "index.interval.bytes":
			c.IndexIntervalBytes = int(num(v))
		case "segment.index.bytes":
			c.IndexMaxBytes = int(num(v))
		case "flush.messages":
			c.FlushMessages = num(v)
		case "flush.ms":
			c.FlushInterval = ms(v)
		case "message.timestamp.type":
			c.LogAppendTime = v == "LogAppendTime"
		}
	}
	// A compacted topic without delete in its cleanup.policy keeps
	// everything the cleaner leaves: no retention by time or size.
	if !deletes(configs) {
		c.RetentionAge, c.RetentionBytes = -1, -1
	}
	// A tiered topic keeps local.retention.* on disk (-2: the total
	// retention); the tier enforces retention.* on what it uploaded.
	if tiered(configs) {
		if v, ok := configs["local.retention.ms"]; ok && v != "-2" {
			c.RetentionAge = ms(v)
		}
		if v, ok := configs["local.retention.bytes"]; ok && v != "-2" {
			c.RetentionBytes = num(v)
		}
	}
	return c
}

// tiered reports whether a topic's closed segments go to the tier.
func tiered(configs map[string]string) bool { return configs["remote.storage.enable"] == "true" }
