// Package gateway is Strata's Kafka listener: it decodes every request with
// franz-go's kmsg, answers metadata from a cache of the controller's state
// (refreshed on change events), and routes produce, fetch and list-offsets
// requests to each partition's leader node over NATS.
//
// A gateway holds no state beyond caches; any gateway can serve any
// partition. Gateways find each other through heartbeats on NATS, and
// Metadata lists the live ones as brokers and spreads partition
// "leadership" over them by hashing, so clients spread their load. A node
// that says it does not lead a partition makes the gateway refresh its
// view and ask once more. Produce and Fetch from v13 name topics by ID; the
// gateway resolves them and talks to nodes by name. It depends on meta
// (read-only, over NATS) and internal/rpc, never on node internals.
//
// Per connection one goroutine reads frames, each request is handled on
// its own goroutine, and a writer returns responses in request order. A
// frame over socket.request.max.bytes, or one that does not parse, closes
// that connection only. One file per Kafka API.
package gateway
