package tune

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
)

// BenchmarkPolicyDays runs sweep points (the engine with PromQL in the loop) on the 24-hour
// diurnal scenario, P worlds at once, and reports simulated policy-days per wall second:
// go test -run '^$' -bench PolicyDays ./sim/tune
func BenchmarkPolicyDays(b *testing.B) {
	sc, err := scenarios.Load("diurnal")
	if err != nil {
		b.Fatal(err)
	}
	days := sc.Duration().Hours() / 24
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("P=%d", par), func(b *testing.B) {
			var todo []job
			for i := range 2 * par { // two worlds per goroutine
				p := engine.DefaultPolicy()
				p.ScaleUpSustain = time.Duration(1+i) * time.Minute
				todo = append(todo, job{unit: PointUnit(i), policy: p, sc: Scenario{Scenario: sc}, seed: 1})
			}
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileRuns), nil, 0o644); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			n := 0
			for b.Loop() {
				if err := runJobs(context.Background(), todo, dir, Options{Parallel: par}, map[runKey]Run{}); err != nil {
					b.Fatal(err)
				}
				n += len(todo)
			}
			b.ReportMetric(float64(n)*days/time.Since(start).Seconds(), "policy-days/s")
		})
	}
}
