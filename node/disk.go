package node

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The disk guard: above the high-water mark the node refuses produce with
// a retriable error rather than fill the disk. It never makes room by
// deleting data not yet uploaded; local retention still deletes what is
// uploaded (or untiered and past retention), and produce resumes once use
// falls below the mark.

// errDiskFull is why a produce was refused.
var errDiskFull = errors.New("node: data disk above its high-water mark; produce refused until space is freed")

// statfsUsage reports the use of the filesystem holding dir.
func statfsUsage(dir string) func() (used, total uint64, err error) {
	return func() (uint64, uint64, error) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, 0, err
		}
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		total := st.Blocks * uint64(st.Bsize)
		// Bavail, not Bfree: blocks reserved for root are not ours.
		return total - st.Bavail*uint64(st.Bsize), total, nil
	}
}

// checkDisk updates diskFull from the disk's use and logs each change.
func (n *Node) checkDisk() {
	used, total, err := n.cfg.DiskUsage()
	if err != nil {
		n.logger.Warn("disk usage unknown", "error", err)
		return
	}
	if total == 0 {
		return
	}
	ratio := float64(used) / float64(total)
	full := ratio >= n.cfg.DiskHighWatermark
	if was := n.diskFull.Swap(full); was != full {
		if full {
			n.logger.Error("data disk above its high-water mark: refusing produce (retriable KAFKA_STORAGE_ERROR) until space is freed",
				"used_bytes", used, "total_bytes", total, "used", fmt.Sprintf("%.1f%%", 100*ratio), "high_watermark", n.cfg.DiskHighWatermark)
		} else {
			n.logger.Info("data disk below its high-water mark: accepting produce again", "used", fmt.Sprintf("%.1f%%", 100*ratio))
		}
	}
}
