// Package log is Strata's storage engine: one partition's append-only log
// of Kafka RecordBatches in segment files, with sparse memory-mapped
// offset and time indexes, crash recovery, retention and truncation. It
// does no network I/O and imports nothing of Strata (the standard library
// and golang.org/x/sys only).
//
// # Files
//
// A partition directory holds, per segment, three files named by the
// segment's base offset in 20 digits (00000000000000000042.log ...):
//
//	.log        RecordBatch v2 bytes exactly as the producer sent them,
//	            with base offset and partition leader epoch assigned.
//	.index      sparse offset index, one entry per index.interval.bytes:
//	            | relative offset uint32 | byte position uint32 |
//	            naming the base offset of the batch at that position.
//	.timeindex  | timestamp int64 | relative offset uint32 |: the base
//	            offset of the first batch that reached each new max
//	            timestamp; the last entry is the segment's max.
//
// All integers are big-endian. Index files are preallocated (fallocate),
// memory-mapped, and trimmed to their entries when the segment rolls or
// the log closes. They carry no checksum: after an unclean shutdown they
// are rebuilt from the .log, and a clean one's are sanity-checked on open
// and rebuilt if they fail.
//
// Beside the segments: leader-epoch-checkpoint (epoch, start offset per
// line), log-start-offset-checkpoint, recovery-point-offset-checkpoint
// (everything below it was fsynced) and .clean-shutdown (written last by
// Close, removed by Open). Checkpoints are "version\ncount\nentries...",
// replaced atomically by write-temp, fsync, rename, fsync-directory.
//
// # RecordBatch v2
//
//	 0 baseOffset int64          <- assigned by Append (outside the CRC)
//	 8 batchLength int32         bytes after this field
//	12 partitionLeaderEpoch int32 <- assigned by Append (outside the CRC)
//	16 magic int8 = 2
//	17 crc uint32                CRC-32C of bytes 21..end
//	21 attributes int16          compression, timestamp type, txn, control
//	23 lastOffsetDelta int32
//	27 baseTimestamp int64
//	35 maxTimestamp int64
//	43 producerId int64
//	51 producerEpoch int16
//	53 baseSequence int32
//	57 recordCount int32
//	61 records...
//
// Append checks length, magic, CRC, record count against the offset range,
// max.message.bytes, and for uncompressed batches the framing of every
// record, before it touches a file. A bad batch changes nothing.
//
// # Concurrency
//
// One appender, many readers; no reader waits on an append.
//
//   - appendMu serializes every writer: Append, AppendReplicated, rolls,
//     Maintain (retention, flush), DeleteRecordsBefore, TruncateTo, Close.
//   - Readers (Read, OffsetForTimestamp, MaxTimestamp, EndOffsetForEpoch,
//     StartOffset, EndOffset, Segments) take no lock that an append takes.
//     They load an immutable segment list from an atomic pointer, then
//     each segment's published size and the indexes' published entry
//     counts, and read only below them with pread. The appender writes the
//     bytes and index entries first and publishes the new size and counts
//     last (atomic stores), so whatever a reader sees is whole. A roll
//     publishes a new list with the old segment still in it.
//   - segMu is held shared by readers while they use segment files, and
//     exclusively only when files are closed, deleted or cut: retention,
//     DeleteRecordsBefore, TruncateTo, Close. Those are the only moments a
//     reader can wait, and they are not appends. Lock order: appendMu,
//     then segMu. Options.Removable and OnSegmentClosed are called with
//     appendMu held.
//   - Sealing trims an index file but keeps its mapping, so a reader in the
//     middle of a lookup never touches unmapped memory; only TruncateTo
//     and Open remap, with readers held off.
//   - fsync of sealed segments (Maintain, Flush) runs under segMu shared,
//     not appendMu, so a slow disk does not stall producers.
//
// # Failure
//
// A write error is cut back to the last published size; a full disk
// leaves the log usable (ErrIO), anything else, or a failed fsync, or
// stored bytes that no longer parse on read, marks the log failed
// (ErrFailed): every call then returns that error until the log is
// reopened, which recovers it. A torn write never becomes visible: it is
// past the published size until it is whole, and recovery cuts it off.
package log
