package gateway_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/testenv"
)

func TestDeleteRecordsEpochsAndCluster(t *testing.T) {
	c, ctx, _, adm := topicEnv(t, "dr", 1)
	cl := newClient(t, c.Addr(), kgo.DefaultProduceTopic("dr"))
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var to kadm.Offsets
	to.AddOffset("dr", 0, 4, -1)
	del, err := adm.DeleteRecords(ctx, to)
	if err != nil || del.Error() != nil {
		t.Fatal(err, del.Error())
	}
	if d, _ := del.Lookup("dr", 0); d.LowWatermark != 4 {
		t.Fatalf("low watermark %d", d.LowWatermark)
	}
	starts, _ := adm.ListStartOffsets(ctx, "dr")
	if s, _ := starts.Lookup("dr", 0); s.Offset != 4 {
		t.Fatalf("log start %d after DeleteRecords(4)", s.Offset)
	}
	cons := newClient(t, c.Addr(), kgo.ConsumeTopics("dr"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := cons.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() == 0 || fs.Records()[0].Offset != 4 {
		t.Fatalf("first record after DeleteRecords: %v %d", err, fs.NumRecords())
	}

	var epochs kadm.OffsetForLeaderEpochRequest
	epochs.Add("dr", 0, 0)
	ends, err := adm.OffsetForLeaderEpoch(ctx, epochs)
	if err != nil {
		t.Fatal(err)
	}
	if e := ends["dr"][0]; e.Err != nil || e.EndOffset != 10 || e.LeaderEpoch != 0 {
		t.Fatalf("end of epoch 0: %+v", e)
	}

	if size := testenv.TopicLogBytes(ctx, t, adm, "dr"); size == 0 {
		t.Fatal("log dirs report no bytes for topic dr")
	}

	dreq := kmsg.NewPtrDescribeClusterRequest()
	dresp, err := dreq.RequestWith(ctx, cl)
	if err != nil || dresp.ClusterID != "test" || len(dresp.Brokers) != 1 {
		t.Fatalf("describe cluster: %v %+v", err, dresp)
	}
}
