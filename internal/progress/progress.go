// Package progress reports the progress of long work on a writer: a bar redrawn in place
// (github.com/schollz/progressbar) when the writer is a terminal, else plain lines that read
// well in a pipe, a file or a CI log.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar is the progress of one piece of work. Every method is safe on a nil *Bar.
type Bar struct {
	mu     sync.Mutex
	w      io.Writer
	label  string
	total  int64
	done   int64
	shown  int64 // plain: the tenth last printed (-1: none yet)
	finish bool
	bar    *progressbar.ProgressBar // terminal only
}

// New reports progress of total units of work on w under label: a bar redrawn in place with
// the rate and ETA when w is a terminal (golang.org/x/term), else one plain line at every 10%
// (and at the end). It returns nil when w is nil; every method is safe on a nil *Bar.
func New(w io.Writer, label string, total int64) *Bar {
	if w == nil {
		return nil
	}
	return newBar(w, label, total, IsTerminal(w))
}

// IsTerminal reports whether w is a file open on a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func newBar(w io.Writer, label string, total int64, tty bool) *Bar {
	b := &Bar{w: w, label: label, total: max(total, 0), shown: -1}
	if tty && b.total > 0 {
		b.bar = progressbar.NewOptions64(b.total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return b
}

// Add records n more units done. It is safe for concurrent use.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finish {
		return
	}
	b.done = min(b.done+n, b.total)
	if b.bar != nil {
		_ = b.bar.Set64(b.done) // only fails when total is 0, which has no bar
		return
	}
	if tenth := b.tenths(); tenth > b.shown && tenth > 0 {
		b.shown = tenth
		b.line()
	}
}

// Finish ends the report: on a terminal it ends the redrawn line with a newline, else it
// prints the final line unless the last one printed already says as much.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finish {
		return
	}
	b.finish = true
	if b.bar != nil {
		if !b.bar.IsFinished() {
			_ = b.bar.Exit() // keeps the drawn state; OnCompletion writes the newline
		}
		return
	}
	if b.total == 0 || b.done < b.total || b.shown < 10 {
		b.line()
	}
}

// tenths is how many tenths of the work are done (10 when all of it is).
func (b *Bar) tenths() int64 {
	if b.total == 0 {
		return 0
	}
	return 10 * b.done / b.total
}

func (b *Bar) line() {
	pct := 100.0
	if b.total > 0 {
		pct = 100 * float64(b.done) / float64(b.total)
	}
	fmt.Fprintf(b.w, "%s: %.0f%% (%d/%d)\n", b.label, pct, b.done, b.total)
}
