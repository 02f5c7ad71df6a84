package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mnet "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Images the Makefile builds FROM scratch out of static binaries (no
// image can be pulled); the environment variables name them.
const (
	MinIOImageEnv = "STRATA_MINIO_IMAGE"
)

// DockerEnv runs the project's own containers on a private network of a
// Docker engine, through testcontainers-go, for the test that made it:
// everything is removed in t.Cleanup.
type DockerEnv struct {
	t       testing.TB
	network *testcontainers.DockerNetwork
}

// Docker connects to the Docker engine and makes a network for the test,
// or skips it with the reason when no engine is reachable.
func Docker(t testing.TB) *DockerEnv {
	t.Helper()
	if reason := dockerUnavailable(); reason != "" {
		t.Skip(reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nw, err := tcnetwork.New(ctx)
	if err != nil {
		t.Fatalf("docker network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := nw.Remove(ctx); err != nil {
			t.Logf("removing docker network: %v", err)
		}
	})
	return &DockerEnv{t: t, network: nw}
}

// dockerUnavailable says why containers cannot run here, or "".
func dockerUnavailable() (reason string) {
	// Ryuk, testcontainers' reaper, is an image that cannot be pulled
	// here; every container is removed in t.Cleanup instead.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	// Each container logs to its test (run's WithLogger); the engine's
	// banner goes nowhere.
	tclog.SetDefault(tclog.NewNoopLogger())
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprintf("no Docker engine reachable: %v", r)
		}
	}()
	provider, err := testcontainers.ProviderDocker.GetProvider()
	if err != nil {
		return "no Docker engine reachable: " + err.Error()
	}
	defer provider.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := provider.Health(ctx); err != nil {
		return "no Docker engine reachable: " + err.Error()
	}
	return ""
}

// dockerImage is the image env names, or "" with the reason it cannot be
// used.
func dockerImage(env string) (image, reason string) {
	image = os.Getenv(env)
	if image == "" {
		return "", fmt.Sprintf("%s not set: make test builds the image", env)
	}
	if r := dockerUnavailable(); r != "" {
		return "", r
	}
	return image, ""
}

// container is one of the env's containers with its loopback ports.
type dockerContainer struct {
	c *testcontainers.DockerContainer
}

// run starts image on the env's network as alias, publishing each of
// ports (container side, "9000/tcp") on the given loopback host port, and
// waits with waitFor.
func (d *DockerEnv) run(image, alias string, cmd []string, env map[string]string, ports map[string]string, waitFor wait.Strategy) *dockerContainer {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exposed := make([]string, 0, len(ports))
	bindings := mnet.PortMap{}
	for cport, hostAddr := range ports {
		exposed = append(exposed, cport)
		host, port, _ := strings.Cut(hostAddr, ":")
		ip, err := netip.ParseAddr(host)
		if err != nil {
			d.t.Fatalf("host address %q: %v", hostAddr, err)
		}
		bindings[mnet.MustParsePort(cport)] = []mnet.PortBinding{{HostIP: ip, HostPort: port}}
	}
	c, err := testcontainers.Run(ctx, image,
		testcontainers.WithLogger(tclog.TestLogger(d.t)),
		testcontainers.WithCmd(cmd...),
		testcontainers.WithEnv(env),
		testcontainers.WithExposedPorts(exposed...),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.PortBindings = bindings }),
		tcnetwork.WithNetwork([]string{alias}, d.network),
		testcontainers.WithWaitStrategyAndDeadline(60*time.Second, waitFor),
	)
	testcontainers.CleanupContainer(d.t, c)
	if err != nil {
		d.t.Fatalf("container %s (%s): %v", alias, image, err)
	}
	return &dockerContainer{c: c}
}

// kill stops the container at once (SIGKILL); start runs it again with
// its filesystem and port bindings.
func (c *dockerContainer) kill(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	zero := time.Duration(0)
	if err := c.c.Stop(ctx, &zero); err != nil {
		t.Fatalf("stopping container: %v", err)
	}
}

func (c *dockerContainer) start(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.c.Start(ctx); err != nil {
		t.Fatalf("starting container: %v", err)
	}
}
