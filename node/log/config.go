package log

import (
	"fmt"
	"math"
	"time"
)

// Config holds the per-topic settings that shape a partition log. Field
// names follow Kafka's topic configs (comment gives the key); durations
// replace Kafka's milliseconds. A negative retention means unlimited.
type Config struct {
	SegmentBytes       int64         // segment.bytes
	SegmentAge         time.Duration // segment.ms
	RetentionAge       time.Duration // retention.ms; < 0: unlimited
	RetentionBytes     int64         // retention.bytes; < 0: unlimited
	MaxMessageBytes    int           // max.message.bytes
	IndexIntervalBytes int           // index.interval.bytes
	IndexMaxBytes      int           // segment.index.bytes
	// FlushMessages fsyncs once this many records are unflushed
	// (flush.messages). 1 fsyncs every append before it returns; that is
	// the per-topic "fsync on every append" option.
	FlushMessages int64
	FlushInterval time.Duration // flush.ms
	// LogAppendTime stamps batches with the broker's clock
	// (message.timestamp.type=LogAppendTime) instead of trusting the
	// producer's create time.
	LogAppendTime bool
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentAge:         7 * 24 * time.Hour,
		RetentionAge:       7 * 24 * time.Hour,
		RetentionBytes:     -1,
		MaxMessageBytes:    1048588,
		IndexIntervalBytes: 4096,
		IndexMaxBytes:      10 << 20,
		FlushMessages:      math.MaxInt64,
		FlushInterval:      time.Duration(math.MaxInt64),
	}
}

// Validate reports the first setting out of range, naming its Kafka key.
func (c Config) Validate() error {
	switch {
	case c.SegmentBytes < 14 || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("log: segment.bytes %d out of range [14, %d]", c.SegmentBytes, math.MaxInt32)
	case c.SegmentAge < time.Millisecond:
		return fmt.Errorf("log: segment.ms %v must be at least 1ms", c.SegmentAge)
	case c.MaxMessageBytes < 0:
		return fmt.Errorf("log: max.message.bytes %d must not be negative", c.MaxMessageBytes)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("log: index.interval.bytes %d must not be negative", c.IndexIntervalBytes)
	case c.IndexMaxBytes < 4*timeIndexEntryBytes:
		return fmt.Errorf("log: segment.index.bytes %d must be at least %d", c.IndexMaxBytes, 4*timeIndexEntryBytes)
	case c.FlushMessages < 1:
		return fmt.Errorf("log: flush.messages %d must be at least 1", c.FlushMessages)
	case c.FlushInterval < 0:
		return fmt.Errorf("log: flush.ms %v must not be negative", c.FlushInterval)
	}
	return nil
}

// indexEntries is how many entries a segment's indexes need: one per
// index interval of a full segment, plus the final time index entry. A
// smaller segment.index.bytes caps it; the segment then rolls early when
// its index fills, as in Kafka.
func (c Config) indexEntries() int {
	perSegment := int64(math.MaxInt32)
	if c.IndexIntervalBytes > 0 {
		perSegment = c.SegmentBytes/int64(c.IndexIntervalBytes) + 2
	}
	capacity := int64(c.IndexMaxBytes / timeIndexEntryBytes)
	return int(min(perSegment, capacity))
}
