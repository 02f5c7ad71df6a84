package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/console"
	"github.com/strata-io/strata/gateway"
)

// newLogger logs to stderr, as every Strata process does.
func newLogger(c *ucli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
}

var debugFlag = &ucli.BoolFlag{Name: "debug", EnvVars: envVars("debug"), Usage: "log at debug level"}

var clusterFlag = &ucli.StringFlag{Name: "cluster", Value: "strata", EnvVars: envVars("cluster"), Usage: "cluster name: the NATS subject prefix strata.<cluster>"}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// adminServer serves /healthz (the process is up), /readyz (it accepts
// Kafka clients), /metrics (Prometheus: the process's registry, with the
// Go runtime and process collectors) and, on a gateway, its admin API on
// addr; "" serves nothing, though the registry is still there for the
// components to register on.
type adminServer struct {
	srv      *http.Server
	mux      *http.ServeMux
	ready    atomic.Bool
	registry *prometheus.Registry
	// check, once set, says whether the process still serves: /readyz
	// answers 503 with its error.
	check atomic.Pointer[func() error]
}

// readyWhen marks the process started and has /readyz ask check from
// then on.
func (a *adminServer) readyWhen(check func() error) {
	a.check.Store(&check)
	a.ready.Store(true)
}

// mount adds routes (a gateway's admin API) once they can be served.
func (a *adminServer) mount(register func(*http.ServeMux)) {
	if a.mux != nil {
		register(a.mux)
	}
}

func startAdmin(addr string, sec adminSecurity, logger *slog.Logger) (*adminServer, error) {
	a := &adminServer{registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if addr == "" {
		return a, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	a.mux = mux
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "not ready: starting", http.StatusServiceUnavailable)
			return
		}
		if check := a.check.Load(); check != nil {
			if err := (*check)(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	a.srv = &http.Server{Handler: sec.guard(mux, isLoopback(ln.Addr())), ReadHeaderTimeout: 5 * time.Second}
	if sec.tls != nil {
		ln = tls.NewListener(ln, sec.tls)
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin server", "error", err)
		}
	}()
	return a, nil
}

func (a *adminServer) close() {
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a.srv.Shutdown(ctx)
	}
}

// mountGateway serves a gateway's admin API and its web console on the
// admin address; the returned func stops the console.
func (a *adminServer) mountGateway(gw *gateway.Gateway, logger *slog.Logger) (func(), error) {
	con, err := console.New(gw, logger.With("component", "console"))
	if err != nil {
		return nil, err
	}
	a.mount(gw.RegisterAdmin)
	a.mount(con.Register)
	return con.Close, nil
}
