package node

// CloseForTest closes a partition as a drop does but keeps its files:
// the next request or roles pass opens it again from disk, on a node that
// already serves its other partitions (benchmarks measure that open).
func (n *Node) CloseForTest(topic string, p int32) {
	key := partitionKey{topic, p}
	n.mu.Lock()
	ol := n.mu.logs[key]
	if ol == nil {
		n.mu.Unlock()
		return
	}
	delete(n.mu.logs, key)
	n.mu.dropping[key] = ol.dropped // an open waits for the close
	n.mu.Unlock()
	<-ol.ready
	if ol.Log != nil {
		n.stopReplicating(ol)
		ol.tier.stop()
		ol.Close()
	}
	n.mu.Lock()
	delete(n.mu.dropping, key)
	n.mu.Unlock()
	close(ol.dropped)
}

// LocalLogStartForTest is the local log start of a partition this node
// hosts (-1: not open here).
func (n *Node) LocalLogStartForTest(topic string, p int32) int64 {
	n.mu.Lock()
	ol := n.mu.logs[partitionKey{topic, p}]
	n.mu.Unlock()
	if ol == nil {
		return -1
	}
	<-ol.ready
	if ol.Log == nil {
		return -1
	}
	return ol.StartOffset()
}
