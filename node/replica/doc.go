// Package replica implements ISR replication on top of node/log: the
// leader's view of follower log end offsets, the high watermark (the minimum
// log end offset over the ISR), ISR shrink and expand, and the follower
// fetchers that pull from each leader node with Kafka FetchRequests.
package replica
