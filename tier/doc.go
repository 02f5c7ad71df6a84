// Package tier moves closed segments to object storage (S3 through
// minio-go, or a local directory), records them in the metadata manifest,
// enforces local and total retention, and serves reads below the local log
// start offset through a bounded on-disk cache.
package tier
