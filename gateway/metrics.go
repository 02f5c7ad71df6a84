package gateway

import (
	"reflect"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/tier"
)

// metrics are a gateway's Prometheus figures for the Kafka API, registered
// on Config.Registry (none: kept, not exported). Label sets are bounded:
// API names and versions, Kafka error names, topics.
type metrics struct {
	requests    *prometheus.CounterVec   // api, version
	errors      *prometheus.CounterVec   // api, error
	duration    *prometheus.HistogramVec // api
	inFlight    prometheus.Gauge
	connections prometheus.Gauge
	accepted    prometheus.Counter
	refused     prometheus.Counter
	// authentications counts SASL and TLS authentications by mechanism
	// and result (ok, failed).
	authentications *prometheus.CounterVec
	// denied counts authorization denials by operation and resource type.
	denied   *prometheus.CounterVec
	bytesIn  *prometheus.CounterVec // topic
	bytesOut *prometheus.CounterVec // topic
	// remoteRead times one partition's read of uploaded data from the
	// bucket, its wait for a read slot included.
	remoteRead prometheus.Histogram
	reg        prometheus.Registerer
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_kafka_requests_total",
			Help: "Kafka requests received, by API and version."}, []string{"api", "version"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_kafka_request_errors_total",
			Help: "Error codes in Kafka responses (top level and per partition), by API and Kafka error name."}, []string{"api", "error"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_kafka_request_duration_seconds",
			Help:    "Time from a Kafka request read to its response encoded, by API (a fetch's long poll included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"api"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_kafka_requests_in_flight",
			Help: "Kafka requests being handled."}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_kafka_connections",
			Help: "Kafka client connections open."}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_kafka_connections_accepted_total",
			Help: "Kafka client connections accepted."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_kafka_connections_refused_total",
			Help: "Kafka client connections closed at once: their address already held max.connections.per.ip."}),
		authentications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_kafka_authentications_total",
			Help: "Client authentications by mechanism (SASL mechanism, or TLS for a failed handshake) and result (ok, failed)."}, []string{"mechanism", "result"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_kafka_authorization_denied_total",
			Help: "Operations the ACLs denied, by operation and resource type."}, []string{"operation", "resource_type"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_kafka_bytes_in_total",
			Help: "Record batch bytes produced and appended (partitions answered without error), by topic."}, []string{"topic"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_kafka_bytes_out_total",
			Help: "Record batch bytes fetched by consumers, by topic."}, []string{"topic"}),
		remoteRead: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_gateway_remote_read_seconds",
			Help:    "Time this gateway took to read one partition's uploaded data from the object store for a fetch (its turn among concurrent reads included).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		reg: reg,
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.errors, m.duration, m.inFlight, m.connections, m.accepted, m.refused, m.authentications, m.denied, m.bytesIn, m.bytesOut, m.remoteRead)
	}
	return m
}

// queued exports the bytes of requests read and not yet handled, against
// queued.max.request.bytes.
func (m *metrics) queued(b *requestBudget) {
	if m.reg == nil {
		return
	}
	m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_kafka_request_queue_bytes",
		Help: "Bytes of Kafka requests read and not yet handled (bounded by queued.max.request.bytes)."},
		func() float64 { return float64(b.inUse.Load()) }))
}

// remoteReads exports the gateway's chunk cache figures, read from the
// reader at scrape time.
func (m *metrics) remoteReads(stats func() tier.ReaderStats) {
	if m.reg == nil {
		return
	}
	counter := func(name, help string, f func(tier.ReaderStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(stats())) })
	}
	for _, c := range []prometheus.Collector{
		counter("strata_gateway_tier_chunk_cache_hits_total", "This gateway's remote reads served from its chunk cache.",
			func(s tier.ReaderStats) int64 { return s.ChunkHits }),
		counter("strata_gateway_tier_chunk_cache_misses_total", "This gateway's remote reads that fetched their chunk from the store.",
			func(s tier.ReaderStats) int64 { return s.ChunkMisses }),
		counter("strata_gateway_tier_fetched_bytes_total", "Bytes this gateway fetched from the object store for remote reads.",
			func(s tier.ReaderStats) int64 { return s.FetchedBytes }),
	} {
		m.reg.Register(c) // a second gateway in the process (tests) keeps the first's
	}
}

// observe records one request and its response (nil: none was sent).
func (m *metrics) observe(req kmsg.Request, resp kmsg.Response, took time.Duration) {
	api := kmsg.NameForKey(req.Key())
	m.requests.WithLabelValues(api, strconv.Itoa(int(req.GetVersion()))).Inc()
	m.duration.WithLabelValues(api).Observe(took.Seconds())
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		pr, _ := resp.(*kmsg.ProduceResponse)
		for i, t := range r.Topics {
			n := 0
			for j, p := range t.Partitions {
				// Bytes appended: a partition answered with an error
				// wrote nothing (Kafka's BytesInPerSec).
				if pr == nil || i >= len(pr.Topics) || j >= len(pr.Topics[i].Partitions) || pr.Topics[i].Partitions[j].ErrorCode == 0 {
					n += len(p.Records)
				}
			}
			name := t.Topic
			if pr != nil && i < len(pr.Topics) && pr.Topics[i].Topic != "" {
				name = pr.Topics[i].Topic // v13+ names topics by id; produce resolved it
			}
			if n > 0 && name != "" {
				m.bytesIn.WithLabelValues(name).Add(float64(n))
			}
		}
	case *kmsg.FetchRequest:
		if f, ok := resp.(*kmsg.FetchResponse); ok {
			for _, t := range f.Topics { // fetch sets Topic for v13+ too (not encoded there)
				n := 0
				for _, p := range t.Partitions {
					n += len(p.RecordBatches)
				}
				if n > 0 {
					m.bytesOut.WithLabelValues(t.Topic).Add(float64(n))
				}
			}
		}
	}
	if resp != nil {
		eachErrorCode(reflect.ValueOf(resp), func(code int16) {
			m.errors.WithLabelValues(api, errorName(code)).Inc()
		})
	}
}

// errorName is Kafka's name for an error code (code 6 by its name since
// Kafka 2.7, which franz-go still spells the old way).
func errorName(code int16) string {
	if code == kerr.NotLeaderForPartition.Code {
		return "NOT_LEADER_OR_FOLLOWER"
	}
	if err := kerr.ErrorForCode(code); err != nil {
		if ke, ok := err.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return "UNKNOWN_" + strconv.Itoa(int(code))
}

var int16Type = reflect.TypeFor[int16]()

// eachErrorCode calls f with every non-zero ErrorCode field of a kmsg
// response, top level and nested (topics, partitions, members...).
func eachErrorCode(v reflect.Value, f func(int16)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			eachErrorCode(v.Elem(), f)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			ft := t.Field(i)
			switch {
			case ft.Name == "ErrorCode" && ft.Type == int16Type:
				if c := int16(v.Field(i).Int()); c != 0 {
					f(c)
				}
			case ft.Type.Kind() == reflect.Slice && ft.Type.Elem().Kind() == reflect.Struct,
				ft.Type.Kind() == reflect.Struct, ft.Type.Kind() == reflect.Pointer && ft.Type.Elem().Kind() == reflect.Struct:
				eachErrorCode(v.Field(i), f)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			eachErrorCode(v.Index(i), f)
		}
	}
}
