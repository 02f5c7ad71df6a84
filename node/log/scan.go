package log

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// errTorn marks a batch that runs past the end of the readable bytes: the
// tail of an interrupted write.
var errTorn = fmt.Errorf("%w: batch runs past the end of the segment", ErrCorrupt)

// scanner walks the batches of a segment file from a position up to a
// limit, reading in chunks. With bodies set it reads every batch whole
// and verifies its CRC (recovery); without, it reads headers only and
// skips the bodies (lookups). The batch bytes it returns are valid until
// the next call.
type scanner struct {
	r     io.ReaderAt
	limit int64 // file position where the readable bytes end
	// chunkBytes is how much each read asks for beyond what is needed;
	// firstBytes, when set, replaces it for the first read.
	chunkBytes, firstBytes int
	bodies                 bool

	buf      []byte // bytes read, starting at file position bufStart
	bufStart int64
	cursor   int64 // file position of the next batch
}

func newScanner(r io.ReaderAt, from, limit int64, chunkBytes int, bodies bool, buf []byte) *scanner {
	return &scanner{r: r, limit: limit, chunkBytes: chunkBytes, bodies: bodies, buf: buf[:0], bufStart: from, cursor: from}
}

// next returns the position, header and (with bodies) bytes of the next
// batch. It returns io.EOF exactly at the limit, an error wrapping
// ErrCorrupt for a torn, malformed or (with bodies) checksum-failing
// batch, and any read error as is.
func (s *scanner) next() (int64, BatchHeader, []byte, error) {
	pos := s.cursor
	if pos == s.limit {
		return pos, BatchHeader{}, nil, io.EOF
	}
	if s.limit-pos < BatchHeaderBytes {
		return pos, BatchHeader{}, nil, errTorn
	}
	hdr, err := s.fill(pos, BatchHeaderBytes)
	if err != nil {
		return pos, BatchHeader{}, nil, err
	}
	h, err := checkBatchFrame(hdr)
	if err != nil {
		return pos, h, nil, err
	}
	if h.Size() > s.limit-pos {
		return pos, h, nil, errTorn
	}
	s.cursor = pos + h.Size()
	if !s.bodies {
		return pos, h, nil, nil
	}
	b, err := s.fill(pos, int(h.Size()))
	if err != nil {
		return pos, h, nil, err
	}
	if sum := crc32.Checksum(b[crcStart:], castagnoli); sum != h.CRC {
		return pos, h, nil, fmt.Errorf("%w: CRC mismatch at position %d (computed %08x, stored %08x)", ErrCorrupt, pos, sum, h.CRC)
	}
	return pos, h, b, nil
}

// fill returns n bytes at file position pos, reading what the buffer
// lacks. pos+n must not pass the limit.
func (s *scanner) fill(pos int64, n int) ([]byte, error) {
	if pos >= s.bufStart && pos+int64(n) <= s.bufStart+int64(len(s.buf)) {
		off := int(pos - s.bufStart)
		return s.buf[off : off+n], nil
	}
	chunk := s.chunkBytes
	if s.firstBytes > 0 {
		chunk, s.firstBytes = s.firstBytes, 0
	}
	want := int(min(int64(max(n, chunk)), s.limit-pos))
	if cap(s.buf) < want {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:want]
	read, err := s.r.ReadAt(s.buf, pos)
	if read < want {
		if err == nil || errors.Is(err, io.EOF) {
			// The file is shorter than the limit: it was truncated under us
			// or the caller's limit is wrong.
			err = errTorn
		}
		s.buf = s.buf[:0]
		return nil, err
	}
	s.bufStart = pos
	return s.buf[:n], nil
}

// ScanSegment reads a segment file read-only, calling fn with the
// position and header of each whole batch whose frame and CRC check out,
// until fn returns false. It returns the bytes that were valid and, if the
// scan stopped at a bad batch, the error that stopped it (wrapping
// ErrCorrupt). Recovery would cut the file at the returned size.
func ScanSegment(r io.ReaderAt, size int64, fn func(pos int64, h BatchHeader) bool) (int64, error) {
	sc := newScanner(r, 0, size, 1<<20, true, nil)
	for {
		pos, h, _, err := sc.next()
		if err == io.EOF {
			return size, nil
		}
		if err != nil {
			return pos, err
		}
		if !fn(pos, h) {
			return pos + h.Size(), nil
		}
	}
}
