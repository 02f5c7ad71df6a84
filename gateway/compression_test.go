package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-io/strata/testenv"
)

// TestCompressionCodecs produces with each codec Kafka has and reads the
// records back: batches are stored and served verbatim, compressed.
func TestCompressionCodecs(t *testing.T) {
	c := testenv.InProcess(t, 1, testenv.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient(t, c.Addr()))
	for _, codec := range []struct {
		name string
		c    kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
	} {
		t.Run(codec.name, func(t *testing.T) {
			topic := "codec-" + codec.name
			if res, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || res.Err != nil {
				t.Fatal(err, res.Err)
			}
			prod := newClient(t, c.Addr(), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(codec.c), kgo.ProducerLinger(5*time.Millisecond))
			const n = 200
			var recs []*kgo.Record
			for i := range n {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "record %d %s", i, "padding padding padding padding")})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			cons := newClient(t, c.Addr(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			for got := 0; got < n; {
				fs := cons.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatal(err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if want := fmt.Sprintf("record %d %s", got, "padding padding padding padding"); string(r.Value) != want || r.Offset != int64(got) {
						t.Fatalf("record %d: offset %d %q", got, r.Offset, r.Value)
					}
					got++
				})
			}
		})
	}
}
