package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/strata-io/strata/tier"
)

// MinIOBinEnv names the MinIO server binary the tests run; `make test`
// builds it into its cache and sets this.
const MinIOBinEnv = "STRATA_MINIO_BIN"

// MinIO is a real MinIO server for the test that started it, on a
// loopback address: a container when a Docker engine and the image are
// there, else a child process. Stop and Start simulate an outage: the same
// address and data come back.
type MinIO struct {
	t                 testing.TB
	bin, dir          string
	Endpoint          string // host:port
	console           string
	AccessKey, Secret string
	cmd               *exec.Cmd
	done              chan struct{}
	// container, when set, runs the server instead of cmd.
	container *dockerContainer
}

// StartMinIO starts MinIO in a container (Docker engine and image
// present) or as a child process, or skips the test with the reason when
// neither can run.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	if image, _ := dockerImage(MinIOImageEnv); image != "" {
		return Docker(t).MinIO()
	}
	bin := os.Getenv(MinIOBinEnv)
	if bin == "" {
		if p, err := exec.LookPath("minio"); err == nil {
			bin = p
		}
	}
	if bin == "" {
		t.Skipf("no MinIO server binary: run make test, which builds one, or set %s", MinIOBinEnv)
	}
	m := &MinIO{t: t, bin: bin, dir: t.TempDir(), Endpoint: freePort(t), console: freePort(t),
		AccessKey: "strata-test", Secret: "strata-test-secret"}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freePorts finds n consecutive free loopback ports and returns the
// first's address.
func freePorts(t testing.TB, n int) (host string, first int) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns := []net.Listener{ln}
		base := ln.Addr().(*net.TCPAddr).Port
		for p := base + 1; p < base+n; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if len(lns) == n {
			return "127.0.0.1", base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return "", 0
}

// MinIO runs MinIO from the image the Makefile builds, on the env's
// network as "minio" and on a loopback port.
func (d *DockerEnv) MinIO() *MinIO {
	d.t.Helper()
	image, reason := dockerImage(MinIOImageEnv)
	if image == "" {
		d.t.Skip(reason)
	}
	m := &MinIO{t: d.t, Endpoint: freePort(d.t), AccessKey: "strata-test", Secret: "strata-test-secret"}
	m.container = d.run(image, "minio", []string{"server", "--address", ":9000", "/data"},
		map[string]string{"MINIO_ROOT_USER": m.AccessKey, "MINIO_ROOT_PASSWORD": m.Secret, "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"},
		map[string]string{"9000/tcp": m.Endpoint}, wait.ForLog("API: "))
	m.waitLive(nil)
	return m
}

// PID is the server's process id while it runs as a process here, or 0.
func (m *MinIO) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// InContainer reports whether the server runs in a container.
func (m *MinIO) InContainer() bool { return m.container != nil }

// Start runs the server (again) and waits until it answers.
func (m *MinIO) Start() {
	m.t.Helper()
	if m.container != nil {
		m.container.start(m.t)
		m.waitLive(nil)
		return
	}
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Endpoint, "--console-address", m.console,
		"--certs-dir", filepath.Join(m.dir, "certs"), filepath.Join(m.dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.Secret,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "HOME="+m.dir)
	logf, err := os.Create(filepath.Join(m.dir, "minio.log"))
	if err != nil {
		m.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(m.done) }()
	m.waitLive(m.done)
}

// waitLive waits until the server answers its health check; exited, if
// set, is closed when a child process has died.
func (m *MinIO) waitLive(exited chan struct{}) {
	m.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + m.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(m.dir, "minio.log"))
			m.t.Fatalf("minio exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatal("minio not live within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an outage, not a shutdown).
func (m *MinIO) Stop() {
	if m.container != nil {
		m.container.kill(m.t)
		return
	}
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.cmd = nil
}

// CreateBucket makes a bucket.
func (m *MinIO) CreateBucket(name string) {
	m.t.Helper()
	c, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.Secret, "")})
	if err != nil {
		m.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		m.t.Fatal(err)
	}
}

// URL is the tier URL of bucket/prefix on this server.
func (m *MinIO) URL(bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&insecure=true", bucket, prefix, m.Endpoint)
}

// URLWithKeys is URL with the server's keys in it, for a process that
// takes nothing else (a Procs child).
func (m *MinIO) URLWithKeys(bucket, prefix string) string {
	return fmt.Sprintf("s3://%s:%s@%s/%s?endpoint=%s&insecure=true", url.PathEscape(m.AccessKey), url.PathEscape(m.Secret), bucket, prefix, m.Endpoint)
}

// Store creates bucket and opens it (under prefix) as a tier store.
func (m *MinIO) Store(bucket, prefix string) tier.Store {
	m.t.Helper()
	m.CreateBucket(bucket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tier.Open(ctx, m.URL(bucket, prefix), tier.Credentials{AccessKey: m.AccessKey, SecretKey: m.Secret})
	if err != nil {
		m.t.Fatal(err)
	}
	return s
}
