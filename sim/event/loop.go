// Package event is the simulator's discrete-event core: a virtual clock, one event heap
// ordered by (time, sequence), and seeded random streams. Everything runs on one goroutine.
package event

import (
	"container/heap"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
)

// Loop is a virtual clock with an event heap.
type Loop struct {
	now   time.Time
	seq   uint64
	h     queue
	count uint64
}

// New returns a loop whose clock starts at start.
func New(start time.Time) *Loop { return &Loop{now: start} }

// Now is the virtual time.
func (l *Loop) Now() time.Time { return l.now }

// Processed is the number of events run so far.
func (l *Loop) Processed() uint64 { return l.count }

// At schedules fn at t (not before now). Events at the same time run in scheduling order.
func (l *Loop) At(t time.Time, fn func()) {
	if t.Before(l.now) {
		t = l.now
	}
	l.seq++
	heap.Push(&l.h, item{t: t, seq: l.seq, fn: fn})
}

// After schedules fn d after now.
func (l *Loop) After(d time.Duration, fn func()) { l.At(l.now.Add(d), fn) }

// Every runs fn at first and then every period until the loop stops being run.
func (l *Loop) Every(first time.Time, period time.Duration, fn func()) {
	var tick func()
	next := first
	tick = func() {
		fn()
		next = next.Add(period)
		l.At(next, tick)
	}
	l.At(first, tick)
}

// RunUntil runs every event due at or before end, then sets the clock to end.
func (l *Loop) RunUntil(end time.Time) {
	for l.h.Len() > 0 && !l.h[0].t.After(end) {
		it := heap.Pop(&l.h).(item)
		l.now = it.t
		l.count++
		it.fn()
	}
	if end.After(l.now) {
		l.now = end
	}
}

type item struct {
	t   time.Time
	seq uint64
	fn  func()
}

type queue []item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].t.Equal(q[j].t) {
		return q[i].t.Before(q[j].t)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// Stream returns the random stream of one subsystem: a PCG seeded by the run's seed and the
// subsystem's name, so adding draws to one subsystem never shifts another's.
func Stream(seed uint64, name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// LogNormal draws from the log-normal distribution with the given median and 90th
// percentile (p90 >= median).
func LogNormal(r *rand.Rand, median, p90 float64) float64 {
	if p90 <= median {
		return median
	}
	sigma := math.Log(p90/median) / 1.2815515655446004
	return median * math.Exp(sigma*r.NormFloat64())
}

// Seconds converts float seconds to a Duration, rounded to the millisecond.
func Seconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1000)) * time.Millisecond
}
