package tune

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/replay"
	"github.com/smartscale/smartscale/sim/world"
)

// testSpace is small on purpose: 6 points on the 40-minute golden scenario, 2 seeds.
const testSpace = `{"scale_up_sustain": ["1m", "3m"], "scale_up_max_step": {"min": 2, "max": 4}}`

func testSpec(t testing.TB, space string) Spec {
	t.Helper()
	sc, err := scenarios.Load("../../testdata/golden/short.json")
	if err != nil {
		t.Fatal(err)
	}
	return Spec{Space: []byte(space), Base: engine.DefaultPolicy(), Scenarios: []Scenario{{Source: "short.json", Scenario: sc}},
		Seeds: []uint64{1, 2}, Budget: 100, SampleSeed: 1, SLOMinutes: 9, MaxFlaps: -1, Shard: Whole, Command: "go run ./sim tune (test)"}
}

func sweep(t *testing.T, spec Spec, dir string, opt Options) *Outcome {
	t.Helper()
	pl, err := NewPlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := RunSweep(context.Background(), pl, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// files reads every file under dir by its relative path.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	var names []string
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !bytes.Equal(got[n], want[n]) {
			t.Errorf("%s: %s differs", what, n)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: extra file %s", what, n)
		}
	}
}

// TestParallelAndShardsGiveTheSameBytes: P = 1 and P = 2, and the merges of 1, 2 and 3
// shards, write the same files byte for byte (points.jsonl, frontier.json and
// best-policy.json among them).
func TestParallelAndShardsGiveTheSameBytes(t *testing.T) {
	root := t.TempDir()
	spec := testSpec(t, testSpace)
	sweep(t, spec, filepath.Join(root, "p1"), Options{Parallel: 1})
	want := files(t, filepath.Join(root, "p1"))
	for _, f := range []string{FilePoints, FileFrontier, FileBest, FilePointsCSV, FileReport, FileRuns, "plots/pareto.png"} {
		if len(want[f]) == 0 {
			t.Fatalf("%s missing or empty", f)
		}
	}
	sweep(t, spec, filepath.Join(root, "p2"), Options{Parallel: 2})
	sameFiles(t, "P=2 vs P=1", files(t, filepath.Join(root, "p2")), want)
	for n := 1; n <= 3; n++ {
		var dirs []string
		for i := range n {
			s := spec
			s.Shard = Shard{i, n}
			dir := filepath.Join(root, "shards", string(rune('0'+n)), string(rune('0'+i)))
			sweep(t, s, dir, Options{Parallel: 2})
			dirs = append(dirs, dir)
		}
		slices.Reverse(dirs) // the order given to merge does not matter
		out := filepath.Join(root, "merged", string(rune('0'+n)))
		if _, err := Merge(out, dirs); err != nil {
			t.Fatal(err)
		}
		sameFiles(t, "merge of "+string(rune('0'+n))+" shards", files(t, out), want)
	}
}

func readLines(t *testing.T, file string) []Line {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []Line
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var v Line
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestOutputsAgreeWithTheRuns checks the outputs against their definitions: the frontier is
// exactly the non-dominated points, the best policy the cheapest within the budget, and
// best-policy.json a policy file the engine reads back to that point's policy.
func TestOutputsAgreeWithTheRuns(t *testing.T) {
	dir := t.TempDir()
	spec := testSpec(t, testSpace)
	res := sweep(t, spec, dir, Options{})
	pts := readLines(t, filepath.Join(dir, FilePoints))
	if len(pts) != 6 {
		t.Fatalf("%d points", len(pts))
	}
	dominated := func(a Line) bool {
		for _, b := range pts {
			if b.Total.CostUSD <= a.Total.CostUSD && b.Total.SLOMinutes <= a.Total.SLOMinutes &&
				(b.Total.CostUSD < a.Total.CostUSD || b.Total.SLOMinutes < a.Total.SLOMinutes) {
				return true
			}
		}
		return false
	}
	var front []int
	best := -1
	for i, p := range pts {
		if dominated(p) == p.Frontier {
			t.Errorf("point %d: frontier %v, dominated %v", i, p.Frontier, dominated(p))
		}
		if p.Frontier {
			front = append(front, *p.Point)
		}
		within := true
		for _, s := range p.Scenarios {
			within = within && s.SLOMinutes <= spec.SLOMinutes
		}
		if within != p.WithinSLO {
			t.Errorf("point %d: within_slo %v", i, p.WithinSLO)
		}
		if within && (best < 0 || p.Total.CostUSD < pts[best].Total.CostUSD) {
			best = i
		}
	}
	var fr []Line
	data, _ := os.ReadFile(filepath.Join(dir, FileFrontier))
	if err := json.Unmarshal(data, &fr); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, l := range fr {
		got = append(got, *l.Point)
	}
	slices.Sort(got)
	if !slices.Equal(got, front) {
		t.Errorf("frontier.json %v, non-dominated points %v", got, front)
	}
	if best < 0 {
		t.Fatal("no point within the budget: the test space should have one")
	}
	b, ok := res.Summary.BestLine()
	if !ok || *b.Point != best {
		t.Fatalf("best point %v, want %d", b.Point, best)
	}
	f, err := os.Open(filepath.Join(dir, FileBest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := engine.ParsePolicy(f, engine.DefaultPolicy())
	if err != nil {
		t.Fatalf("best-policy.json is not a policy file: %v", err)
	}
	pl, _ := NewPlan(spec)
	if !reflect.DeepEqual(p, pl.Policies[best]) {
		t.Errorf("best-policy.json reads back as %+v, the point is %+v", p, pl.Policies[best])
	}
	// a flap limit leaves out the points that flap more
	spec.MaxFlaps = 0
	pl0, _ := NewPlan(spec)
	runs, _ := readRuns(dir)
	sum0, err := Summarize(pl0, runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range sum0.Points {
		flaps := false
		for _, s := range l.Scenarios {
			flaps = flaps || s.Flaps > 0
		}
		if l.WithinFlaps == flaps {
			t.Errorf("point %d: within_flaps %v with flaps %+v", *l.Point, l.WithinFlaps, l.Scenarios)
		}
	}
	if b0, ok := sum0.BestLine(); ok && (!b0.WithinFlaps || !b0.WithinSLO) {
		t.Errorf("best under max-flaps 0: %+v", b0)
	}
	// x oracle: the cost over the oracle's, which is 1 for the oracle itself
	refs := res.Summary.References
	if o, _ := res.Summary.Reference("oracle"); o.Total.XOracle == nil || *o.Total.XOracle != 1 || len(refs) != len(References()) {
		t.Errorf("references %+v", refs)
	}
}

// TestInterruptAndResume: a sweep stopped after a few runs keeps them; -resume runs the
// rest only and writes what an uninterrupted sweep writes.
func TestInterruptAndResume(t *testing.T) {
	root := t.TempDir()
	spec := testSpec(t, testSpace)
	sweep(t, spec, filepath.Join(root, "whole"), Options{Parallel: 2})
	want := files(t, filepath.Join(root, "whole"))

	dir := filepath.Join(root, "stopped")
	pl, err := NewPlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	_, err = RunSweep(ctx, pl, dir, Options{Parallel: 2, Progress: func(int) Progress {
		return progressFunc(func() {
			if n.Add(1) == 5 {
				cancel()
			}
		})
	}})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err %v, want ErrInterrupted", err)
	}
	kept, err := readRuns(dir)
	if err != nil || len(kept) < 5 {
		t.Fatalf("%d runs kept (%v)", len(kept), err)
	}
	// a line cut short by the interruption is dropped on resume
	f, _ := os.OpenFile(filepath.Join(dir, FileRuns), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"unit":"p3","scenario":"sho`)
	f.Close()
	// -resume DIR: the sweep as sweep.json has it, scenarios included, runs what is missing
	loaded, err := LoadSpec(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded.Scenarios, spec.Scenarios) {
		t.Fatalf("sweep.json reads back other scenarios:\n%+v\nwant\n%+v", loaded.Scenarios, spec.Scenarios)
	}
	lpl, err := NewPlan(loaded)
	if err != nil {
		t.Fatal(err)
	}
	out, err := RunSweep(context.Background(), lpl, dir, Options{Parallel: 2, Resume: true})

	if err != nil {
		t.Fatal(err)
	}
	total := (len(References()) + len(pl.Points)) * 2
	if out.Resumed != len(kept) || out.Ran != total-len(kept) {
		t.Errorf("resumed %d, ran %d; kept %d of %d", out.Resumed, out.Ran, len(kept), total)
	}
	sameFiles(t, "resumed", files(t, dir), want)

	other := testSpec(t, `{"scale_up_sustain": ["2m"]}`)
	opl, _ := NewPlan(other)
	if _, err := RunSweep(context.Background(), opl, dir, Options{Resume: true}); err == nil || !strings.Contains(err.Error(), "another sweep") {
		t.Errorf("resuming another sweep: %v", err)
	}
}

type progressFunc func()

func (f progressFunc) Add(int64) { f() }
func (f progressFunc) Finish()   {}

// TestMergeRefusesBeforeWriting: shards of different sweeps, a missing, doubled or
// unfinished shard are errors naming the shard, and the output directory is not created.
func TestMergeRefusesBeforeWriting(t *testing.T) {
	root := t.TempDir()
	spec := testSpec(t, testSpace)
	shard := func(name string, s Spec, i, n int) string {
		s.Shard = Shard{i, n}
		dir := filepath.Join(root, name)
		sweep(t, s, dir, Options{})
		return dir
	}
	a0, a1 := shard("a0", spec, 0, 2), shard("a1", spec, 1, 2)
	other := spec
	other.Seeds = []uint64{1, 3}
	b1 := shard("b1", other, 1, 2)
	c0 := shard("c0", spec, 0, 3)
	unfinished := filepath.Join(root, "u1")
	if err := os.CopyFS(unfinished, os.DirFS(a1)); err != nil {
		t.Fatal(err)
	}
	runs, _ := os.ReadFile(filepath.Join(unfinished, FileRuns))
	lines := bytes.SplitAfter(runs, []byte("\n"))
	os.WriteFile(filepath.Join(unfinished, FileRuns), bytes.Join(lines[:len(lines)/2], nil), 0o644)
	for _, c := range []struct {
		dirs []string
		want string
	}{
		{[]string{a0, b1}, "shard 1/2 in " + b1 + " is of another sweep"},
		{[]string{a0}, "shards [1/2] of the 2 are missing"},
		{[]string{a0, a0}, "shard 0/2 is given twice"},
		{[]string{a0, c0}, "is one of 3 shards"},
		{[]string{a0, unfinished}, "shard 1/2 in " + unfinished + " is unfinished"},
		{[]string{a0, filepath.Join(root, "nothing")}, "is not a sweep directory"},
	} {
		out := filepath.Join(root, "out")
		_, err := Merge(out, c.dirs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("merge %v: %v, want %q", c.dirs, err, c.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("merge %v wrote %s", c.dirs, out)
		}
	}
}

func TestShardsAndSeeds(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"3/2", "i must be from 0 to 1"}, {"2/2", "i must be from 0 to 1"}, {"0/0", "n must be >= 1"},
		{"-1/2", "i must be from 0"}, {"a/b", "want i/n"}, {"1", "want i/n"},
	} {
		if _, err := ParseShard(c.in); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("shard %q: %v", c.in, err)
		}
	}
	if s, err := ParseShard("2/3"); err != nil || s != (Shard{2, 3}) {
		t.Errorf("2/3: %v %v", s, err)
	}
	if s, err := ParseSeeds("1-3,7,2"); err != nil || !slices.Equal(s, []uint64{1, 2, 3, 7}) {
		t.Errorf("seeds %v %v", s, err)
	}
	for _, bad := range []string{"5-1", "x", "1-", ""} {
		if _, err := ParseSeeds(bad); err == nil {
			t.Errorf("seeds %q: no error", bad)
		}
	}
	spec := testSpec(t, `{"scale_up_sustain": ["1m", "2m"]}`)
	spec.Shard = Shard{2, 3}
	if _, err := NewPlan(spec); err == nil || !strings.Contains(err.Error(), "2 points cannot make 3 shards") {
		t.Errorf("more shards than points: %v", err)
	}
}

// TestPresetSpace sweeps the presets themselves: "preset": ["brief", "responsive"] gives one
// point per preset, each run exactly as the simulator runs that preset (the responsive
// point's world writes the rule series its queries read), and each point's policy file reads
// back to its policy, preset included, so the recommendation is usable whichever it is.
func TestPresetSpace(t *testing.T) {
	dir := t.TempDir()
	spec := testSpec(t, `{"preset": ["brief", "responsive"], "scale_up_cooldown": ["4m"]}`)
	spec.Seeds = []uint64{1}
	sweep(t, spec, dir, Options{Parallel: 2})
	pl, err := NewPlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := readRuns(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Run{}
	for _, r := range runs {
		got[r.Unit] = r
	}
	sc := spec.Scenarios[0]
	var costs []float64
	for i, name := range []string{engine.PresetBrief, engine.PresetResponsive} {
		want, err := engine.PresetPolicy(name)
		if err != nil {
			t.Fatal(err)
		}
		want.ScaleUpCooldown = 4 * time.Minute
		if !reflect.DeepEqual(pl.Policies[i], want) {
			t.Errorf("point %d: policy %+v, want the %s preset with a 4m cooldown %+v", i, pl.Policies[i], name, want)
		}
		direct, err := runOne(context.Background(), job{unit: "direct", sc: sc, seed: 1, policy: want})
		if err != nil {
			t.Fatal(err)
		}
		r := got[fmt.Sprintf("p%d", i)]
		direct.Unit = r.Unit
		if r != direct {
			t.Errorf("point %d (%s): the sweep's run %+v, the simulator's %+v", i, name, r, direct)
		}
		costs = append(costs, r.CostUSD)
		b, err := pl.Policies[i].MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := engine.ParsePolicy(bytes.NewReader(b), engine.DefaultPolicy())
		if err != nil || !reflect.DeepEqual(back, pl.Policies[i]) {
			t.Errorf("point %d: its policy file %s reads back as %+v (%v)", i, b, back, err)
		}
		if name == engine.PresetResponsive && !bytes.Contains(b, []byte(`"preset":"responsive"`)) {
			t.Errorf("the responsive point's policy file does not name its preset: %s", b)
		}
	}
	// the responsive point's world has the series its rules read: its last tick reads them
	w, err := world.New(world.Config{Scenario: sc.Scenario, Seed: 1, Policy: pl.Policies[1], InitialWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.Run(context.Background())
	if err != nil || len(res.Records) == 0 {
		t.Fatalf("responsive run: %v", err)
	}
	if rd := res.Records[len(res.Records)-1].Observation.Readings; !rd.HPADesired.OK() || !rd.RequestedCPUMax.OK() {
		t.Errorf("the responsive point's last tick lacks the rules' readings: HPA desired %+v, requested CPU %+v", rd.HPADesired, rd.RequestedCPUMax)
	}
	if costs[0] == costs[1] {
		t.Errorf("both presets cost $%v: the preset did not reach the runs", costs[0])
	}
	lines := readLines(t, filepath.Join(dir, FilePoints))
	if len(lines) != 2 || !bytes.Contains(lines[1].Policy, []byte(`"preset":"responsive"`)) {
		t.Errorf("points.jsonl: %+v", lines)
	}
}

// TestSweepJSONKeepsScenarios: every built-in scenario, a scenario file and a recording's
// derived scenario read back from sweep.json as they were loaded, what the parser derives
// included (the JSON form alone lacks the node's cores and the HPA's durations).
func TestSweepJSONKeepsScenarios(t *testing.T) {
	var scs []scenarios.Scenario
	for _, name := range append(scenarios.Names(), "../../testdata/golden/short.json") {
		sc, err := scenarios.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		scs = append(scs, sc)
	}
	at := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	_, rec, err := replay.Scenario("recorded", "a recording's demand", []replay.DemandPoint{
		{Time: at, RPS: 120.5, Workers: 3}, {Time: at.Add(time.Minute), RPS: 333.25, Workers: 3}}, scenarios.DefaultSim())
	if err != nil {
		t.Fatal(err)
	}
	scs = append(scs, rec)
	for _, sc := range scs {
		spec := testSpec(t, testSpace)
		spec.Scenarios = []Scenario{{Source: sc.Name, Scenario: sc}}
		pl, err := NewPlan(spec)
		if err != nil {
			t.Fatal(err)
		}
		man, err := pl.manifest()
		if err != nil {
			t.Fatal(err)
		}
		back, _, err := readManifest(man)
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		if !reflect.DeepEqual(back.Scenarios[0].Scenario, sc) {
			t.Errorf("%s reads back as\n%+v\nwant\n%+v", sc.Name, back.Scenarios[0].Scenario, sc)
		}
	}
}
