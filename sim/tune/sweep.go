package tune

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/baseline"
)

// Spec is everything that decides a sweep's results.
type Spec struct {
	Space      json.RawMessage // the space file as given
	Base       engine.Policy   // the policy the points override
	Scenarios  []Scenario
	Seeds      []uint64
	Budget     int     // at most this many points: the grid when it fits, else a sample
	SampleSeed uint64  // seed of the Latin-hypercube sample
	SLOMinutes float64 // the recommendation's budget of SLO minutes per run, on every scenario
	MaxFlaps   float64 // and its limit of flaps per run on every scenario (< 0: none)
	Shard      Shard
	// Command is the command line of the sweep (without -shard or -out), for the report.
	Command string
}

// Scenario is one scenario of the sweep and where it came from (a built-in name, a file, a
// recording's closed-loop replay), for the reports.
type Scenario struct {
	Source   string
	Scenario scenarios.Scenario
}

// Shard is the slice of the points a run takes: point i belongs to shard i mod Count.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Whole is the unsharded sweep.
var Whole = Shard{Index: 0, Count: 1}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "i/n": the i-th (0-based, as Kubernetes' JOB_COMPLETION_INDEX) of n slices.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return Shard{}, fmt.Errorf("shard %q: want i/n, e.g. 0/3 (i from 0 to n-1)", s)
	case n < 1:
		return Shard{}, fmt.Errorf("shard %q: n must be >= 1", s)
	case i < 0 || i >= n:
		return Shard{}, fmt.Errorf("shard %q: i must be from 0 to %d (0-based, like JOB_COMPLETION_INDEX)", s, n-1)
	}
	return Shard{Index: i, Count: n}, nil
}

// ParseSeeds reads "1-5", "1,3,7" or "1-3,9": seeds in the given order, each once.
func ParseSeeds(s string) ([]uint64, error) {
	var out []uint64
	seen := map[uint64]bool{}
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seeds %q: %q is not a seed (want e.g. 1-5 or 1,3,7)", s, part)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 64); err != nil {
				return nil, fmt.Errorf("seeds %q: %q is not a range of seeds", s, part)
			}
		}
		if hi < lo {
			return nil, fmt.Errorf("seeds %q: empty range %s", s, part)
		}
		if hi-lo >= 10_000 {
			return nil, fmt.Errorf("seeds %q: %s is more than 10000 seeds", s, part)
		}
		for v := lo; v <= hi; v++ {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// References are the runs every point is compared with: the base policy through the engine,
// and every baseline of sim/baseline (the oracle among them) with the base policy's bounds.
func References() []string {
	out := []string{RefBase}
	for _, b := range baseline.All() {
		if b.Name != baseline.SmartScale {
			out = append(out, b.Name)
		}
	}
	return out
}

// RefBase names the base policy's reference runs.
const RefBase = "base"

// Plan is a validated sweep: its points and their policies, and the runs of this shard.
type Plan struct {
	Spec     Spec
	Space    Space
	Mode     string
	Points   []Point
	Policies []engine.Policy
	ID       string // the sweep's identity: a hash of the points, base, scenarios and seeds
}

// NewPlan checks a spec and builds its points; every problem is an error before any run.
func NewPlan(spec Spec) (*Plan, error) {
	var errs []error
	if spec.Budget < 1 {
		errs = append(errs, fmt.Errorf("budget must be >= 1, got %d", spec.Budget))
	}
	if len(spec.Seeds) == 0 {
		errs = append(errs, errors.New("no seeds"))
	}
	if len(spec.Scenarios) == 0 {
		errs = append(errs, errors.New("no scenarios: give -scenario or -replay"))
	}
	names := map[string]bool{}
	for _, sc := range spec.Scenarios {
		if names[sc.Scenario.Name] {
			errs = append(errs, fmt.Errorf("scenario %q is given twice (two files with one name?)", sc.Scenario.Name))
		}
		names[sc.Scenario.Name] = true
	}
	if spec.Shard.Count < 1 || spec.Shard.Index < 0 || spec.Shard.Index >= spec.Shard.Count {
		errs = append(errs, fmt.Errorf("shard %s: want i/n with 0 <= i < n", spec.Shard))
	}
	if math.IsNaN(spec.MaxFlaps) {
		errs = append(errs, errors.New("max-flaps is not a number"))
	}
	if spec.SLOMinutes < 0 {
		errs = append(errs, fmt.Errorf("slo-minutes must be >= 0, got %v", spec.SLOMinutes))
	}
	if err := spec.Base.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("base policy: %w", err))
	}
	sp, err := ParseSpace(spec.Space)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	pl := &Plan{Spec: spec, Space: sp}
	pl.Points, pl.Mode = sp.Points(spec.Budget, spec.SampleSeed)
	if pl.Policies, err = Policies(sp, pl.Points, spec.Base); err != nil {
		return nil, err
	}
	if len(pl.Points) < spec.Shard.Count {
		return nil, fmt.Errorf("shard %s: %d points cannot make %d shards", spec.Shard, len(pl.Points), spec.Shard.Count)
	}
	if pl.ID, err = pl.identity(); err != nil {
		return nil, err
	}
	return pl, nil
}

// Mine reports whether point i is in this run's shard.
func (pl *Plan) Mine(i int) bool { return i%pl.Spec.Shard.Count == pl.Spec.Shard.Index }

// MinePoints lists the indexes of the shard's points.
func (pl *Plan) MinePoints() []int {
	var out []int
	for i := range pl.Points {
		if pl.Mine(i) {
			out = append(out, i)
		}
	}
	return out
}

func (pl *Plan) identity() (string, error) {
	h := sha256.New()
	base, err := pl.Spec.Base.MarshalJSON()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "smartscale tune v1\nbase %s\nseeds %v\nslo %v\nflaps %v\n", base, pl.Spec.Seeds, pl.Spec.SLOMinutes, pl.Spec.MaxFlaps)
	for _, sc := range pl.Spec.Scenarios {
		sum, err := scenarioHash(sc.Scenario)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "scenario %s %s\n", sc.Scenario.Name, sum)
	}
	for _, pt := range pl.Points {
		fmt.Fprintf(h, "point %d %s\n", pt.Index, pt.Doc)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func scenarioHash(sc scenarios.Scenario) (string, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// reparse rebuilds a scenario read back from JSON through the scenario parser: the JSON
// form of a Scenario leaves out what the parser derives (the node's cores, the HPA's
// durations), without which it would simulate another cluster. It is an error when the
// rebuilt scenario is not the stored one.
func reparse(sc scenarios.Scenario) (scenarios.Scenario, error) {
	k6 := map[string]any{"executor": sc.Executor}
	if sc.Executor == "constant-arrival-rate" && len(sc.Stages) == 1 {
		k6["rate"], k6["duration"] = sc.StartRate, sc.Stages[0].Duration.String()
	} else {
		stages := make([]map[string]any, len(sc.Stages))
		for i, st := range sc.Stages {
			stages[i] = map[string]any{"duration": st.Duration.String(), "target": st.Target}
		}
		k6["startRate"], k6["stages"] = sc.StartRate, stages
	}
	data, err := json.Marshal(map[string]any{"description": sc.Description, "scenarios": map[string]any{"load": k6}, "smartscale": sc.Sim})
	if err != nil {
		return sc, err
	}
	back, err := scenarios.Parse(sc.Name, data)
	if err != nil {
		return sc, err
	}
	want, _ := json.Marshal(sc)
	if got, _ := json.Marshal(back); !bytes.Equal(got, want) {
		return sc, errors.New("does not read back as stored")
	}
	return back, nil
}

// manifest is sweep.json: the spec in full (scenarios included, so -resume and merge need
// nothing else), the sweep's identity and the shard.
type manifest struct {
	Version    int                `json:"version"`
	Sweep      string             `json:"sweep"`
	Shard      Shard              `json:"shard"`
	Mode       string             `json:"mode"`
	Points     int                `json:"points"`
	Space      json.RawMessage    `json:"space"`
	Base       json.RawMessage    `json:"base_policy"`
	Seeds      []uint64           `json:"seeds"`
	Budget     int                `json:"budget"`
	SampleSeed uint64             `json:"sample_seed"`
	SLOMinutes float64            `json:"slo_minutes"`
	MaxFlaps   float64            `json:"max_flaps"`
	Command    string             `json:"command"`
	Scenarios  []manifestScenario `json:"scenarios"`
}

type manifestScenario struct {
	Name     string             `json:"name"`
	Source   string             `json:"source"`
	SHA256   string             `json:"sha256"`
	Scenario scenarios.Scenario `json:"scenario"`
}

const manifestVersion = 1

func (pl *Plan) manifest() ([]byte, error) {
	base, err := pl.Spec.Base.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var space bytes.Buffer
	if err := json.Compact(&space, pl.Spec.Space); err != nil {
		return nil, err
	}
	m := manifest{Version: manifestVersion, Sweep: pl.ID, Shard: pl.Spec.Shard, Mode: pl.Mode, Points: len(pl.Points),
		Space: space.Bytes(), Base: base, Seeds: pl.Spec.Seeds, Budget: pl.Spec.Budget, SampleSeed: pl.Spec.SampleSeed,
		SLOMinutes: pl.Spec.SLOMinutes, MaxFlaps: pl.Spec.MaxFlaps, Command: pl.Spec.Command}
	for _, sc := range pl.Spec.Scenarios {
		sum, err := scenarioHash(sc.Scenario)
		if err != nil {
			return nil, err
		}
		m.Scenarios = append(m.Scenarios, manifestScenario{Name: sc.Scenario.Name, Source: sc.Source, SHA256: sum, Scenario: sc.Scenario})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}

// readManifest decodes sweep.json back into a spec, checking that the scenarios are the
// ones hashed and that the spec gives the same sweep.
func readManifest(data []byte) (Spec, manifest, error) {
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Spec{}, m, fmt.Errorf("sweep.json: %w", err)
	}
	if m.Version != manifestVersion {
		return Spec{}, m, fmt.Errorf("sweep.json: version %d, this simulator reads version %d", m.Version, manifestVersion)
	}
	base, err := engine.ParsePolicy(bytes.NewReader(m.Base), engine.DefaultPolicy())
	if err != nil {
		return Spec{}, m, fmt.Errorf("sweep.json: base_policy: %w", err)
	}
	spec := Spec{Space: m.Space, Base: base, Seeds: m.Seeds, Budget: m.Budget, SampleSeed: m.SampleSeed,
		SLOMinutes: m.SLOMinutes, MaxFlaps: m.MaxFlaps, Shard: m.Shard, Command: m.Command}
	for _, s := range m.Scenarios {
		sum, err := scenarioHash(s.Scenario)
		if err != nil {
			return Spec{}, m, err
		}
		if sum != s.SHA256 {
			return Spec{}, m, fmt.Errorf("sweep.json: scenario %s does not match its sha256 (edited by hand?)", s.Name)
		}
		sc, err := reparse(s.Scenario)
		if err != nil {
			return Spec{}, m, fmt.Errorf("sweep.json: scenario %s: %w", s.Name, err)
		}
		spec.Scenarios = append(spec.Scenarios, Scenario{Source: s.Source, Scenario: sc})
	}
	return spec, m, nil
}

// LoadSpec reads the spec of the sweep in dir (its sweep.json), for -resume.
func LoadSpec(dir string) (Spec, error) {
	data, err := readFile(dir, FileManifest)
	if err != nil {
		return Spec{}, err
	}
	spec, _, err := readManifest(data)
	if err != nil {
		return Spec{}, fmt.Errorf("%s: %w", dir, err)
	}
	return spec, nil
}

// Differences names what differs between two specs (for -resume with flags).
func Differences(a, b Spec) []string {
	var out []string
	var sa, sb bytes.Buffer
	_ = json.Compact(&sa, a.Space)
	_ = json.Compact(&sb, b.Space)
	if !bytes.Equal(sa.Bytes(), sb.Bytes()) {
		out = append(out, "-space")
	}
	pa, _ := a.Base.MarshalJSON()
	pb, _ := b.Base.MarshalJSON()
	if !bytes.Equal(pa, pb) {
		out = append(out, "-policy")
	}
	if !slices.Equal(a.Seeds, b.Seeds) {
		out = append(out, fmt.Sprintf("-seeds (%v vs %v)", a.Seeds, b.Seeds))
	}
	if a.Budget != b.Budget {
		out = append(out, fmt.Sprintf("-budget (%d vs %d)", a.Budget, b.Budget))
	}
	if a.SampleSeed != b.SampleSeed {
		out = append(out, fmt.Sprintf("-sample-seed (%d vs %d)", a.SampleSeed, b.SampleSeed))
	}
	if a.SLOMinutes != b.SLOMinutes {
		out = append(out, fmt.Sprintf("-slo-minutes (%v vs %v)", a.SLOMinutes, b.SLOMinutes))
	}
	if a.MaxFlaps != b.MaxFlaps {
		out = append(out, fmt.Sprintf("-max-flaps (%v vs %v)", a.MaxFlaps, b.MaxFlaps))
	}
	if a.Shard != b.Shard {
		out = append(out, fmt.Sprintf("-shard (%s vs %s)", a.Shard, b.Shard))
	}
	var na, nb []string
	for _, s := range a.Scenarios {
		h, _ := scenarioHash(s.Scenario)
		na = append(na, s.Scenario.Name+"@"+h)
	}
	for _, s := range b.Scenarios {
		h, _ := scenarioHash(s.Scenario)
		nb = append(nb, s.Scenario.Name+"@"+h)
	}
	if !slices.Equal(na, nb) {
		out = append(out, "-scenario/-replay")
	}
	return out
}

// spaceFile is space.json: the space indented, as the manifest holds it.
func spaceFile(space json.RawMessage) []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, space, "", "  "); err != nil {
		return space
	}
	return append(b.Bytes(), '\n')
}
