package gateway_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

// TestPipelinedProducesKeepOrder writes many produce requests on one
// connection without waiting for answers, as clients with several in
// flight do: the records must land in the order they were sent, over
// each data path.
func TestPipelinedProducesKeepOrder(t *testing.T) {
	for _, path := range dataPaths {
		t.Run(path.name, func(t *testing.T) { testPipelinedProducesKeepOrder(t, path.opts) })
	}
}

func testPipelinedProducesKeepOrder(t *testing.T, opts testenv.Options) {
	c, ctx, _, _ := topicEnvWith(t, opts, "order", 1)
	conn, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	const n = 50
	var frames []byte
	for i := range n {
		req := testenv.ProduceRequest("order", 1, testenv.Batch(fmt.Appendf(nil, "%d", i)))
		req.SetVersion(7)
		// AppendRequest sizes the frame from the start of its buffer: one
		// buffer per frame.
		frames = append(frames, kmsg.NewRequestFormatter().AppendRequest(nil, req, int32(i))...)
	}
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		corr, _, err := testenv.ReadFrame(conn)
		if err != nil {
			t.Fatal(err)
		}
		if corr != int32(i) {
			t.Fatalf("response %d has correlation id %d", i, corr)
		}
	}
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("order"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for got := 0; got < n; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) != fmt.Sprint(got) || r.Offset != int64(got) {
				t.Fatalf("offset %d holds %q: produce requests were reordered", r.Offset, r.Value)
			}
			got++
		})
	}
}
