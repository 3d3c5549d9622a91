package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/smartscale/smartscale/sim/tune"
)

func TestTuneHelpDocumentsEveryFlag(t *testing.T) {
	code, _, stderr := runCLI(t, "tune", "-h")
	if code != 0 {
		t.Fatalf("tune -h exit %d", code)
	}
	for _, f := range []string{"-space", "-scenario", "-replay", "-closed-loop", "-seeds", "-budget", "-slo-minutes", "-parallel",
		"-shard", "-resume", "-out", "-policy", "-sample-seed", "-max-flaps", "tune merge", "points.jsonl", "frontier.json", "best-policy.json", "report.html"} {
		if !strings.Contains(stderr, f) {
			t.Errorf("tune -h does not document %s", f)
		}
	}
	if code, _, stderr := runCLI(t, "tune", "merge", "-h"); code != 0 || !strings.Contains(stderr, "SHARD_DIR") {
		t.Errorf("tune merge -h: exit %d\n%s", code, stderr)
	}
}

// TestTuneBadInputBeforeAnySimulation: each mistake is an error naming it, with exit 2 and
// no output directory (so nothing was simulated).
func TestTuneBadInputBeforeAnySimulation(t *testing.T) {
	dir := t.TempDir()
	n := 0
	space := func(s string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("space-%d.json", n))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	short := "../testdata/golden/short.json"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-space", space(`{"scale_up_sustian": ["1m"]}`), "-scenario", short}, `key "scale_up_sustian"`},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m", "later"]}`), "-scenario", short}, `point 1 {"scale_up_sustain":"later"}`},
		{[]string{"-space", space(`{"scale_up_max_step": {"min": 5, "max": 3}}`), "-scenario", short}, `"scale_up_max_step": empty range`},
		{[]string{"-space", space(`{}`), "-scenario", short}, "zero points"},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`), "-scenario", short, "-shard", "3/2"}, `shard "3/2"`},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`), "-scenario", short, "-seeds", "3-1"}, "empty range 3-1"},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`), "-scenario", "no-such-scenario"}, `unknown scenario "no-such-scenario"`},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`), "-replay", "../testdata/recordings/diurnal-day.json"}, "-replay needs -closed-loop"},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`)}, "give the scenarios"},
		{[]string{"-scenario", short}, "-space FILE is required"},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`), "-scenario", short, "-budget", "0"}, "budget must be >= 1"},
		{[]string{"-resume", filepath.Join(dir, "nothing")}, "no such file"},
		{[]string{"-space", space(`{"preset": ["brief", "fast"]}`), "-scenario", short}, "point 1 {\"preset\":\"fast\"}:\n    policy: preset: unknown preset \"fast\""},
		{[]string{"-space", space(`{"scale_up_sustain": ["1m"]}`), "-scenario", short, "-policy", filepath.Join(dir, "no-policy.json")}, "reading policy"},
	} {
		out := filepath.Join(dir, "out")
		code, _, stderr := runCLI(t, append(append([]string{"tune"}, c.args...), "-out", out)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, stderr, c.want)
		}
		if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%v: %s was created", c.args, out)
		}
	}
}

func TestTuneRunsAndMerges(t *testing.T) {
	dir := t.TempDir()
	sp := filepath.Join(dir, "space.json")
	os.WriteFile(sp, []byte(`{"scale_up_sustain": ["1m", "3m"]}`), 0o644)
	args := []string{"tune", "-space", sp, "-scenario", "../testdata/golden/short.json", "-seeds", "1", "-slo-minutes", "10", "-quiet"}
	if code, _, stderr := runCLI(t, append(args, "-out", filepath.Join(dir, "whole"))...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for i := range 2 {
		if code, _, stderr := runCLI(t, append(args, "-shard", []string{"0/2", "1/2"}[i], "-out", filepath.Join(dir, "s", string(rune('0'+i))))...); code != 0 {
			t.Fatalf("shard %d: exit %d: %s", i, code, stderr)
		}
	}
	code, out, stderr := runCLI(t, "tune", "merge", "-out", filepath.Join(dir, "merged"), filepath.Join(dir, "s", "0"), filepath.Join(dir, "s", "1"))
	if code != 0 || !strings.Contains(out, "best: point") || !strings.Contains(out, "report: ") {
		t.Fatalf("merge: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, f := range []string{"points.jsonl", "frontier.json", "best-policy.json", "points.csv", "report.html"} {
		a, _ := os.ReadFile(filepath.Join(dir, "whole", f))
		b, _ := os.ReadFile(filepath.Join(dir, "merged", f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s: merged differs from whole", f)
		}
	}
	// the best policy runs as a policy file
	if code, _, stderr := runCLI(t, "-scenario", "../testdata/golden/short.json", "-policy", filepath.Join(dir, "whole", "best-policy.json"),
		"-quiet", "-out", filepath.Join(dir, "run")); code != 0 {
		t.Errorf("-policy best-policy.json: exit %d: %s", code, stderr)
	}
	// -resume with a flag that changes the sweep is refused, naming it
	code, _, stderr = runCLI(t, "tune", "-resume", filepath.Join(dir, "whole"), "-seeds", "1-2")
	if code != 2 || !strings.Contains(stderr, "-seeds") {
		t.Errorf("resume with other seeds: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runCLI(t, "tune", "-resume", filepath.Join(dir, "whole"), "-quiet"); code != 0 {
		t.Errorf("resume of a finished sweep: exit %d: %s", code, stderr)
	}
}

// TestTuneJobArgs: the Kubernetes Job's args (k3s/tune-job.yaml), with each completion index
// put in, are flags this tune reads into a valid sweep of the right shard.
func TestTuneJobArgs(t *testing.T) {
	data, err := os.ReadFile("../k3s/tune-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	var completions int
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj struct {
			Kind string `json:"kind"`
			Spec struct {
				Completions int `json:"completions"`
				Template    struct {
					Spec struct {
						Containers []struct {
							Args []string `json:"args"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind == "Job" {
			args, completions = obj.Spec.Template.Spec.Containers[0].Args, obj.Spec.Completions
		}
	}
	if len(args) == 0 || args[0] != "tune" {
		t.Fatalf("no tune Job in k3s/tune-job.yaml: %q", args)
	}
	space := filepath.Join(t.TempDir(), "space.json")
	os.WriteFile(space, []byte(`{"scale_up_sustain": ["1m", "2m", "3m", "4m", "5m"]}`), 0o644)
	for i := range completions {
		a := slices.Clone(args[1:])
		for k := range a {
			a[k] = strings.ReplaceAll(a[k], "$(JOB_COMPLETION_INDEX)", fmt.Sprint(i))
			if a[k] == "/config/space.json" {
				a[k] = space
			}
		}
		o, err := parseTuneFlags(a, io.Discard)
		if err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		pl, err := tunePlan(o)
		if err != nil {
			t.Fatalf("index %d: %v", i, err)
		}
		if pl.Spec.Shard.Index != i || pl.Spec.Shard.Count != completions || !strings.HasSuffix(o.out, fmt.Sprint(i)) {
			t.Errorf("index %d runs shard %s into %s", i, pl.Spec.Shard, o.out)
		}
	}
}

// TestTuneProgressIntoAFile: with stderr a file, tune writes internal/progress's plain lines
// (no carriage returns), the last at 100%; -quiet writes none.
func TestTuneProgressIntoAFile(t *testing.T) {
	dir := t.TempDir()
	sp := filepath.Join(dir, "space.json")
	os.WriteFile(sp, []byte(`{"scale_up_sustain": ["2m"]}`), 0o644)
	for i, quiet := range []bool{false, true} {
		log, err := os.Create(filepath.Join(dir, "err.log"))
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"tune", "-space", sp, "-scenario", "../testdata/golden/short.json", "-seeds", "1", "-out", filepath.Join(dir, fmt.Sprint(i))}
		if quiet {
			args = append(args, "-quiet")
		}
		var stdout strings.Builder
		code := run(t.Context(), args, &stdout, log)
		log.Close()
		b, _ := os.ReadFile(log.Name())
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, b)
		}
		if strings.ContainsRune(string(b), '\r') {
			t.Errorf("%v: carriage return in stderr written to a file: %q", args, b)
		}
		var lines []string
		for l := range strings.Lines(string(b)) {
			if strings.HasPrefix(l, "tune: runs: ") {
				lines = append(lines, l)
			}
		}
		runs := 1 + len(tune.References()) // the point and the references, on one scenario and seed
		if quiet {
			if len(lines) != 0 || len(b) != 0 || stdout.Len() != 0 {
				t.Errorf("-quiet wrote %q and %q", b, stdout.String())
			}
			continue
		}
		if want := fmt.Sprintf("tune: runs: 100%% (%d/%d)\n", runs, runs); len(lines) == 0 || lines[len(lines)-1] != want {
			t.Errorf("progress lines %q, want the last %q", lines, want)
		}
	}
}
