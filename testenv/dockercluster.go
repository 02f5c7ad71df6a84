package testenv

import (
	"fmt"
	"net"
	"strconv"
	"testing"

	"github.com/testcontainers/testcontainers-go/wait"
)

// DockerCluster is a Strata cluster in containers on a DockerEnv's
// network: NATS, MinIO (the nodes' tier, bucket "strata"), n `strata
// node` processes forming their metadata group with --bootstrap-expect
// n, and one `strata gateway` whose Kafka and admin ports are published
// on loopback. Faults act on containers, as an
// operator's `docker kill`, `docker pause` and `docker network
// disconnect` would.
type DockerCluster struct {
	t       testing.TB
	env     *DockerEnv
	NATS    *dockerContainer
	MinIO   *MinIO
	nodes   map[int32]*dockerContainer
	gateway *dockerContainer
	// Addr is the gateway's Kafka address, AdminURL its admin API, both
	// on loopback.
	Addr, AdminURL string
}

// Cluster starts the cluster from the images the Makefile builds, or
// skips the test with the reason they cannot run.
func (d *DockerEnv) Cluster(n int) *DockerCluster {
	d.t.Helper()
	natsImage, reason := dockerImage(NATSImageEnv)
	if natsImage == "" {
		d.t.Skip(reason)
	}
	strataImage, reason := dockerImage(StrataImageEnv)
	if strataImage == "" {
		d.t.Skip(reason)
	}
	c := &DockerCluster{t: d.t, env: d, nodes: map[int32]*dockerContainer{}}
	c.NATS = d.run(natsImage, "nats", []string{"--port", "4222"}, nil, nil, wait.ForLog("Server is ready"))
	natsURL := "nats://" + c.NATS.ip.String() + ":4222"
	c.MinIO = d.MinIO()
	c.MinIO.CreateBucket("strata")
	tierURL := fmt.Sprintf("s3://strata/cluster?endpoint=%s:9000&insecure=true", c.MinIO.container.ip)
	creds := map[string]string{"AWS_ACCESS_KEY_ID": c.MinIO.AccessKey, "AWS_SECRET_ACCESS_KEY": c.MinIO.Secret}
	for id := int32(1); id <= int32(n); id++ {
		ip := d.reserveIP()
		args := []string{"node", "--id", strconv.Itoa(int(id)), "--data-dir", "/data", "--nats", natsURL,
			"--raft-addr", ip.String() + ":9646", "--bootstrap-expect", strconv.Itoa(n), "--admin-addr", "", "--tier-url", tierURL}
		c.nodes[id] = d.runAt(ip, strataImage, fmt.Sprintf("node%d", id), args, creds, nil, wait.ForLog("strata node ready"))
	}
	// The gateway's port for node N is the listener's + N, on both sides
	// of the mapping (--node-port-stride 1), as a deployment behind
	// docker -p would run it.
	host, base := freePorts(d.t, n+1)
	kafka, admin := net.JoinHostPort(host, strconv.Itoa(base)), freePort(d.t)
	ports := map[string]string{"9092/tcp": kafka, "9644/tcp": admin}
	for id := 1; id <= n; id++ {
		ports[strconv.Itoa(9092+id)+"/tcp"] = net.JoinHostPort(host, strconv.Itoa(base+id))
	}
	c.gateway = d.run(strataImage, "gateway", []string{"gateway", "--id", "0", "--nats", natsURL, "--kafka-addr", ":9092",
		"--advertised-addr", kafka, "--node-port-stride", "1", "--admin-addr", ":9644"}, nil,
		ports, wait.ForLog("strata gateway ready"))
	c.Addr, c.AdminURL = kafka, "http://"+admin
	return c
}

// Kill SIGKILLs node id; Start runs it again with its disk.
func (c *DockerCluster) Kill(id int32)  { c.nodes[id].sigkill(c.t) }
func (c *DockerCluster) Start(id int32) { c.nodes[id].start(c.t) }

// Pause freezes node id; Unpause thaws it.
func (c *DockerCluster) Pause(id int32)   { c.nodes[id].pause(c.t, true) }
func (c *DockerCluster) Unpause(id int32) { c.nodes[id].pause(c.t, false) }

// Disconnect takes node id off the network; Reconnect puts it back.
func (c *DockerCluster) Disconnect(id int32) { c.nodes[id].connect(c.t, false) }
func (c *DockerCluster) Reconnect(id int32)  { c.nodes[id].connect(c.t, true) }

// RestartNATS kills the NATS server and starts it again.
func (c *DockerCluster) RestartNATS() {
	c.NATS.sigkill(c.t)
	c.NATS.start(c.t)
}
