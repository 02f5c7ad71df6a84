// Package gateway is Strata's Kafka listener: it decodes every request with
// franz-go's kmsg, answers metadata from a cache of the controller's state
// (refreshed on change events), and routes produce, fetch and list-offsets
// requests to each partition's leader node over NATS.
//
// A gateway holds no state beyond caches; any gateway can serve any
// partition, so Metadata names the gateway itself as every partition's
// leader. It depends on meta (read-only, over NATS) and internal/rpc, never
// on node internals.
//
// Per connection one goroutine reads frames, each request is handled on
// its own goroutine, and a writer returns responses in request order. A
// frame over socket.request.max.bytes, or one that does not parse, closes
// that connection only. One file per Kafka API.
package gateway
