package gateway

import (
	"sync"
	"time"
)

// byteQuota bounds the bytes a gateway reads from the object store per
// second, as Kafka's remote.log.manager.fetch.max.bytes.per.second
// (KIP-956) bounds a broker's: a token bucket holding at most one
// second's worth, which a read may overdraw. A read starts only while
// the bucket is not in debt, and its bytes are taken once it is done,
// so a quota smaller than one fetch still lets every fetch through in
// turn.
type byteQuota struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	tokens float64
	last   time.Time
}

func newByteQuota(perSecond int64) *byteQuota {
	if perSecond <= 0 {
		return nil
	}
	return &byteQuota{rate: float64(perSecond), tokens: float64(perSecond), last: time.Now()}
}

// refillLocked adds what the time since the last call earned.
func (q *byteQuota) refillLocked(now time.Time) {
	q.tokens = min(q.tokens+now.Sub(q.last).Seconds()*q.rate, q.rate)
	q.last = now
}

// delay is how long until a read may start: zero when the bucket is not
// in debt.
func (q *byteQuota) delay() time.Duration {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refillLocked(time.Now())
	if q.tokens >= 0 {
		return 0
	}
	return time.Duration(-q.tokens / q.rate * float64(time.Second))
}

// take charges n bytes read.
func (q *byteQuota) take(n int) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refillLocked(time.Now())
	q.tokens -= float64(n)
}
