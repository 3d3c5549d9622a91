package main

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progressBar is what tune needs of a progress display. newProgress is the one place that
// makes it: the shared internal/progress bar (a bar with ETA on a terminal) replaces
// plainProgress there once it is on main.
type progressBar interface {
	Add(n int64)
	Finish()
}

func newProgress(w io.Writer, label string, total int64) progressBar {
	return &plainProgress{w: w, label: label, total: total, start: time.Now()}
}

// plainProgress prints a line at every tenth of the total, with an estimate of the rest
// (wall-clock time, for the display only: it never reaches a simulation).
type plainProgress struct {
	mu          sync.Mutex
	w           io.Writer
	label       string
	total, done int64
	shown       int64 // tenths printed
	start       time.Time
}

func (p *plainProgress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.total <= 0 {
		return
	}
	if tenth := 10 * p.done / p.total; tenth > p.shown {
		p.shown = tenth
		el := time.Since(p.start)
		eta := time.Duration(float64(el) * float64(p.total-p.done) / float64(max(p.done, 1)))
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%), %v elapsed, about %v to go\n", p.label, p.done, p.total, 100*p.done/p.total,
			el.Round(time.Second), eta.Round(time.Second))
	}
}

func (p *plainProgress) Finish() {}
