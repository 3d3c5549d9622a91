package progress

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestPlainLinesEveryTenth(t *testing.T) {
	tests := []struct {
		name  string
		total int64
		adds  []int64
		want  string
	}{
		{"one unit at a time", 20, repeat(1, 20),
			"work: 10% (2/20)\nwork: 20% (4/20)\nwork: 30% (6/20)\nwork: 40% (8/20)\nwork: 50% (10/20)\n" +
				"work: 60% (12/20)\nwork: 70% (14/20)\nwork: 80% (16/20)\nwork: 90% (18/20)\nwork: 100% (20/20)\n"},
		{"hours of a 24 h run", 24, repeat(1, 24),
			"work: 12% (3/24)\nwork: 21% (5/24)\nwork: 33% (8/24)\nwork: 42% (10/24)\nwork: 50% (12/24)\n" +
				"work: 62% (15/24)\nwork: 71% (17/24)\nwork: 83% (20/24)\nwork: 92% (22/24)\nwork: 100% (24/24)\n"},
		{"a jump over several tenths prints once", 10, []int64{1, 5, 4},
			"work: 10% (1/10)\nwork: 60% (6/10)\nwork: 100% (10/10)\n"},
		{"stopped early: Finish says where", 10, []int64{3, 0, 0},
			"work: 30% (3/10)\nwork: 30% (3/10)\n"},
		{"more than the total is capped", 4, []int64{3, 9},
			"work: 75% (3/4)\nwork: 100% (4/4)\n"},
		{"no work at all", 0, nil, "work: 100% (0/0)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			b := New(&buf, "work", tt.total)
			for _, n := range tt.adds {
				b.Add(n)
			}
			b.Finish()
			b.Add(1) // after Finish: ignored
			b.Finish()
			if got := buf.String(); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func repeat(n int64, times int) []int64 {
	out := make([]int64, times)
	for i := range out {
		out[i] = n
	}
	return out
}

func TestNilIsSilent(t *testing.T) {
	b := New(nil, "work", 10)
	if b != nil {
		t.Fatalf("New(nil) = %v, want nil", b)
	}
	b.Add(3) // must not panic
	b.Finish()
}

func TestConcurrentAdds(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "work", 1000)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range 100 {
				b.Add(1)
			}
		})
	}
	wg.Wait()
	b.Finish()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 10 || lines[9] != "work: 100% (1000/1000)" {
		t.Errorf("want 10 lines ending at 100%%, got %q", lines)
	}
}

func TestTerminalRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	b := newBar(&buf, "work", 50, true)
	for range 50 {
		b.Add(1)
	}
	b.Finish()
	out := buf.String()
	if !strings.Contains(out, "\r") || !strings.Contains(out, "work") || !strings.Contains(out, "50/50") {
		t.Errorf("terminal bar: want a line redrawn with \\r showing 50/50, got %q", out)
	}
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("terminal bar: want exactly one newline, at the end, got %q", out)
	}

	buf.Reset()
	b = newBar(&buf, "work", 50, true)
	b.Add(20)
	b.Finish() // stopped early: the line still ends
	if out := buf.String(); !strings.HasSuffix(out, "\n") || !strings.Contains(out, "20/50") {
		t.Errorf("terminal bar stopped at 20/50: want the line ended with a newline, got %q", out)
	}
}

func TestFilesAndPipesAreNotTerminals(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Error("a regular file reported as a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) || IsTerminal(&bytes.Buffer{}) {
		t.Error("a pipe or a buffer reported as a terminal")
	}
}
