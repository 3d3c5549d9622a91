package tune

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/baseline"
	"github.com/smartscale/smartscale/sim/world"
)

// Files of a sweep directory.
const (
	FileManifest   = "sweep.json"      // the sweep: space, base policy, scenarios, seeds, shard
	FileSpace      = "space.json"      // the space file as given
	FileRuns       = "runs.jsonl"      // one line per finished run (what -resume and merge read)
	FilePoints     = "points.jsonl"    // one line per point: per scenario and total measures
	FilePointsCSV  = "points.csv"      // the same as a table
	FileFrontier   = "frontier.json"   // the non-dominated points
	FileReferences = "references.json" // the base policy, the baselines and the oracle
	FileBest       = "best-policy.json"
	FileReport     = "report.html"
)

// Run is the outcome of one world: a unit (a point "p<i>" or a reference) on one scenario
// and seed. A line of runs.jsonl.
type Run struct {
	Unit           string  `json:"unit"`
	Scenario       string  `json:"scenario"`
	Seed           uint64  `json:"seed"`
	CostUSD        float64 `json:"cost_usd"`
	SLOMinutes     int     `json:"slo_violation_minutes"`
	P95Ms          float64 `json:"p95_ms"`
	Flaps          int     `json:"flaps"`
	NodeHours      float64 `json:"node_hours"`
	ScaleUps       int     `json:"scale_ups"`
	ScaleDowns     int     `json:"scale_downs"`
	MaxWorkers     int     `json:"max_workers"`
	DroppedPercent float64 `json:"dropped_percent"`
}

type runKey struct {
	unit, scenario string
	seed           uint64
}

func (r Run) key() runKey { return runKey{r.Unit, r.Scenario, r.Seed} }

// PointUnit names point i's runs.
func PointUnit(i int) string { return fmt.Sprintf("p%d", i) }

// Progress shows a sweep's progress; Add is called once per finished run, from any
// goroutine.
type Progress interface {
	Add(n int64)
	Finish()
}

// Options are how a sweep runs; none of them changes its results.
type Options struct {
	Parallel int // worlds at once (0: GOMAXPROCS)
	// Resume requires the directory to hold the sweep already (a sweep into a directory that
	// holds it continues it either way).
	Resume bool
	// Progress, when set, makes the progress display for this many runs.
	Progress func(total int) Progress
}

// ErrInterrupted is returned when the context ends a sweep: the finished runs are kept in
// runs.jsonl and -resume continues.
var ErrInterrupted = errors.New("interrupted")

// Outcome is what a finished sweep wrote.
type Outcome struct {
	Ran, Resumed int
	Summary      *Summary
}

// job is one run to do.
type job struct {
	unit   string
	policy engine.Policy
	sc     Scenario
	seed   uint64
}

func (pl *Plan) jobs() []job {
	var out []job
	for _, sc := range pl.Spec.Scenarios {
		for _, seed := range pl.Spec.Seeds {
			for _, ref := range References() {
				out = append(out, job{unit: ref, policy: pl.Spec.Base, sc: sc, seed: seed})
			}
			for _, i := range pl.MinePoints() {
				out = append(out, job{unit: PointUnit(i), policy: pl.Policies[i], sc: sc, seed: seed})
			}
		}
	}
	return out
}

// RunSweep runs the plan's shard into dir and writes the outputs. Each world runs in one
// goroutine with its own seeded streams, so the outputs do not depend on Parallel or on
// the order runs finish in. When ctx ends, the finished runs stay in runs.jsonl and the
// error is ErrInterrupted.
func RunSweep(ctx context.Context, pl *Plan, dir string, opt Options) (*Outcome, error) {
	done, err := prepareDir(pl, dir, opt.Resume)
	if err != nil {
		return nil, err
	}
	var todo []job
	for _, j := range pl.jobs() {
		if _, ok := done[runKey{j.unit, j.sc.Scenario.Name, j.seed}]; !ok {
			todo = append(todo, j)
		}
	}
	// longest worlds first, so the last ones to finish are short
	slices.SortStableFunc(todo, func(a, b job) int { return cmp.Compare(b.sc.Scenario.Duration(), a.sc.Scenario.Duration()) })
	out := &Outcome{Ran: len(todo), Resumed: len(done)}
	if err := runJobs(ctx, todo, dir, opt, done); err != nil {
		return nil, err
	}
	runs := slices.Collect(mapValues(done))
	if err := writeRuns(dir, runs); err != nil {
		return nil, err
	}
	if out.Summary, err = WriteOutputs(dir, pl, runs); err != nil {
		return nil, err
	}
	return out, nil
}

func mapValues(m map[runKey]Run) func(func(Run) bool) {
	return func(yield func(Run) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

// prepareDir creates dir with the manifest, or, when dir already holds this sweep's shard
// (an interrupted run, a retried Kubernetes pod), reads the runs it has: they are skipped.
// A directory of another sweep is an error; with resume the directory must hold the sweep.
func prepareDir(pl *Plan, dir string, resume bool) (map[runKey]Run, error) {
	man, err := pl.manifest()
	if err != nil {
		return nil, err
	}
	done := map[runKey]Run{}
	old, err := readFile(dir, FileManifest)
	switch {
	case err == nil:
		_, m, err := readManifest(old)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		if m.Sweep != pl.ID || m.Shard != pl.Spec.Shard {
			return nil, fmt.Errorf("%s holds another sweep (or shard %s): give another -out", dir, m.Shard)
		}
		runs, err := readRuns(dir)
		if err != nil {
			return nil, err
		}
		valid := map[runKey]bool{}
		for _, j := range pl.jobs() {
			valid[runKey{j.unit, j.sc.Scenario.Name, j.seed}] = true
		}
		for _, r := range runs {
			if !valid[r.key()] {
				return nil, fmt.Errorf("%s/%s: run %s on %s seed %d is not one of this sweep's", dir, FileRuns, r.Unit, r.Scenario, r.Seed)
			}
			done[r.key()] = r
		}
		return done, writeRuns(dir, runs) // drops a line cut short
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	case resume:
		return nil, fmt.Errorf("-resume %s: no %s there", dir, FileManifest)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	return done, errors.Join(
		os.WriteFile(filepath.Join(dir, FileSpace), spaceFile(pl.Spec.Space), 0o644),
		os.WriteFile(filepath.Join(dir, FileManifest), man, 0o644),
		os.WriteFile(filepath.Join(dir, FileRuns), nil, 0o644))
}

// runJobs runs the jobs on opt.Parallel goroutines, appending each finished run to
// runs.jsonl (one line, flushed) and to done.
func runJobs(ctx context.Context, todo []job, dir string, opt Options, done map[runKey]Run) error {
	par := opt.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	var bar Progress = nopProgress{}
	if opt.Progress != nil && len(todo) > 0 { // nothing left to run: no progress to show
		bar = opt.Progress(len(todo))
	}
	defer bar.Finish()
	total := len(done) + len(todo)
	f, err := os.OpenFile(filepath.Join(dir, FileRuns), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	var firstErr error
	next := make(chan job)
	var wg sync.WaitGroup
	for range min(par, max(len(todo), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				r, err := runOne(ctx, j)
				mu.Lock()
				if err == nil {
					line, _ := json.Marshal(r)
					if _, err = f.Write(append(line, '\n')); err == nil {
						done[r.key()] = r
					}
				}
				if err != nil && firstErr == nil && ctx.Err() == nil {
					firstErr = fmt.Errorf("%s on %s seed %d: %w", j.unit, j.sc.Scenario.Name, j.seed, err)
				}
				mu.Unlock()
				if err == nil {
					bar.Add(1)
				}
			}
		}()
	}
feed:
	for _, j := range todo {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %d of %d runs done, kept in %s", ErrInterrupted, len(done), total, filepath.Join(dir, FileRuns))
	}
	return nil
}

type nopProgress struct{}

func (nopProgress) Add(int64) {}
func (nopProgress) Finish()   {}

// runOne simulates one unit on one scenario and seed.
func runOne(ctx context.Context, j job) (Run, error) {
	var res *world.Result
	var err error
	if b, ok := baseline.ByName(j.unit); ok && j.unit != RefBase {
		res, err = b.Run(ctx, j.sc.Scenario, j.seed, j.policy)
	} else {
		var w *world.World
		w, err = world.New(world.Config{Scenario: j.sc.Scenario, Seed: j.seed, Policy: j.policy, InitialWorkers: -1})
		if err == nil {
			res, err = w.Run(ctx)
		}
	}
	if err != nil {
		return Run{}, err
	}
	s := res.Summary
	r := Run{Unit: j.unit, Scenario: j.sc.Scenario.Name, Seed: j.seed, CostUSD: s.CostUSD, SLOMinutes: s.SLOViolationMinutes,
		P95Ms: s.Latency.P95, Flaps: s.Flaps, NodeHours: s.NodeHours, ScaleUps: s.ScaleUps, ScaleDowns: s.ScaleDowns,
		MaxWorkers: s.MaxWorkers}
	if s.TotalRequests > 0 {
		r.DroppedPercent = round(100*s.DroppedRequests/s.TotalRequests, 4)
	}
	return r, nil
}

// readRuns reads runs.jsonl; a last line cut short by an interruption is dropped.
func readRuns(dir string) ([]Run, error) {
	data, err := readFile(dir, FileRuns)
	if err != nil {
		return nil, err
	}
	var out []Run
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		n++
		var r Run
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			if !bytes.HasSuffix(data, []byte("\n")) && n == bytes.Count(data, []byte("\n"))+1 {
				break // the line being written when the sweep stopped
			}
			return nil, fmt.Errorf("%s/%s line %d: %w", dir, FileRuns, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// writeRuns rewrites runs.jsonl in a fixed order (the order runs finish in varies).
func writeRuns(dir string, runs []Run) error {
	sortRuns(runs)
	var b bytes.Buffer
	for _, r := range runs {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return os.WriteFile(filepath.Join(dir, FileRuns), b.Bytes(), 0o644)
}

// sortRuns orders runs by unit (references in their order, then points by index),
// scenario name and seed.
func sortRuns(runs []Run) {
	rank := map[string]int{}
	for i, r := range References() {
		rank[r] = i - 1_000_000
	}
	unitRank := func(u string) int {
		if r, ok := rank[u]; ok {
			return r
		}
		var i int
		fmt.Sscanf(u, "p%d", &i)
		return i
	}
	slices.SortFunc(runs, func(a, b Run) int {
		return cmp.Or(cmp.Compare(unitRank(a.Unit), unitRank(b.Unit)), cmp.Compare(a.Scenario, b.Scenario), cmp.Compare(a.Seed, b.Seed))
	})
}

func readFile(dir, name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
