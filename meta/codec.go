package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// encoder appends the compact binary forms used for commands and state:
// varints, length-prefixed strings and bytes.
type encoder struct{ b []byte }

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) string(s string)  { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) int32s(vs []int32) {
	e.uvarint(uint64(len(vs)))
	for _, v := range vs {
		e.varint(int64(v))
	}
}
func (e *encoder) strings(vs []string) {
	e.uvarint(uint64(len(vs)))
	for _, v := range vs {
		e.string(v)
	}
}

func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// stringMap encodes a map in key order, so equal maps encode equally.
func (e *encoder) stringMap(m map[string]string) {
	keys := sortedKeys(m)
	e.uvarint(uint64(len(keys)))
	for _, k := range keys {
		e.string(k)
		e.string(m[k])
	}
}

// errShort is the decoder's error for input that ends early or lies about
// a length.
var errShort = errors.New("meta: truncated or malformed encoding")

// decoder reads what encoder wrote. The first error sticks; later reads
// return zero values, so a decode function reads straight through and
// checks once, in finish.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errShort, nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bool() bool { return d.byte() != 0 }

func (d *decoder) int32() int32 {
	v := d.varint()
	if v < -1<<31 || v > 1<<31-1 {
		d.fail()
		return 0
	}
	return int32(v)
}

// length reads a length and checks the input holds that many more bytes
// (each element takes at least one).
func (d *decoder) length() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.length()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) bytesCopy() []byte {
	n := d.length()
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) int32s() []int32 {
	n := d.length()
	if n == 0 {
		return nil
	}
	vs := make([]int32, n)
	for i := range vs {
		vs[i] = d.int32()
	}
	return vs
}

func (d *decoder) strings() []string {
	n := d.length()
	if n == 0 {
		return nil
	}
	vs := make([]string, n)
	for i := range vs {
		vs[i] = d.string()
	}
	return vs
}

func (d *decoder) stringMap() map[string]string {
	n := d.length()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.string()
		m[k] = d.string()
	}
	return m
}

// finish reports the first error, or bytes left over.
func (d *decoder) finish(what string) error {
	if d.err != nil {
		return fmt.Errorf("%w: %s", d.err, what)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %s has %d bytes left over", errShort, what, len(d.b))
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
