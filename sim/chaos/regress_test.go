package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

// regression is one bug the harness found: the seed and schedule that showed it, kept in
// testdata/chaos/NAME.json.
type regression struct {
	Name string `json:"name"`
	Bug  string `json:"bug"`
	// Scenario names a built-in scenario; else Start, Initial and Stages ([minutes,
	// target] pairs) build one, as the property generator does.
	Scenario string       `json:"scenario,omitempty"`
	Start    float64      `json:"start,omitempty"`
	Initial  int          `json:"initial,omitempty"`
	Stages   [][2]float64 `json:"stages,omitempty"`
	// Policy holds overrides of the default policy, as in a -policy file.
	Policy   json.RawMessage `json:"policy,omitempty"`
	Seed     uint64          `json:"seed"`
	Schedule string          `json:"schedule"`
	// Commands, instead of a run, is a command sequence of the lock-protocol
	// state-machine test (TestChaosProtocolRegressions replays it).
	Commands []string `json:"commands,omitempty"`
}

func loadRegressions(t *testing.T) map[string]regression {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "chaos", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no regression files: %v", err)
	}
	out := map[string]regression{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r regression
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if r.Name != name || r.Bug == "" {
			t.Fatalf("%s: name %q and a bug description are required", f, r.Name)
		}
		out[name] = r
	}
	return out
}

func TestChaosRegressions(t *testing.T) {
	regs := loadRegressions(t)
	names := slices.Sorted(maps.Keys(regs))
	for _, name := range names {
		r := regs[name]
		if len(r.Commands) > 0 {
			continue
		}
		t.Run(name, func(t *testing.T) {
			var err error
			var sc scenarios.Scenario
			if r.Scenario != "" {
				sc, err = scenarios.Load(r.Scenario)
			} else {
				var st []stage
				for _, s := range r.Stages {
					st = append(st, stage{int(s[0]), s[1]})
				}
				sc, err = parseScenario(r.Start, r.Initial, st)
			}
			if err != nil {
				t.Fatal(err)
			}
			pol := engine.DefaultPolicy()
			if len(r.Policy) > 0 {
				if pol, err = engine.ParsePolicy(bytes.NewReader(r.Policy), pol); err != nil {
					t.Fatal(err)
				}
			}
			cfg := world.Config{Scenario: sc, Seed: r.Seed, Policy: pol, InitialWorkers: -1}
			out, err := Run(context.Background(), cfg, mustSchedule(t, r.Schedule), Options{Twin: true, Determinism: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Violations) > 0 {
				t.Errorf("regression %s (seed %d, schedule %s):\n  %s", r.Name, r.Seed, r.Schedule, strings.Join(out.Violations, "\n  "))
			}
		})
	}
}
