package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/gateway"
)

// listenerFlags are the Kafka listener's bounds on what clients may hold:
// connections, request sizes, and bytes read but not yet handled. Their
// names are Kafka's broker settings.
func listenerFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.IntFlag{Name: "socket-request-max-bytes", Value: 100 << 20, EnvVars: envVars("socket-request-max-bytes"),
			Usage: "largest request accepted; a bigger one closes the connection (socket.request.max.bytes)"},
		&ucli.Int64Flag{Name: "queued-max-request-bytes", Value: 512 << 20, EnvVars: envVars("queued-max-request-bytes"),
			Usage: "bytes of requests read and not yet handled, across connections; past it the gateway stops reading until some are done (queued.max.request.bytes)"},
		&ucli.IntFlag{Name: "max-connections", EnvVars: envVars("max-connections"),
			Usage: "client connections at most; past it new ones wait to be accepted (max.connections; 0: unbounded)"},
		&ucli.IntFlag{Name: "max-connections-per-ip", EnvVars: envVars("max-connections-per-ip"),
			Usage: "client connections at most from one address; one more is closed at once (max.connections.per.ip; 0: unbounded)"},
		&ucli.StringFlag{Name: "max-connections-per-ip-overrides", EnvVars: envVars("max-connections-per-ip-overrides"),
			Usage: "per-address limits over --max-connections-per-ip, as host:count,host:count (max.connections.per.ip.overrides; 0 refuses the host)"},
		&ucli.DurationFlag{Name: "connections-max-idle", Value: 10 * time.Minute, EnvVars: envVars("connections-max-idle"),
			Usage: "close a connection that sends nothing for this long (connections.max.idle.ms; 0: never)"},
		&ucli.StringFlag{Name: "brokers", Value: "nodes", EnvVars: envVars("brokers"),
			Usage: "what Metadata lists as brokers: nodes (each at a port of a gateway that stands for it, so a partition's leader is among its replicas) or gateways (for gateways behind one load-balanced address; admin tools that check the leader against the replicas then complain)"},
		&ucli.IntFlag{Name: "node-port-stride", EnvVars: envVars("node-port-stride"),
			Usage: "with --brokers nodes: node N's port on each listener is the listener's port + stride × N, bound and advertised, for mapped ports (e.g. docker -p); 0: any free port"},
		&ucli.DurationFlag{Name: "request-stall-timeout", Value: 30 * time.Second, EnvVars: envVars("request-stall-timeout"),
			Usage: "close a connection whose request stops arriving midway for this long"},
	}
}

// listenerSettings are listenerFlags' values.
type listenerSettings struct {
	maxRequestBytes    int
	queuedMaxBytes     int64
	maxConns, maxPerIP int
	perIPOverrides     map[string]int
	idle, stall        time.Duration
	brokersGateways    bool
	nodePortStride     int32
}

func readListenerFlags(c *ucli.Context) (listenerSettings, error) {
	s := listenerSettings{maxRequestBytes: c.Int("socket-request-max-bytes"), queuedMaxBytes: c.Int64("queued-max-request-bytes"),
		maxConns: c.Int("max-connections"), maxPerIP: c.Int("max-connections-per-ip"),
		idle: c.Duration("connections-max-idle"), stall: c.Duration("request-stall-timeout")}
	switch {
	case s.maxRequestBytes < 1024:
		return s, fmt.Errorf("--socket-request-max-bytes %d: want at least 1024", s.maxRequestBytes)
	case s.queuedMaxBytes < 1<<20:
		return s, fmt.Errorf("--queued-max-request-bytes %d: want at least 1 MiB", s.queuedMaxBytes)
	case s.maxConns < 0 || s.maxPerIP < 0:
		return s, fmt.Errorf("--max-connections and --max-connections-per-ip: want 0 (unbounded) or more")
	case s.idle < 0 || s.stall <= 0:
		return s, fmt.Errorf("--connections-max-idle wants 0 (never) or more, --request-stall-timeout more than 0")
	}
	switch c.String("brokers") {
	case "nodes":
	case "gateways":
		s.brokersGateways = true
	default:
		return s, fmt.Errorf("--brokers %q: want nodes or gateways", c.String("brokers"))
	}
	if st := c.Int("node-port-stride"); st < 0 || st > 60000 {
		return s, fmt.Errorf("--node-port-stride %d: want 0 (any free port) to 60000", st)
	} else {
		s.nodePortStride = int32(st)
	}
	var err error
	s.perIPOverrides, err = parseIPOverrides(c.String("max-connections-per-ip-overrides"))
	return s, err
}

// parseIPOverrides reads host:count,host:count.
func parseIPOverrides(v string) (map[string]int, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	out := map[string]int{}
	for _, part := range strings.Split(v, ",") {
		i := strings.LastIndexByte(part, ':')
		if i <= 0 {
			return nil, fmt.Errorf("--max-connections-per-ip-overrides: %q is not host:count", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(part[i+1:]))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--max-connections-per-ip-overrides: %q: count must be 0 or more", part)
		}
		out[strings.Trim(strings.TrimSpace(part[:i]), "[]")] = n
	}
	return out, nil
}

// apply sets the gateway's listener bounds.
func (s listenerSettings) apply(cfg *gateway.Config) {
	cfg.MaxRequestBytes, cfg.QueuedMaxRequestBytes = s.maxRequestBytes, s.queuedMaxBytes
	cfg.MaxConnections, cfg.MaxConnectionsPerIP, cfg.MaxConnectionsPerIPOverride = s.maxConns, s.maxPerIP, s.perIPOverrides
	cfg.IdleTimeout, cfg.StallTimeout = s.idle, s.stall
	cfg.BrokersAreGateways, cfg.NodePortStride = s.brokersGateways, s.nodePortStride
	if s.idle == 0 {
		cfg.IdleTimeout = -1 // never
	}
}
