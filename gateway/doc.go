// Package gateway is Strata's Kafka listener: it decodes every request with
// franz-go's kmsg, answers metadata from a read-only view of meta, and routes
// produce and fetch requests to each partition's leader node over NATS.
//
// A gateway holds no state beyond caches; any gateway can serve any
// partition. It depends on meta (read-only, over NATS) and never on node
// internals.
package gateway
