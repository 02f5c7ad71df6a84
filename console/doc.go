// Package console is Strata's web console, served at / on a gateway's
// admin address: the cluster, topics, consumer groups, the tier and a
// record browser, read-only. Pages are rendered on the server from
// html/template with no script; the data comes from the gateway's own
// admin calls and from a Kafka client of the gateway's own listener, so
// the console sees what any Kafka tool would.
package console
