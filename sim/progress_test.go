package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProgressIntoAFileHasNoCarriageReturns: `go run ./sim -scenario diurnal -compare 2>err.log`
// writes plain progress lines, one every 10%, and -quiet writes none.
func TestProgressIntoAFileHasNoCarriageReturns(t *testing.T) {
	dir := t.TempDir()
	for _, quiet := range []bool{false, true} {
		log, err := os.Create(filepath.Join(dir, "err.log"))
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-scenario", "diurnal", "-out", filepath.Join(dir, "out")}
		if quiet {
			args = append(args, "-quiet")
		} else {
			args = append(args, "-compare")
		}
		code := run(context.Background(), args, &bytes.Buffer{}, log)
		log.Close()
		b, err := os.ReadFile(log.Name())
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, b)
		}
		if bytes.ContainsRune(b, '\r') {
			t.Errorf("%v: carriage return in stderr written to a file: %q", args, b)
		}
		var lines []string
		for l := range strings.Lines(string(b)) {
			if strings.HasPrefix(l, "simulated hours of diurnal: ") {
				lines = append(lines, l)
			}
		}
		want := 10
		if quiet {
			want = 0
		}
		if len(lines) != want {
			t.Errorf("%v: %d progress lines, want %d:\n%s", args, len(lines), want, b)
		}
		if !quiet && len(lines) > 0 && lines[len(lines)-1] != "simulated hours of diurnal: 100% (24/24)\n" {
			t.Errorf("last progress line %q, want 100%% (24/24)", lines[len(lines)-1])
		}
	}
}
