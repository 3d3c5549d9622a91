package tune

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Merge joins the shard directories of one sweep into out, as if the sweep had run whole:
// the same sweep.json, runs.jsonl and outputs byte for byte. Every check comes first, and
// nothing is written when one fails: the shards must be of one sweep, all n of them, each
// once, each finished, and agree on the reference runs they all make.
func Merge(out string, dirs []string) (*Summary, error) {
	if len(dirs) == 0 {
		return nil, errors.New("merge: no shard directories given")
	}
	type shard struct {
		dir  string
		spec Spec
		m    manifest
		runs []Run
	}
	var shards []shard
	for _, dir := range dirs {
		data, err := readFile(dir, FileManifest)
		if err != nil {
			return nil, fmt.Errorf("merge: %s is not a sweep directory: %w", dir, err)
		}
		spec, m, err := readManifest(data)
		if err != nil {
			return nil, fmt.Errorf("merge: %s: %w", dir, err)
		}
		runs, err := readRuns(dir)
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if abs(dir) == abs(out) {
			return nil, fmt.Errorf("merge: -out %s is one of the shards: give another directory", out)
		}
		shards = append(shards, shard{dir, spec, m, runs})
	}
	first := shards[0]
	n := first.m.Shard.Count
	seen := map[int]string{}
	for _, s := range shards {
		switch {
		case s.m.Sweep != first.m.Sweep:
			return nil, fmt.Errorf("merge: shard %s in %s is of another sweep than %s in %s (sweep %.12s vs %.12s: a different space, base policy, scenarios, seeds or budget)",
				s.m.Shard, s.dir, first.m.Shard, first.dir, s.m.Sweep, first.m.Sweep)
		case s.m.Shard.Count != n:
			return nil, fmt.Errorf("merge: shard %s in %s is one of %d shards, %s in %s one of %d", s.m.Shard, s.dir, s.m.Shard.Count, first.m.Shard, first.dir, n)
		case seen[s.m.Shard.Index] != "":
			return nil, fmt.Errorf("merge: shard %s is given twice: %s and %s", s.m.Shard, seen[s.m.Shard.Index], s.dir)
		}
		seen[s.m.Shard.Index] = s.dir
	}
	var missing []string
	for i := range n {
		if seen[i] == "" {
			missing = append(missing, Shard{i, n}.String())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("merge: shards %v of the %d are missing", missing, n)
	}
	whole := first.spec
	whole.Shard = Whole
	pl, err := NewPlan(whole)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	all := map[runKey]Run{}
	refOf := map[runKey]string{}
	for _, s := range shards {
		spl := *pl
		spl.Spec.Shard = s.m.Shard
		want := map[runKey]bool{}
		for _, j := range spl.jobs() {
			want[runKey{j.unit, j.sc.Scenario.Name, j.seed}] = true
		}
		have := 0
		for _, r := range s.runs {
			k := r.key()
			if !want[k] {
				return nil, fmt.Errorf("merge: shard %s in %s has a run of %s on %s seed %d, which is not its own", s.m.Shard, s.dir, r.Unit, r.Scenario, r.Seed)
			}
			have++
			if prev, ok := all[k]; ok { // a reference every shard runs
				if prev != r {
					return nil, fmt.Errorf("merge: shards %s (%s) and %s disagree on %s on %s seed %d (built from different versions?)", s.m.Shard, s.dir, refOf[k], r.Unit, r.Scenario, r.Seed)
				}
				continue
			}
			all[k], refOf[k] = r, s.m.Shard.String()
		}
		if have < len(want) {
			return nil, fmt.Errorf("merge: shard %s in %s is unfinished: %d of its %d runs (go run ./sim tune -resume %s)", s.m.Shard, s.dir, have, len(want), s.dir)
		}
	}
	runs := make([]Run, 0, len(all))
	for _, r := range all {
		runs = append(runs, r)
	}
	sortRuns(runs)
	sum, err := Summarize(pl, runs)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	man, err := pl.manifest()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if err := errors.Join(os.WriteFile(filepath.Join(out, FileManifest), man, 0o644),
		os.WriteFile(filepath.Join(out, FileSpace), spaceFile(pl.Spec.Space), 0o644), writeRuns(out, runs)); err != nil {
		return nil, err
	}
	if _, err := WriteOutputs(out, pl, runs); err != nil {
		return nil, err
	}
	return sum, nil
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return filepath.Clean(a)
}
