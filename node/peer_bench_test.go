package node_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// The tier benchmarks' peers: what moving the same bytes costs on this
// machine without Strata. A proxy child GETs the uploaded .log objects
// from MinIO and writes them to whoever connects, as a gateway reading
// the bucket must at the least; a reader child reads such a stream and
// throws it away, as a replaying consumer must at the least. Both are
// the test binary again, in processes of their own, as a gateway and a
// consumer would be.
const (
	// proxyChildEnv, "ENDPOINT ACCESS SECRET BUCKET": serve the bucket's
	// .log objects, one after another, to each connection, until
	// standard input closes. The child prints its address first.
	proxyChildEnv = "STRATA_PROXY_CHILD"
	// rawReadChildEnv, "ADDR": read the proxy's stream again and again
	// until standard input closes, then print the bytes and seconds.
	rawReadChildEnv = "STRATA_RAWREAD_CHILD"
)

// runPeerChildren runs this process as a proxy or reader child if its
// environment asks.
func runPeerChildren() {
	if s := os.Getenv(proxyChildEnv); s != "" {
		if err := runProxyChild(s); err != nil {
			fmt.Fprintln(os.Stderr, "proxy child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if addr := os.Getenv(rawReadChildEnv); addr != "" {
		stop := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
		start := time.Now()
		var n int64
		for !closed(stop) {
			got, err := readProxy(addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, "reader child:", err)
				os.Exit(1)
			}
			n += got
		}
		fmt.Println(n, time.Since(start).Seconds())
		os.Exit(0)
	}
}

func runProxyChild(spec string) error {
	var endpoint, access, secret, bucket string
	if _, err := fmt.Sscan(spec, &endpoint, &access, &secret, &bucket); err != nil {
		return err
	}
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		return err
	}
	ctx := context.Background()
	var keys []string
	for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		if strings.HasSuffix(o.Key, ".log") {
			keys = append(keys, o.Key)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil // standard input closed
		}
		go func() {
			defer c.Close()
			for _, k := range keys {
				obj, err := mc.GetObject(ctx, bucket, k, minio.GetObjectOptions{})
				if err != nil {
					return
				}
				_, err = io.Copy(c, obj)
				obj.Close()
				if err != nil {
					return
				}
			}
		}()
	}
}

// readProxy reads one whole stream from the proxy at addr.
func readProxy(addr string) (int64, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return io.Copy(io.Discard, c)
}

// peerChild is a proxy or reader child.
type peerChild struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startPeerChild(b *testing.B, env string) *peerChild {
	bin, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &peerChild{cmd: cmd, in: in, out: bufio.NewReader(out)}
	b.Cleanup(func() { p.stop(b) })
	return p
}

// stop closes the child's standard input, and returns what it printed
// last.
func (p *peerChild) stop(b *testing.B) string {
	if p.in == nil {
		return ""
	}
	p.in.Close()
	p.in = nil
	rest, _ := io.ReadAll(p.out)
	if err := p.cmd.Wait(); err != nil {
		b.Errorf("peer child: %v", err)
	}
	return string(rest)
}

// startProxy starts a proxy child of m's bucket and returns its address.
func startProxy(b *testing.B, m *testenv.MinIO, bucket string) (*peerChild, string) {
	p := startPeerChild(b, fmt.Sprintf("%s=%s %s %s %s", proxyChildEnv, m.Endpoint, m.AccessKey, m.Secret, bucket))
	line, err := p.out.ReadString('\n')
	if err != nil {
		b.Fatalf("proxy child: %v", err)
	}
	return p, strings.TrimSpace(line)
}

// rawReadWhile reads the proxy's stream in a child until stop, and
// returns the bytes read and the time taken.
func rawReadWhile(b *testing.B, addr string, stop <-chan struct{}) (int64, time.Duration) {
	p := startPeerChild(b, rawReadChildEnv+"="+addr)
	<-stop
	var n int64
	var secs float64
	if out := p.stop(b); out != "" {
		if _, err := fmt.Sscan(out, &n, &secs); err != nil {
			b.Fatalf("reader child said %q: %v", out, err)
		}
	}
	return n, time.Duration(secs * float64(time.Second))
}

// rawFetch reads each partition of topic from offset 0 up to its end
// through the gateway at addr with bare Fetch requests, counting the
// record batches' bytes without decoding a record: the Kafka path's
// counterpart of a raw GET, which decodes nothing either. It returns the
// bytes of batches that start below the ends, and when the first came.
func rawFetch(ctx context.Context, addr, topic string, ends map[int32]int64, partitionBytes int32) (int64, time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	// The client sends the newest version both sides speak: from v13 a
	// topic is named by its id.
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	mr, err := cl.Request(ctx, mreq)
	if err != nil {
		return 0, 0, err
	}
	id := mr.(*kmsg.MetadataResponse).Topics[0].TopicID
	start := time.Now()
	var first time.Duration
	next := map[int32]int64{}
	for p := range ends {
		next[p] = 0
	}
	var n int64
	for len(next) > 0 {
		req := kmsg.NewPtrFetchRequest()
		req.SetVersion(12)
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes = -1, 500, 1
		req.MaxBytes, req.SessionEpoch = partitionBytes*int32(len(next)), -1
		t := kmsg.NewFetchRequestTopic()
		t.Topic, t.TopicID = topic, id
		for p, off := range next {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, partitionBytes
			rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
			t.Partitions = append(t.Partitions, rp)
		}
		req.Topics = append(req.Topics, t)
		kr, err := cl.Request(ctx, req)
		if err != nil {
			return n, first, err
		}
		resp := kr.(*kmsg.FetchResponse)
		if resp.ErrorCode != 0 {
			return n, first, fmt.Errorf("fetch: error code %d", resp.ErrorCode)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					return n, first, fmt.Errorf("fetch partition %d: error code %d", rp.Partition, rp.ErrorCode)
				}
				b := rp.RecordBatches
				for len(b) >= 61 {
					base := int64(binary.BigEndian.Uint64(b))
					size := 12 + int(binary.BigEndian.Uint32(b[8:]))
					if size > len(b) {
						break
					}
					if first == 0 {
						first = time.Since(start)
					}
					if base < ends[rp.Partition] {
						n += int64(size)
					}
					next[rp.Partition] = base + int64(binary.BigEndian.Uint32(b[23:])) + 1
					b = b[size:]
				}
				if next[rp.Partition] >= ends[rp.Partition] {
					delete(next, rp.Partition)
				}
			}
		}
	}
	return n, first, nil
}
