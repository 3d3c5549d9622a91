package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartscale/smartscale/sim/chaos"
)

func TestChaosCLIList(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-chaos", "list"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(chaos.Catalogue()) {
		t.Fatalf("%d lines for %d kinds:\n%s", len(lines), len(chaos.Catalogue()), out.String())
	}
	for i, k := range chaos.Catalogue() {
		if !strings.HasPrefix(lines[i], k.Name+" ") {
			t.Errorf("line %d: %q, want kind %s", i, lines[i], k.Name)
		}
	}
}

func TestChaosCLIRun(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"-scenario", "flash-sale", "-chaos", "ec2-capacity,prom-nan", "-seed", "7", "-out", dir}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Faults     map[string]int `json:"faults_injected"`
		Violations *[]string      `json:"invariant_violations"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Faults["ec2-capacity"]; !ok || s.Faults["prom-nan"] == 0 {
		t.Errorf("faults_injected: %v", s.Faults)
	}
	if s.Violations == nil || len(*s.Violations) != 0 {
		t.Errorf("invariant_violations: %v, want []", s.Violations)
	}
	if !strings.Contains(out.String(), "all 15 hold") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

func TestChaosCLIErrors(t *testing.T) {
	for _, spec := range []string{"no-such-fault", "ec2-capacity@x+5m", ","} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"-chaos", spec, "-out", t.TempDir()}, &out, &errb); code == 0 {
			t.Errorf("-chaos %q: exit 0", spec)
		}
	}
}

func TestChaosReproduceCommand(t *testing.T) {
	o := options{scenario: "flash-sale", chaos: "all", seed: 7}
	if got, want := reproduce(o), "go run ./sim -scenario flash-sale -chaos all -seed 7"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	o = options{scenario: "my load.json", chaos: "ec2-capacity@10m+5m#3", seed: 1, policy: "p.json"}
	if got, want := reproduce(o), "go run ./sim -scenario 'my load.json' -chaos ec2-capacity@10m+5m#3 -seed 1 -policy p.json"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
