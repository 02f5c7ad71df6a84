package cli

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	ucli "github.com/urfave/cli/v2"

	"github.com/strata-io/strata/auth"
	"github.com/strata-io/strata/gateway"
	"github.com/strata-io/strata/meta"
)

// Client side: every command that speaks Kafka (it has --brokers) also
// takes these, so it can reach a secured cluster.

func clientSecurityFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "sasl-mechanism", EnvVars: envVars("sasl-mechanism"),
			Usage: "authenticate with SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		&ucli.StringFlag{Name: "sasl-user", EnvVars: envVars("sasl-user"), Usage: "SASL user name"},
		&ucli.StringFlag{Name: "sasl-password", EnvVars: envVars("sasl-password"), Usage: "SASL password (better from STRATA_SASL_PASSWORD than on the command line)"},
		&ucli.BoolFlag{Name: "tls", EnvVars: envVars("tls"), Usage: "connect with TLS (implied by --tls-ca and --tls-cert)"},
		&ucli.StringFlag{Name: "tls-ca", EnvVars: envVars("tls-ca"), Usage: "PEM file of the CA certificates that sign the gateways' certificates (default: the system's)"},
		&ucli.StringFlag{Name: "tls-cert", EnvVars: envVars("tls-cert"), Usage: "PEM file of this client's certificate, for mTLS"},
		&ucli.StringFlag{Name: "tls-key", EnvVars: envVars("tls-key"), Usage: "PEM file of this client's private key, for mTLS"},
	}
}

// addFlagsBeside gives every command that has marker (--brokers,
// --admin-url) the flags extra makes, so no command can forget them.
func addFlagsBeside(cmds []*ucli.Command, marker ucli.Flag, extra func() []ucli.Flag) {
	for _, cmd := range cmds {
		for _, f := range cmd.Flags {
			if f == marker {
				cmd.Flags = append(cmd.Flags, extra()...)
				break
			}
		}
		addFlagsBeside(cmd.Subcommands, marker, extra)
	}
}

// clientSecurity turns the client security flags into kgo options.
func clientSecurity(c *ucli.Context) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if m := c.String("sasl-mechanism"); m != "" {
		user, pass := c.String("sasl-user"), c.String("sasl-password")
		if user == "" || pass == "" {
			return nil, errors.New("--sasl-mechanism needs --sasl-user and --sasl-password (or STRATA_SASL_PASSWORD)")
		}
		var mech sasl.Mechanism
		switch strings.ToUpper(m) {
		case auth.Plain:
			mech = plain.Auth{User: user, Pass: pass}.AsMechanism()
		case auth.ScramSHA256:
			mech = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
		case auth.ScramSHA512:
			mech = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", m)
		}
		opts = append(opts, kgo.SASL(mech))
	}
	if c.Bool("tls") || c.String("tls-ca") != "" || c.String("tls-cert") != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca := c.String("tls-ca"); ca != "" {
			pool, err := loadCertPool(ca)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			cfg.RootCAs = pool
		}
		if cert, key := c.String("tls-cert"), c.String("tls-key"); cert != "" || key != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("--tls-cert and --tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	return opts, nil
}

func loadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// Server side: a gateway's (and strata dev's) listeners and their
// security.

func listenerSecurityFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "listeners", EnvVars: envVars("listeners"),
			Usage: "Kafka listeners as NAME://host:port,... in place of --kafka-addr (listeners); a NAME that is a protocol needs no map entry, e.g. PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093"},
		&ucli.StringFlag{Name: "listener-security-protocol-map", EnvVars: envVars("listener-security-protocol-map"),
			Usage: "each listener's protocol as NAME:PROTOCOL,... with PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (listener.security.protocol.map)"},
		&ucli.StringFlag{Name: "advertised-listeners", EnvVars: envVars("advertised-listeners"),
			Usage: "what clients of each listener are told to connect to, as NAME://host:port,... (advertised.listeners; default: the bound address)"},
		&ucli.StringFlag{Name: "tls-cert", EnvVars: envVars("tls-cert"), Usage: "PEM certificate (chain) of SSL and SASL_SSL listeners"},
		&ucli.StringFlag{Name: "tls-key", EnvVars: envVars("tls-key"), Usage: "PEM private key of --tls-cert"},
		&ucli.StringFlag{Name: "tls-client-ca", EnvVars: envVars("tls-client-ca"),
			Usage: "PEM CA certificates that sign client certificates: TLS listeners then ask clients for one (mTLS); on an SSL listener the certificate's subject is the principal"},
		&ucli.StringFlag{Name: "tls-client-auth", Value: "required", EnvVars: envVars("tls-client-auth"),
			Usage: "with --tls-client-ca: required or requested (ssl.client.auth)"},
		&ucli.StringFlag{Name: "sasl-mechanisms", Value: strings.Join(auth.Mechanisms, ","), EnvVars: envVars("sasl-mechanisms"),
			Usage: "SASL mechanisms SASL listeners offer (sasl.enabled.mechanisms)"},
		&ucli.DurationFlag{Name: "connections-max-reauth", EnvVars: envVars("connections-max-reauth"),
			Usage: "a SASL session's lifetime: clients re-authenticate on their connection before it ends (connections.max.reauth.ms; 0: never)"},
		&ucli.BoolFlag{Name: "authorizer", EnvVars: envVars("authorizer"),
			Usage: "check every request against the ACLs (Kafka's authorizer.class.name); strata acl manages them"},
		&ucli.StringFlag{Name: "super-users", EnvVars: envVars("super-users"),
			Usage: "principals allowed everything, as User:admin;User:ops (super.users)"},
		&ucli.BoolFlag{Name: "allow-everyone-if-no-acl-found", EnvVars: envVars("allow-everyone-if-no-acl-found"),
			Usage: "a resource no ACL names is open to everyone (allow.everyone.if.no.acl.found)"},
	}
}

// authz is the gateway's authorization settings.
type authz struct {
	on           bool
	super        []string
	allowIfNoACL bool
}

// readAuthz reads --authorizer, --super-users and
// --allow-everyone-if-no-acl-found.
func readAuthz(c *ucli.Context) (authz, error) {
	a := authz{on: c.Bool("authorizer"), allowIfNoACL: c.Bool("allow-everyone-if-no-acl-found")}
	for _, p := range strings.FieldsFunc(c.String("super-users"), func(r rune) bool { return r == ';' || r == ',' }) {
		if p = strings.TrimSpace(p); !strings.HasPrefix(p, "User:") || p == "User:" {
			return a, fmt.Errorf("--super-users: %q is not User:NAME", p)
		}
		a.super = append(a.super, strings.TrimSpace(p))
	}
	if !a.on && (len(a.super) > 0 || a.allowIfNoACL) {
		return a, errors.New("--super-users and --allow-everyone-if-no-acl-found need --authorizer")
	}
	return a, nil
}

func (a authz) apply(cfg *gateway.Config) {
	cfg.Authorizer, cfg.SuperUsers, cfg.AllowEveryoneIfNoACL = a.on, a.super, a.allowIfNoACL
}

// readListeners builds a gateway's listeners from --listeners and the
// security flags; with no --listeners, one PLAINTEXT listener on addr,
// advertised as adv.
func readListeners(c *ucli.Context, addr, adv string) ([]gateway.Listener, error) {
	spec, advSpec := c.String("listeners"), c.String("advertised-listeners")
	if spec == "" {
		if advSpec != "" {
			return nil, errors.New("--advertised-listeners goes with --listeners; without them use --advertised-addr")
		}
		spec = "PLAINTEXT://" + addr
		if adv != "" {
			advSpec = "PLAINTEXT://" + adv
		}
	}
	ls, err := gateway.ParseListeners(spec, c.String("listener-security-protocol-map"), advSpec)
	if err != nil {
		return nil, err
	}
	var mechs []string
	for _, m := range strings.Split(c.String("sasl-mechanisms"), ",") {
		if m = strings.ToUpper(strings.TrimSpace(m)); m != "" {
			mechs = append(mechs, m)
		}
	}
	var tlsCfg *tls.Config
	for i := range ls {
		l := &ls[i]
		proto := strings.ToUpper(l.Protocol)
		if proto == gateway.SSL || proto == gateway.SASLSSL {
			if tlsCfg == nil {
				if tlsCfg, err = serverTLS(c); err != nil {
					return nil, err
				}
			}
			l.TLS = tlsCfg
		}
		if proto == gateway.SASLPlaintext || proto == gateway.SASLSSL {
			l.Mechanisms = mechs
		}
	}
	return ls, nil
}

// serverTLS loads the listeners' certificate and, for mTLS, the client CA.
func serverTLS(c *ucli.Context) (*tls.Config, error) {
	cert, key := c.String("tls-cert"), c.String("tls-key")
	if cert == "" || key == "" {
		return nil, errors.New("an SSL or SASL_SSL listener needs --tls-cert and --tls-key")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert and --tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if ca := c.String("tls-client-ca"); ca != "" {
		if cfg.ClientCAs, err = loadCertPool(ca); err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		switch c.String("tls-client-auth") {
		case "required":
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		case "requested":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		default:
			return nil, fmt.Errorf("--tls-client-auth %q: want required or requested", c.String("tls-client-auth"))
		}
	}
	return cfg, nil
}

// reauthMax is --connections-max-reauth, checked.
func reauthMax(c *ucli.Context) (time.Duration, error) {
	d := c.Duration("connections-max-reauth")
	if d < 0 {
		return 0, errors.New("--connections-max-reauth: want 0 (never) or more")
	}
	return d, nil
}

// bootstrapUserFlag names the first SASL/SCRAM user (Redpanda's
// RP_BOOTSTRAP_USER): created at start unless it exists.
var bootstrapUserFlag = &ucli.StringFlag{Name: "bootstrap-user", EnvVars: envVars("bootstrap-user"),
	Usage: "NAME:PASSWORD of a SASL/SCRAM user to create unless it exists, so a secured cluster is never open (better from STRATA_BOOTSTRAP_USER)"}

// readBootstrapUser splits --bootstrap-user.
func readBootstrapUser(c *ucli.Context) (user, password string, err error) {
	v := c.String("bootstrap-user")
	if v == "" {
		return "", "", nil
	}
	user, password, ok := strings.Cut(v, ":")
	if !ok || user == "" || password == "" {
		return "", "", errors.New("--bootstrap-user: want NAME:PASSWORD")
	}
	return user, password, nil
}

// randomPassword is 26 base32 letters: 128 random bits.
func randomPassword() string { return rand.Text() }

// announceBootstrapUser tells the user of strata dev --secure how to log
// in: a generated password once, when it was created.
func announceBootstrapUser(logger *slog.Logger, s devSecurity, created bool) {
	switch {
	case created && s.generated:
		logger.Info("SASL/SCRAM is on: this password is shown once; connect with --sasl-mechanism SCRAM-SHA-256 --sasl-user admin",
			"user", s.bootUser, "password", s.bootPassword)
	case created:
		logger.Info("bootstrap user created", "user", s.bootUser)
	case s.generated:
		logger.Info("SASL/SCRAM is on: user admin exists from an earlier run, with the password printed then (strata user create admin --password ... sets a new one)",
			"user", s.bootUser)
	}
}

// raftTLSFlags make the metadata Raft transport between nodes mutual TLS.
func raftTLSFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "raft-tls-cert", EnvVars: envVars("raft-tls-cert"), Usage: "PEM certificate this node presents to the others on --raft-addr (turns Raft TLS on; every node needs it)"},
		&ucli.StringFlag{Name: "raft-tls-key", EnvVars: envVars("raft-tls-key"), Usage: "PEM private key of --raft-tls-cert"},
		&ucli.StringFlag{Name: "raft-tls-ca", EnvVars: envVars("raft-tls-ca"), Usage: "PEM CA certificates: a node whose certificate they sign is a peer"},
	}
}

// readRaftTLS reads the Raft TLS flags; nil when none is given.
func readRaftTLS(c *ucli.Context) (*meta.RaftTLS, error) {
	cert, key, ca := c.String("raft-tls-cert"), c.String("raft-tls-key"), c.String("raft-tls-ca")
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	if cert == "" || key == "" || ca == "" {
		return nil, errors.New("Raft TLS needs --raft-tls-cert, --raft-tls-key and --raft-tls-ca together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--raft-tls-cert and --raft-tls-key: %w", err)
	}
	pool, err := loadCertPool(ca)
	if err != nil {
		return nil, fmt.Errorf("--raft-tls-ca: %w", err)
	}
	return &meta.RaftTLS{Cert: pair, CA: pool}, nil
}
