package cli

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// The admin address's security: TLS (and client certificates), and
// bearer tokens, one for the endpoints that change something (a restore)
// and, optionally, one for those that only read (status, ls, /metrics,
// the console; a browser gives it as the password of HTTP basic auth).
// /healthz and /readyz are always open.

func adminSecurityFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "admin-tls-cert", EnvVars: envVars("admin-tls-cert"), Usage: "PEM certificate: the admin address serves HTTPS"},
		&ucli.StringFlag{Name: "admin-tls-key", EnvVars: envVars("admin-tls-key"), Usage: "PEM private key of --admin-tls-cert"},
		&ucli.StringFlag{Name: "admin-tls-client-ca", EnvVars: envVars("admin-tls-client-ca"),
			Usage: "PEM CA certificates of admin clients: a client with a certificate they sign may do everything (mTLS)"},
		&ucli.StringFlag{Name: "admin-token", EnvVars: envVars("admin-token"),
			Usage: "bearer token the admin API's changing endpoints (tier restore) ask for (better from STRATA_ADMIN_TOKEN); without it or mTLS they answer only on a loopback address"},
		&ucli.StringFlag{Name: "admin-read-token", EnvVars: envVars("admin-read-token"),
			Usage: "bearer token the reading endpoints (status, ls, /metrics, the console) ask for; without it they are open (better from STRATA_ADMIN_READ_TOKEN)"},
	}
}

// adminSecurity is the admin address's TLS and tokens.
type adminSecurity struct {
	tls              *tls.Config
	token, readToken string
}

func readAdminSecurity(c *ucli.Context) (adminSecurity, error) {
	s := adminSecurity{token: c.String("admin-token"), readToken: c.String("admin-read-token")}
	cert, key, ca := c.String("admin-tls-cert"), c.String("admin-tls-key"), c.String("admin-tls-client-ca")
	if (cert == "") != (key == "") {
		return s, errors.New("--admin-tls-cert and --admin-tls-key go together")
	}
	if ca != "" && cert == "" {
		return s, errors.New("--admin-tls-client-ca needs --admin-tls-cert and --admin-tls-key")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return s, fmt.Errorf("--admin-tls-cert and --admin-tls-key: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		if ca != "" {
			if s.tls.ClientCAs, err = loadCertPool(ca); err != nil {
				return s, fmt.Errorf("--admin-tls-client-ca: %w", err)
			}
			s.tls.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return s, nil
}

// guard wraps the admin mux: reading endpoints need the read token when
// one is set, changing ones the admin token or a client certificate (or,
// with neither configured, a loopback listener).
func (s adminSecurity) guard(next http.Handler, loopback bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		certified := r.TLS != nil && len(r.TLS.VerifiedChains) > 0
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if _, pass, ok := r.BasicAuth(); ok {
			bearer = pass // a browser on the console: any user name, the token as password
		}
		is := func(token string) bool {
			return token != "" && subtle.ConstantTimeCompare([]byte(bearer), []byte(token)) == 1
		}
		reading := r.Method == http.MethodGet || r.Method == http.MethodHead
		switch {
		case certified, is(s.token):
		case reading && (s.readToken == "" || is(s.readToken)):
		case !reading && s.token == "" && (s.tls == nil || s.tls.ClientCAs == nil) && loopback:
		case !reading && s.token == "" && (s.tls == nil || s.tls.ClientCAs == nil):
			writeAdminError(w, http.StatusForbidden, "changing endpoints answer off loopback only with --admin-token or --admin-tls-client-ca set")
			return
		default:
			if reading {
				w.Header().Set("WWW-Authenticate", `Basic realm="strata"`) // browsers ask for it
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="strata"`)
			}
			writeAdminError(w, http.StatusUnauthorized, "this admin endpoint needs a bearer token (strata commands take --admin-token or STRATA_ADMIN_TOKEN)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeAdminError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}

// isLoopback reports whether a listener's address is on loopback only.
func isLoopback(addr net.Addr) bool {
	a, ok := addr.(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// adminClientFlags are how strata's admin commands reach a secured admin
// address.
func adminClientFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "admin-token", EnvVars: envVars("admin-token"), Usage: "bearer token of the admin API (better from STRATA_ADMIN_TOKEN)"},
		&ucli.StringFlag{Name: "admin-tls-ca", EnvVars: envVars("admin-tls-ca"), Usage: "PEM CA certificates that sign the admin address's (for an https --admin-url)"},
		&ucli.StringFlag{Name: "admin-tls-cert", EnvVars: envVars("admin-tls-cert"), Usage: "PEM client certificate for the admin address (mTLS)"},
		&ucli.StringFlag{Name: "admin-tls-key", EnvVars: envVars("admin-tls-key"), Usage: "PEM private key of --admin-tls-cert"},
	}
}

// adminHTTPClient is the HTTP client the admin flags ask for.
func adminHTTPClient(c *ucli.Context) (*http.Client, error) {
	ca, cert, key := c.String("admin-tls-ca"), c.String("admin-tls-cert"), c.String("admin-tls-key")
	if ca == "" && cert == "" && key == "" {
		return http.DefaultClient, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := loadCertPool(ca)
		if err != nil {
			return nil, fmt.Errorf("--admin-tls-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--admin-tls-cert and --admin-tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}
