package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// stages times where a node's produce and fetch requests spend their
// time, as strata_node_request_stage_seconds{api, stage}:
//   - Produce: append (checks and appends to every partition), replicate
//     (acks=all: waiting for the high watermark to pass the batches);
//   - Fetch (consumers) and ReplicaFetch (followers): read (reading the
//     logs, every round of a long poll together), wait (the long poll
//     waiting for data); for consumers also remote, one partition's read
//     of uploaded data from the bucket (a part of read);
//   - every API: respond (encoding the answer and handing it to NATS or
//     the stream connection).
//
// The gateway's strata_kafka_request_duration_seconds is the whole; this
// is where the node's share of it goes.
type stages struct {
	vec                      *prometheus.HistogramVec
	produceAppend, replicate prometheus.Observer
	fetchRead, fetchWait     prometheus.Observer
	replicaRead, replicaWait prometheus.Observer
	remote                   prometheus.Observer
}

// stageBuckets run from 50 µs to about 7 s.
var stageBuckets = prometheus.ExponentialBuckets(50e-6, 2.5, 14)

func newStages(node string) *stages {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "strata_node_request_stage_seconds",
		Help:        "Time a node's Kafka requests spend in each stage (Produce: append, replicate; Fetch, ReplicaFetch: read, wait; Fetch: remote, per partition; all: respond).",
		Buckets:     stageBuckets,
		ConstLabels: prometheus.Labels{"node": node},
	}, []string{"api", "stage"})
	return &stages{vec: vec,
		produceAppend: vec.WithLabelValues("Produce", "append"),
		replicate:     vec.WithLabelValues("Produce", "replicate"),
		fetchRead:     vec.WithLabelValues("Fetch", "read"),
		fetchWait:     vec.WithLabelValues("Fetch", "wait"),
		replicaRead:   vec.WithLabelValues("ReplicaFetch", "read"),
		replicaWait:   vec.WithLabelValues("ReplicaFetch", "wait"),
		remote:        vec.WithLabelValues("Fetch", "remote"),
	}
}

// fetched records one fetch's read and wait time.
func (s *stages) fetched(replica bool, read, wait time.Duration) {
	if replica {
		s.replicaRead.Observe(read.Seconds())
		s.replicaWait.Observe(wait.Seconds())
		return
	}
	s.fetchRead.Observe(read.Seconds())
	s.fetchWait.Observe(wait.Seconds())
}

// responded records the time taken to encode and send an answer to req.
func (s *stages) responded(req kmsg.Request, took time.Duration) {
	api := kmsg.NameForKey(req.Key())
	if f, ok := req.(*kmsg.FetchRequest); ok && f.ReplicaID >= 0 {
		api = "ReplicaFetch"
	}
	s.vec.WithLabelValues(api, "respond").Observe(took.Seconds())
}
