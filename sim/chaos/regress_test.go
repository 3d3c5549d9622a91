package chaos

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartscale/smartscale/scenarios"
)

// regression is one bug the harness found: the seed and schedule that showed it, kept in
// testdata/chaos/NAME.json.
type regression struct {
	Name     string `json:"name"`
	Bug      string `json:"bug"`
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	Schedule string `json:"schedule"`
}

func TestChaosRegressions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "chaos", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no regression files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
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
			sc, err := scenarios.Load(r.Scenario)
			if err != nil {
				t.Fatal(err)
			}
			// runChaos fails the test on any violation and names the seed and schedule
			runChaos(t, sc, r.Seed, r.Schedule, Options{Twin: true})
		})
	}
}
