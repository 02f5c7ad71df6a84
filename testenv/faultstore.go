package testenv

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/strata-io/strata/tier"
)

// Object store modes a FaultStore can be put in.
const (
	StoreUp   = iota
	StoreDown // every call fails, as when the store is unreachable
	Store503  // every call fails as S3's 503 SlowDown does
)

// FaultStore is an object store that can be switched down or to
// answering 503 (Set), for tests of what nodes do when the store fails.
type FaultStore struct {
	tier.Store
	mode atomic.Int32
}

// Set puts the store in mode (StoreUp, StoreDown or Store503).
func (s *FaultStore) Set(mode int32) { s.mode.Store(mode) }

func (s *FaultStore) err() error {
	switch s.mode.Load() {
	case StoreDown:
		return errors.New("fault: object store down")
	case Store503:
		return errors.New("fault: 503 Slow Down")
	}
	return nil
}

func (s *FaultStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Put(ctx, key, r, size)
}

func (s *FaultStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, key, offset, length)
}

func (s *FaultStore) Delete(ctx context.Context, keys ...string) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, keys...)
}

func (s *FaultStore) List(ctx context.Context, prefix string, fn func(tier.Object) error) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.List(ctx, prefix, fn)
}
