package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	mnet "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Images the Makefile builds FROM scratch out of static binaries (no
// image can be pulled); the environment variables name them.
const (
	MinIOImageEnv  = "STRATA_MINIO_IMAGE"
	NATSImageEnv   = "STRATA_NATS_IMAGE"
	StrataImageEnv = "STRATA_IMAGE"
)

// DockerEnv runs the project's own containers on a private network of a
// Docker engine, through testcontainers-go, for the test that made it:
// everything is removed in t.Cleanup. The network has its own /24, and
// each container a fixed address in it, so a container disconnected and
// reconnected (or restarted) comes back where its peers expect it.
type DockerEnv struct {
	t       testing.TB
	network *testcontainers.DockerNetwork
	subnet  netip.Prefix
	nextIP  netip.Addr
	client  *testcontainers.DockerClient
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
	d := &DockerEnv{t: t}
	var err error
	// A random private /24: another network may hold any one of them.
	for range 10 {
		d.subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + rand.IntN(100)), byte(rand.IntN(256)), 0}), 24)
		d.network, err = tcnetwork.New(ctx, tcnetwork.WithIPAM(&mnet.IPAM{Config: []mnet.IPAMConfig{{Subnet: d.subnet}}}))
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("docker network: %v", err)
	}
	d.nextIP = d.subnet.Addr().Next().Next() // .1 is the gateway
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.network.Remove(ctx); err != nil {
			t.Logf("removing docker network: %v", err)
		}
	})
	if d.client, err = testcontainers.NewDockerClientWithOpts(ctx); err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { d.client.Close() })
	return d
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

// dockerContainer is one of the env's containers.
type dockerContainer struct {
	d     *DockerEnv
	c     *testcontainers.DockerContainer
	alias string
	ip    netip.Addr
}

// run starts image on the env's network as alias, at the next free
// address, publishing each of ports (container side, "9000/tcp") on the
// given loopback host port, and waits with waitFor.
func (d *DockerEnv) run(image, alias string, cmd []string, env map[string]string, ports map[string]string, waitFor wait.Strategy) *dockerContainer {
	d.t.Helper()
	ip := d.nextIP
	d.nextIP = d.nextIP.Next()
	return d.runAt(ip, image, alias, cmd, env, ports, waitFor)
}

// reserveIP hands out the next address, for a container whose command
// must name it before it runs.
func (d *DockerEnv) reserveIP() netip.Addr {
	ip := d.nextIP
	d.nextIP = d.nextIP.Next()
	return ip
}

func (d *DockerEnv) runAt(ip netip.Addr, image, alias string, cmd []string, env map[string]string, ports map[string]string, waitFor wait.Strategy) *dockerContainer {
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
		testcontainers.WithEndpointSettingsModifier(func(s map[string]*mnet.EndpointSettings) {
			if e := s[d.network.Name]; e != nil {
				e.IPAMConfig = &mnet.EndpointIPAMConfig{IPv4Address: ip}
			}
		}),
		testcontainers.WithWaitStrategyAndDeadline(60*time.Second, waitFor),
	)
	testcontainers.CleanupContainer(d.t, c)
	if err != nil {
		d.t.Fatalf("container %s (%s): %v", alias, image, err)
	}
	return &dockerContainer{d: d, c: c, alias: alias, ip: ip}
}

// signal kills the container's process with SIGKILL, as a crash would;
// start runs it again.
func (c *dockerContainer) sigkill(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.d.client.ContainerKill(ctx, c.c.GetContainerID(), client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		t.Fatalf("docker kill %s: %v", c.alias, err)
	}
}

// pause freezes every process of the container; unpause thaws them.
func (c *dockerContainer) pause(t testing.TB, on bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if on {
		_, err = c.d.client.ContainerPause(ctx, c.c.GetContainerID(), client.ContainerPauseOptions{})
	} else {
		_, err = c.d.client.ContainerUnpause(ctx, c.c.GetContainerID(), client.ContainerUnpauseOptions{})
	}
	if err != nil {
		t.Fatalf("docker pause %s (%v): %v", c.alias, on, err)
	}
}

// connect takes the container off the network or puts it back at its
// address.
func (c *dockerContainer) connect(t testing.TB, on bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if on {
		_, err = c.d.client.NetworkConnect(ctx, c.d.network.ID, client.NetworkConnectOptions{Container: c.c.GetContainerID(),
			EndpointConfig: &mnet.EndpointSettings{Aliases: []string{c.alias}, IPAMConfig: &mnet.EndpointIPAMConfig{IPv4Address: c.ip}}})
	} else {
		_, err = c.d.client.NetworkDisconnect(ctx, c.d.network.ID, client.NetworkDisconnectOptions{Container: c.c.GetContainerID(), Force: true})
	}
	if err != nil {
		t.Fatalf("docker network connect %s (%v): %v", c.alias, on, err)
	}
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
