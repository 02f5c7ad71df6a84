package tier

// The tier admin messages: JSON on rpc.TierSubject, answered by nodes,
// asked by the admin HTTP API (and so by `strata tier`).

// AdminRequest names the topic for ls and restore.
type AdminRequest struct {
	Topic string `json:"topic,omitempty"`
}

// PartitionTierStatus is one partition's tiering as its leader sees it.
type PartitionTierStatus struct {
	Topic          string `json:"topic"`
	Partition      int32  `json:"partition"`
	Node           int32  `json:"node"`
	LocalBytes     int64  `json:"local_bytes"`
	RemoteBytes    int64  `json:"remote_bytes"`
	RemoteSegments int    `json:"remote_segments"`
	// LagBytes is closed segments not yet uploaded; LagSeconds how long
	// the oldest of them has waited.
	LagBytes     int64   `json:"lag_bytes"`
	LagSeconds   float64 `json:"lag_seconds"`
	LastUploadMs int64   `json:"last_upload_ms,omitempty"`
	LastError    string  `json:"last_error,omitempty"`
	LastErrorMs  int64   `json:"last_error_ms,omitempty"`
	// OpenTxnOffset is the first offset of the earliest transaction
	// still open on the partition (-1: none): it holds the last stable
	// offset, and local retention, back.
	OpenTxnOffset int64 `json:"open_txn_offset"`
}

// StatusReply is one node's answer to status.
type StatusReply struct {
	Node       int32                 `json:"node"`
	Store      string                `json:"store,omitempty"`
	Partitions []PartitionTierStatus `json:"partitions"`
	Cache      ReaderStats           `json:"cache"`
	Error      string                `json:"error,omitempty"`
}

// LsReply lists a topic's uploaded segments, by partition.
type LsReply struct {
	Topic      string              `json:"topic"`
	Partitions []PartitionManifest `json:"partitions"`
	Error      string              `json:"error,omitempty"`
}

// RestoreReply reports a restored topic.
type RestoreReply struct {
	Topic      string `json:"topic"`
	Partitions int32  `json:"partitions"`
	Segments   int    `json:"segments"`
	Bytes      int64  `json:"bytes"`
	// EndOffsets are where each partition's log continues.
	EndOffsets []int64 `json:"end_offsets"`
	// Already: the topic was restored before (the same topic id), by an
	// earlier restore or an earlier try of this one; nothing changed.
	Already bool   `json:"already_restored,omitempty"`
	Error   string `json:"error,omitempty"`
}
