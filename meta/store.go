package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

// ErrKeyNotFound is returned by RaftStore.Get and GetUint64 for a missing
// key. hashicorp/raft recognises it by its text, "not found", as it does
// raft-boltdb's.
var ErrKeyNotFound = errors.New("not found")

// Key prefixes in the Raft store's Badger DB.
var (
	prefixLog    = []byte("l") // l + index (8 bytes, big-endian) -> encoded raft.Log
	prefixStable = []byte("s") // s + key -> value
)

// RaftStore is hashicorp/raft's LogStore and StableStore over one Badger
// DB, with every write synced: Raft's safety rests on them surviving a
// crash. Safe for concurrent use.
type RaftStore struct {
	db *badger.DB

	// mu guards the cached bounds of the log. Invariant: first == 0 iff
	// the log is empty, and then last == 0 too.
	mu          sync.Mutex
	first, last uint64
}

// OpenRaftStore opens (creating) the store in dir.
func OpenRaftStore(dir string, logger *slog.Logger) (*RaftStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := removeEmptyValueLogs(dir, logger); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(dir, logger).WithSyncWrites(true))
	if err != nil {
		return nil, fmt.Errorf("meta: open raft store %s: %w", dir, err)
	}
	s := &RaftStore{db: db}
	if err := db.View(func(txn *badger.Txn) error {
		var err error
		s.first, s.last, err = logBounds(txn)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// logBounds finds the first and last log index by seeking both ends.
func logBounds(txn *badger.Txn) (first, last uint64, err error) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefixLog
	it := txn.NewIterator(opts)
	it.Rewind()
	if it.Valid() {
		first = logIndex(it.Item().Key())
	}
	it.Close()
	if first == 0 {
		return 0, 0, nil
	}
	opts.Reverse = true
	it = txn.NewIterator(opts)
	defer it.Close()
	it.Seek(logKey(^uint64(0)))
	if it.Valid() {
		last = logIndex(it.Item().Key())
	}
	return first, last, nil
}

// Close closes the DB.
func (s *RaftStore) Close() error { return s.db.Close() }

// FirstIndex returns the first index written, 0 for none.
func (s *RaftStore) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, nil
}

// LastIndex returns the last index written, 0 for none.
func (s *RaftStore) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound.
func (s *RaftStore) GetLog(index uint64, log *raft.Log) error {
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(logKey(index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return raft.ErrLogNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return decodeRaftLog(v, log) })
	})
}

// StoreLog stores one entry.
func (s *RaftStore) StoreLog(log *raft.Log) error { return s.StoreLogs([]*raft.Log{log}) }

// StoreLogs stores entries in one synced write.
func (s *RaftStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var buf []byte
	for _, l := range logs {
		buf = encodeRaftLog(buf[:0], l)
		// The batch keeps the slices until it flushes: copy.
		if err := wb.Set(logKey(l.Index), append([]byte(nil), buf...)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi := logs[0].Index, logs[len(logs)-1].Index
	if s.first == 0 || lo < s.first {
		s.first = lo
	}
	s.last = max(s.last, hi)
	return nil
}

// DeleteRange deletes entries min..max inclusive.
func (s *RaftStore) DeleteRange(min, max uint64) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i := min; i <= max && i != 0; i++ {
		if err := wb.Delete(logKey(i)); err != nil {
			return err
		}
		if i == ^uint64(0) {
			break
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	// Recompute the bounds: a range may cut either end, or the middle.
	return s.db.View(func(txn *badger.Txn) error {
		first, last, err := logBounds(txn)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.first, s.last = first, last
		s.mu.Unlock()
		return nil
	})
}

// Set stores a stable value.
func (s *RaftStore) Set(key, val []byte) error {
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(stableKey(key), append([]byte(nil), val...))
	})
}

// Get reads a stable value, or returns ErrKeyNotFound.
func (s *RaftStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stableKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrKeyNotFound
		}
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	return out, err
}

// SetUint64 stores a stable uint64.
func (s *RaftStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 reads a stable uint64, or returns ErrKeyNotFound.
func (s *RaftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("meta: stable key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func logKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), prefixLog...), index)
}

func logIndex(key []byte) uint64 { return binary.BigEndian.Uint64(key[len(prefixLog):]) }

func stableKey(key []byte) []byte { return append(append([]byte(nil), prefixStable...), key...) }

// encodeRaftLog encodes an entry:
//
//	| version 1 | index uvarint | term uvarint | type 1 | appendedAt varint (unix ns) |
//	| len(data) uvarint | data | len(extensions) uvarint | extensions |
func encodeRaftLog(b []byte, l *raft.Log) []byte {
	b = append(b, 1)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	at := int64(0)
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	return append(b, l.Extensions...)
}

func decodeRaftLog(b []byte, l *raft.Log) error {
	d := decoder{b: b}
	if v := d.byte(); v != 1 {
		return fmt.Errorf("meta: raft log entry version %d unknown", v)
	}
	l.Index = d.uvarint()
	l.Term = d.uvarint()
	l.Type = raft.LogType(d.byte())
	if at := d.varint(); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	} else {
		l.AppendedAt = time.Time{}
	}
	l.Data = d.bytesCopy()
	l.Extensions = d.bytesCopy()
	return d.finish("raft log entry")
}
