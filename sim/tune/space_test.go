package tune

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/smartscale/smartscale/engine"
)

func TestParseSpace(t *testing.T) {
	sp, err := ParseSpace([]byte(`{
		"scale_up_sustain": ["1m", "2m"],
		"scale_up_max_step": {"min": 2, "max": 8, "step": 3},
		"scale_down_sustain": {"min": "5m", "max": "15m", "step": "5m"},
		"scale_up_cpu_percent": {"min": 60, "max": 70.5, "step": 2.5},
		"max_workers": 12,
		"queries": [{"pending": "sum(kube_pod_status_phase{phase=\"Pending\"})"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"scale_up_sustain":     {`"1m"`, `"2m"`},
		"scale_up_max_step":    {"2", "5", "8"},
		"scale_down_sustain":   {`"5m"`, `"10m"`, `"15m"`},
		"scale_up_cpu_percent": {"60.0", "62.5", "65.0", "67.5", "70.0"},
		"max_workers":          {"12"},
		"queries":              {`{"pending":"sum(kube_pod_status_phase{phase=\"Pending\"})"}`},
	}
	var keys []string
	for _, d := range sp.Dims {
		keys = append(keys, d.Key)
		var got []string
		for i := range d.Count() {
			got = append(got, string(d.Value(i)))
		}
		if !slices.Equal(got, want[d.Key]) {
			t.Errorf("%s: %v, want %v", d.Key, got, want[d.Key])
		}
	}
	if !slices.Equal(keys, []string{"scale_up_sustain", "scale_up_max_step", "scale_down_sustain", "scale_up_cpu_percent", "max_workers", "queries"}) {
		t.Errorf("keys not in the file's order: %v", keys)
	}
	if n, _ := sp.GridSize(); n != 2*3*3*5 {
		t.Errorf("grid %d", n)
	}
}

func TestParseSpaceErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ space, want string }{
		{`{}`, "zero points"},
		{`[]`, "JSON object"},
		{`{"scale_up_sustain": []}`, `"scale_up_sustain": empty list`},
		{`{"scale_up_max_step": {"min": 8, "max": 2}}`, `"scale_up_max_step": empty range`},
		{`{"scale_down_sustain": {"min": "15m", "max": "5m"}}`, `"scale_down_sustain": empty range`},
		{`{"scale_up_cpu_percent": {"min": 60.5, "max": 70}}`, `"scale_up_cpu_percent": a range of decimals`},
		{`{"scale_up_max_step": {"min": 2, "max": 8, "step": 0}}`, `"scale_up_max_step": step must be > 0`},
		{`{"scale_up_max_step": {"min": 2, "max": 8, "by": 2}}`, `"scale_up_max_step": a range is`},
		{`{"scale_up_max_step": {"max": 8}}`, `needs "min" and "max"`},
		{`{"scale_up_sustain": {"min": "1x", "max": "5m"}}`, `"scale_up_sustain": min: "1x" is not a duration`},
		{`{"scale_up_sustain": ["1m", "1m"]}`, `"scale_up_sustain": value "1m" is listed twice`},
		{`{"a": [1], "a": [2]}`, `"a" is given twice`},
		{`{"min_workers": {"min": 0, "max": 1e9}}`, `plain number`},
		{`{"min_workers": {"min": 0, "max": 100000000}}`, `at most 1000000`},
	} {
		_, err := ParseSpace([]byte(c.space))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.space, err, c.want)
		}
	}
}

func TestGridOrder(t *testing.T) {
	sp, err := ParseSpace([]byte(`{"scale_up_step": [1, 2], "scale_up_max_step": [3, 4, 5]}`))
	if err != nil {
		t.Fatal(err)
	}
	pts, mode := sp.Points(6, 1)
	if mode != ModeGrid || len(pts) != 6 {
		t.Fatalf("%s, %d points", mode, len(pts))
	}
	var docs []string
	for i, p := range pts {
		if p.Index != i {
			t.Errorf("point %d has index %d", i, p.Index)
		}
		docs = append(docs, string(p.Doc))
	}
	want := []string{`{"scale_up_step":1,"scale_up_max_step":3}`, `{"scale_up_step":1,"scale_up_max_step":4}`,
		`{"scale_up_step":1,"scale_up_max_step":5}`, `{"scale_up_step":2,"scale_up_max_step":3}`,
		`{"scale_up_step":2,"scale_up_max_step":4}`, `{"scale_up_step":2,"scale_up_max_step":5}`}
	if !slices.Equal(docs, want) {
		t.Errorf("grid\n%q\nwant\n%q", docs, want)
	}
}

// TestLatinHypercube: past the budget the sample has budget points, each key's strata each
// used once (a key with as many values as the budget takes every value once), the same for
// the same seed and different for another.
func TestLatinHypercube(t *testing.T) {
	sp, err := ParseSpace([]byte(`{"scale_up_cpu_percent": {"min": 51, "max": 90}, "scale_down_cpu_percent": {"min": 5, "max": 44},
		"scale_up_sustain": {"min": "30s", "max": "10m15s", "step": "15s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	pts, mode := sp.Points(40, 7)
	if mode != ModeLHS || len(pts) != 40 {
		t.Fatalf("%s, %d points", mode, len(pts))
	}
	for d, dim := range sp.Dims {
		strata := map[int]int{}
		for _, p := range pts {
			v := slices.Index(allValues(dim), string(p.Values[d]))
			strata[v*40/dim.Count()]++
		}
		if len(strata) != 40 {
			t.Errorf("%s: %d of 40 strata used", dim.Key, len(strata))
		}
	}
	again, _ := sp.Points(40, 7)
	other, _ := sp.Points(40, 8)
	if !slices.EqualFunc(pts, again, func(a, b Point) bool { return string(a.Doc) == string(b.Doc) }) {
		t.Error("the same seed gave another sample")
	}
	if slices.EqualFunc(pts, other, func(a, b Point) bool { return string(a.Doc) == string(b.Doc) }) {
		t.Error("another seed gave the same sample")
	}
}

func allValues(d Dim) []string {
	var out []string
	for i := range d.Count() {
		out = append(out, string(d.Value(i)))
	}
	return out
}

func TestPoliciesThroughTheEngine(t *testing.T) {
	base := engine.DefaultPolicy()
	policies := func(space string) ([]engine.Policy, error) {
		sp, err := ParseSpace([]byte(space))
		if err != nil {
			t.Fatal(err)
		}
		pts, _ := sp.Points(100, 1)
		return Policies(sp, pts, base)
	}
	if _, err := policies(`{"scale_up_sustain": ["1m"], "scale_up_sustian": ["2m"]}`); err == nil ||
		!strings.Contains(err.Error(), `key "scale_up_sustian"`) {
		t.Errorf("unknown key: %v", err)
	}
	// scale_down_cpu_percent must stay below scale_up_cpu_percent: one of four points fails
	_, err := policies(`{"scale_up_cpu_percent": [60, 80], "scale_down_cpu_percent": [30, 70]}`)
	if err == nil || !strings.Contains(err.Error(), "1 of 4 points") ||
		!strings.Contains(err.Error(), `point 1 {"scale_up_cpu_percent":60,"scale_down_cpu_percent":70}`) ||
		!strings.Contains(err.Error(), "scale_down_cpu_percent (70) must be below") {
		t.Errorf("rejected points: %v", err)
	}
	if _, err := policies(`{"scale_up_sustain": ["1m", "soon"]}`); err == nil ||
		!strings.Contains(err.Error(), `point 1 {"scale_up_sustain":"soon"}`) || !strings.Contains(err.Error(), "scale_up_sustain") {
		t.Errorf("bad value: %v", err)
	}
	pols, err := policies(`{"preset": ["brief", "responsive"], "scale_up_sustain": ["1m", "2m"]}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 4 || pols[0].Preset != engine.PresetBrief || pols[2].Preset != engine.PresetResponsive ||
		pols[3].ScaleUpSustain.Minutes() != 2 || reflect.DeepEqual(pols[2].Rules, pols[0].Rules) {
		t.Errorf("presets: %+v", pols)
	}
}

// TestShippedSpaces: the spaces of the README's and docs/tune.md's examples are the grids
// they say (96 and 72 points within the default budget) of policies the engine accepts.
func TestShippedSpaces(t *testing.T) {
	for file, want := range map[string]int{"space.json": 96, "presets.json": 72} {
		data, err := os.ReadFile(filepath.Join("../../testdata/tune", file))
		if err != nil {
			t.Fatal(err)
		}
		sp, err := ParseSpace(data)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		pts, mode := sp.Points(100, 1)
		if len(pts) != want || mode != ModeGrid {
			t.Errorf("%s: %d points (%s), want the %d-point grid", file, len(pts), mode, want)
		}
		if _, err := Policies(sp, pts, engine.DefaultPolicy()); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
}
