package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
	"github.com/strata-io/strata/tier"
)

// Source is what the console reads the cluster from: a gateway.
type Source interface {
	ClusterStatus(ctx context.Context) (gateway.ClusterStatus, error)
	TierStatus(ctx context.Context) (gateway.TierStatus, error)
	TierLs(ctx context.Context, topic string) (tier.LsReply, error)
	TopicPartitions(ctx context.Context, topic string) ([]meta.Partition, error)
	// Addr is the gateway's Kafka listener, which the console's own
	// client names as its seed.
	Addr() string
	// DialInternal opens a connection to the gateway's Kafka listener
	// that needs no authentication (gateway.Gateway.DialInternal), so
	// the console works whatever security the listeners demand.
	DialInternal(ctx context.Context, network, host string) (net.Conn, error)
}

//go:embed templates/*.html
var templateFS embed.FS

// Console serves the pages. Close stops its lag sampler and client.
type Console struct {
	src    Source
	logger *slog.Logger
	pages  map[string]*template.Template

	clientOnce sync.Once
	cl         *kgo.Client
	adm        *kadm.Client
	clientErr  error

	lag       *lagHistory
	samplerMu sync.Mutex
	sampling  bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

// pageTimeout bounds the cluster reads behind one page.
const pageTimeout = 5 * time.Second

// New returns a console reading from src.
func New(src Source, logger *slog.Logger) (*Console, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{src: src, logger: logger, pages: map[string]*template.Template{}, lag: newLagHistory(lagSamples, maxSampledGroups),
		stop: make(chan struct{})}
	for _, name := range []string{"cluster", "topics", "topic", "groups", "group", "tier", "manifest", "browse"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		c.pages[name] = t
	}
	return c, nil
}

// Close stops the sampler and closes the client.
func (c *Console) Close() {
	close(c.stop)
	c.wg.Wait()
	if c.cl != nil {
		c.cl.Close()
	}
}

// client is the console's Kafka client of its own gateway, made on first
// use (the gateway listens by then).
func (c *Console) client() (*kgo.Client, *kadm.Client, error) {
	c.clientOnce.Do(func() {
		c.cl, c.clientErr = kgo.NewClient(kgo.SeedBrokers(c.src.Addr()), kgo.ClientID("strata-console"), kgo.Dialer(c.src.DialInternal))
		if c.clientErr == nil {
			c.adm = kadm.NewClient(c.cl)
		}
	})
	return c.cl, c.adm, c.clientErr
}

// Register adds the console's pages to mux: / and below, leaving the
// admin API (/v1/...), /metrics and the health checks to their owners.
func (c *Console) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", c.page("cluster", c.cluster))
	mux.HandleFunc("GET /topics", c.page("topics", c.topics))
	mux.HandleFunc("GET /topics/{topic}", c.page("topic", c.topic))
	mux.HandleFunc("GET /groups", c.page("groups", c.groups))
	mux.HandleFunc("GET /groups/{group}", c.page("group", c.group))
	mux.HandleFunc("GET /tier", c.page("tier", c.tierStatus))
	mux.HandleFunc("GET /tier/{topic}", c.page("manifest", c.manifest))
	mux.HandleFunc("GET /browse", c.page("browse", c.browse))
}

// errNotFound makes a page answer 404.
var errNotFound = errors.New("not found")

// page renders one page from the data load returns; a failed load is
// shown on the page, with 404 or 503.
func (c *Console) page(name string, load func(ctx context.Context, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.startSampler()
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		start := time.Now()
		data, err := load(ctx, r)
		view := struct {
			Page  string
			Data  any
			Error string
			Took  time.Duration
			Now   time.Time
		}{Page: name, Data: data, Took: time.Since(start).Round(time.Millisecond), Now: time.Now()}
		code := http.StatusOK
		if err != nil {
			view.Error = err.Error()
			code = http.StatusServiceUnavailable
			if errors.Is(err, errNotFound) {
				code = http.StatusNotFound
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		if err := c.pages[name].Execute(w, view); err != nil {
			c.logger.Warn("console page", "page", name, "error", err)
		}
	}
}
