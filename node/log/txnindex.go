package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// The aborted transaction index (Kafka's .txnindex): for each transaction
// aborted in a segment (its abort marker is in the segment), the producer,
// the transaction's first and last offsets (the marker's) and the last
// stable offset once it ended. A read_committed fetch collects the entries
// that overlap what it returns, so the consumer can drop aborted records.
//
// The log does not derive entries; whoever tracks producers (the node)
// adds them with AppendAbortedTxn when it writes or replicates an abort
// marker, and again, idempotently, when it rebuilds its producer state
// after a crash. The file is Kafka's format: 34 bytes an entry,
//
//	| version int16 (0) | producer id int64 | first offset int64 | last offset int64 | last stable offset int64 |
//
// big-endian, appended and fsynced before AppendAbortedTxn returns. It
// exists only for segments with an abort. On open, entries past the
// segment's end (a marker the crash took) and a torn last entry are
// dropped; truncation and removal take the index with the segment.

const (
	txnIndexSuffix   = ".txnindex"
	abortedTxnBytes  = 34
	abortedTxnFormat = 0
)

// AbortedTxn is one entry of the aborted transaction index.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	// LastOffset is the abort marker's offset.
	LastOffset int64
	// LastStableOffset is the partition's last stable offset once the
	// transaction ended: every transaction that began below it had
	// ended too (a reader collecting entries stops at one whose
	// LastStableOffset reaches its upper bound).
	LastStableOffset int64
}

func (a AbortedTxn) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, abortedTxnFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(a.ProducerID))
	b = binary.BigEndian.AppendUint64(b, uint64(a.FirstOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(a.LastOffset))
	return binary.BigEndian.AppendUint64(b, uint64(a.LastStableOffset))
}

// EncodeAbortedTxns is the index file's bytes for entries.
func EncodeAbortedTxns(entries []AbortedTxn) []byte {
	b := make([]byte, 0, len(entries)*abortedTxnBytes)
	for _, e := range entries {
		b = e.append(b)
	}
	return b
}

// DecodeAbortedTxns parses an index file's bytes: whole entries of
// version 0, first offsets at most last offsets, last offsets rising. A
// torn last entry is not an error: the entries before it are returned.
func DecodeAbortedTxns(b []byte) ([]AbortedTxn, error) {
	var out []AbortedTxn
	for ; len(b) >= abortedTxnBytes; b = b[abortedTxnBytes:] {
		if v := binary.BigEndian.Uint16(b); v != abortedTxnFormat {
			return out, fmt.Errorf("%w: aborted transaction entry of version %d", ErrCorrupt, v)
		}
		e := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
		}
		if e.FirstOffset < 0 || e.FirstOffset > e.LastOffset || (len(out) > 0 && e.LastOffset <= out[len(out)-1].LastOffset) {
			return out, fmt.Errorf("%w: aborted transaction entry %+v after %d entries", ErrCorrupt, e, len(out))
		}
		out = append(out, e)
	}
	return out, nil
}

// txnIndex is a segment's aborted transactions, in memory (they are few)
// and in their file, which is opened on the first entry.
type txnIndex struct {
	path    string
	mu      sync.Mutex // readers against the appender and truncation
	entries []AbortedTxn
	f       File
}

func txnIndexPath(dir string, baseOffset int64) string {
	return filepath.Join(dir, segmentName(baseOffset)+txnIndexSuffix)
}

// load reads the index file, if any, keeping the entries that end below
// next (the segment's end) and rewriting the file when it dropped some.
func (x *txnIndex) load(fs FS, next int64) error {
	f, err := fs.OpenFile(x.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return errors.Join(err, f.Close())
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return errors.Join(err, f.Close())
	}
	entries, _ := DecodeAbortedTxns(b) // what follows a bad entry is dropped
	keep := len(entries)
	for keep > 0 && entries[keep-1].LastOffset >= next {
		keep--
	}
	x.entries, x.f = entries[:keep], f
	if int64(keep*abortedTxnBytes) != fi.Size() {
		return x.truncateFile()
	}
	return nil
}

func (x *txnIndex) truncateFile() error {
	if err := x.f.Truncate(int64(len(x.entries) * abortedTxnBytes)); err != nil {
		return err
	}
	return x.f.Sync()
}

// add appends e unless an entry ending at or after it is there (a
// rebuild adding what the index already has).
func (x *txnIndex) add(fs FS, e AbortedTxn) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := len(x.entries); n > 0 && x.entries[n-1].LastOffset >= e.LastOffset {
		return nil
	}
	if x.f == nil {
		f, err := fs.OpenFile(x.path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		x.f = f
	}
	if _, err := x.f.WriteAt(e.append(nil), int64(len(x.entries)*abortedTxnBytes)); err != nil {
		return err
	}
	if err := x.f.Sync(); err != nil {
		return err
	}
	x.entries = append(x.entries, e)
	return nil
}

// truncateTo drops the entries of transactions that ended at or after
// next.
func (x *txnIndex) truncateTo(next int64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	keep := len(x.entries)
	for keep > 0 && x.entries[keep-1].LastOffset >= next {
		keep--
	}
	if keep == len(x.entries) {
		return nil
	}
	x.entries = x.entries[:keep]
	return x.truncateFile()
}

// collect appends the entries overlapping [from, upTo) to out; done
// reports that no later segment can hold another.
func (x *txnIndex) collect(out []AbortedTxn, from, upTo int64) ([]AbortedTxn, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range x.entries {
		if e.LastOffset >= from && e.FirstOffset < upTo {
			out = append(out, e)
		}
		if e.LastStableOffset >= upTo {
			return out, true
		}
	}
	return out, false
}

func (x *txnIndex) snapshot() []AbortedTxn {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]AbortedTxn(nil), x.entries...)
}

func (x *txnIndex) close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.f == nil {
		return nil
	}
	err := x.f.Close()
	x.f = nil
	return err
}

// AppendAbortedTxn records an aborted transaction in the index of the
// segment holding its marker (e.LastOffset, which must be in the log).
// An entry the index already has (one ending at or after e's) is
// skipped, so a rebuild may add entries again, and so is one below the
// log start. Durable on return.
func (l *Log) AppendAbortedTxn(e AbortedTxn) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	if e.LastOffset < l.startOffset.Load() {
		return nil // deleted already: no read can ask for it
	}
	if e.FirstOffset < 0 || e.FirstOffset > e.LastOffset || e.LastOffset >= l.endOffset.Load() {
		return fmt.Errorf("%w: aborted transaction %+v outside the log [%d, %d)", ErrOffsetOutOfRange, e, l.startOffset.Load(), l.endOffset.Load())
	}
	segs := *l.segments.Load()
	s := segs[floorSegment(segs, e.LastOffset)]
	if err := s.txn.add(l.fs, e); err != nil {
		return l.fail(fmt.Errorf("aborted transaction index of segment %d: %w", s.baseOffset, err))
	}
	return nil
}

// AbortedTxns returns the aborted transactions that overlap [from, upTo):
// those a read_committed read of that range must be told of, in the
// order their markers were written. Safe for concurrent use.
func (l *Log) AbortedTxns(from, upTo int64) []AbortedTxn {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var out []AbortedTxn
	segs := *l.segments.Load()
	for _, s := range segs[floorSegment(segs, from):] {
		var done bool
		if out, done = s.txn.collect(out, from, upTo); done {
			break
		}
	}
	return out
}
