package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/event"
	"github.com/smartscale/smartscale/sim/world"
)

// Harness injects one schedule's faults into one world and checks the invariants while it
// runs. Build one per run with New, hand the world.Config to Configure, run the world,
// then call Finish.
type Harness struct {
	Seed     uint64
	Schedule Schedule
	// Injected counts the faults that fired, per kind.
	Injected map[string]int

	w    *world.World
	pol  engine.Policy
	rng  *rand.Rand
	step *engine.Step // nil for baselines: only world faults then
	cur  *invocation  // the invocation whose ports calls are running
	chk  *checker
	// the paused invocation, if any
	paused *coroutine
	nInv   int
	// every invocation's record, in the order they ended
	invocations []Invocation
}

// Invocation is one run of the engine's Step as the harness saw it: the primary tick, a
// duplicate delivery, an overlapping invocation or a resumed (paused) one. The CLI writes
// them to invocations.jsonl: decisions.jsonl has the primary ticks only.
type Invocation struct {
	ID     int           `json:"id"`
	Role   string        `json:"role"` // tick, duplicate, overlap
	Zombie bool          `json:"resumed,omitempty"`
	Error  string        `json:"error,omitempty"`
	Record engine.Record `json:"record"`
}

// New returns a harness for one run. Its run-time draws (which call is throttled, where an
// invocation dies) come from the seed's "chaos-run" stream.
func New(seed uint64, sched Schedule) *Harness {
	h := &Harness{Seed: seed, Schedule: slices.Clone(sched), Injected: map[string]int{},
		rng: event.Stream(seed, "chaos-run")}
	for _, k := range h.Schedule.Kinds() {
		h.Injected[k] = 0
	}
	return h
}

// Configure installs the harness in cfg: its Setup installs the faults and checks, and its
// Autoscaler wraps cfg's (SmartScale by default) to drive duplicate, killed and paused
// invocations.
func (h *Harness) Configure(cfg *world.Config) {
	prevSetup := cfg.Setup
	cfg.Setup = func(w *world.World) error {
		if prevSetup != nil {
			if err := prevSetup(w); err != nil {
				return err
			}
		}
		h.setup(w)
		return nil
	}
	inner := cfg.Autoscaler
	if inner == nil {
		inner = world.SmartScale
	}
	cfg.Autoscaler = func(w *world.World) (world.Autoscaler, error) {
		a, err := inner(w)
		if err != nil {
			return nil, err
		}
		return h.wrap(a), nil
	}
}

func (h *Harness) inject(kind string) { h.Injected[kind]++ }

// off is the offset of now from the start of the run.
func (h *Harness) off() time.Duration { return h.w.Loop.Now().Sub(world.Epoch) }

// active returns the first fault of kind active now.
func (h *Harness) active(kind string) (Fault, bool) {
	off := h.off()
	for _, f := range h.Schedule {
		if f.Kind == kind && f.Active(off) {
			return f, true
		}
	}
	return Fault{}, false
}

func (h *Harness) anyActive(kinds ...string) bool {
	for _, k := range kinds {
		if _, ok := h.active(k); ok {
			return true
		}
	}
	return false
}

// chance draws true with probability 1/n.
func (h *Harness) chance(n int) bool { return h.rng.IntN(n) == 0 }

// Finish ends the run: it lets a still-paused invocation finish (its records are checked
// like any other) and runs the end-of-run checks. It returns the violations, in time order.
func (h *Harness) Finish() []string {
	if h.paused != nil {
		h.resume()
	}
	if h.chk == nil {
		return []string{}
	}
	return h.chk.list()
}

// Options choose the whole-run checks that need more than one run.
type Options struct {
	// Twin runs the schedule again without notify-down and requires the same decisions
	// and actions (invariant 12). Only done when the schedule has notify-down.
	Twin bool
	// Determinism runs the same seed and schedule again and requires byte-identical
	// outputs (invariant 14).
	Determinism bool
}

// Outcome is the result of a chaos run.
type Outcome struct {
	Result      *world.Result
	Invocations []Invocation // every invocation of the (first) run
	World       *world.World // the world of the (first) run, for tests to inspect
	Injected    map[string]int
	Violations  []string
}

// Run runs cfg under the schedule, checks the invariants and returns the outcome. The
// returned error is a failure to run at all (bad config), not a violation.
func Run(ctx context.Context, cfg world.Config, sched Schedule, opts Options) (*Outcome, error) {
	out, err := runOnce(ctx, cfg, sched)
	if err != nil {
		return nil, err
	}
	if opts.Twin && slices.Contains(sched.Kinds(), NotifyDown) {
		twin, err := runOnce(ctx, cfg, sched.Without(NotifyDown))
		if err != nil {
			return nil, err
		}
		if d := diffDecisions(out.Result.Records, twin.Result.Records); d != "" {
			out.Violations = append(out.Violations, "inv 12: notification failures changed a decision: "+d)
		}
	}
	if opts.Determinism {
		again, err := runOnce(ctx, cfg, sched)
		if err != nil {
			return nil, err
		}
		a, b := fingerprint(out), fingerprint(again)
		if !bytes.Equal(a, b) {
			out.Violations = append(out.Violations, fmt.Sprintf("inv 14: same seed and schedule gave different outputs (%d vs %d bytes, first difference at byte %d)",
				len(a), len(b), firstDiff(a, b)))
		}
	}
	return out, nil
}

func runOnce(ctx context.Context, cfg world.Config, sched Schedule) (*Outcome, error) {
	h := New(cfg.Seed, sched)
	h.Configure(&cfg)
	w, err := world.New(cfg)
	if err != nil {
		return nil, err
	}
	res, err := w.Run(ctx)
	if err != nil {
		h.Finish()
		return nil, err
	}
	v := h.Finish()
	res.Summary.FaultsInjected = h.Injected
	res.Summary.InvariantViolations = v
	return &Outcome{Result: res, World: w, Injected: h.Injected, Violations: v, Invocations: h.invocations}, nil
}

// fingerprint is every output of a run, as bytes.
func fingerprint(o *Outcome) []byte {
	var buf bytes.Buffer
	_ = world.WriteSummary(&buf, o.Result.Summary)
	_ = world.WriteTimeline(&buf, o.Result.Timeline)
	_ = world.WriteDecisions(&buf, o.Result.Records)
	return buf.Bytes()
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// diffDecisions compares two runs' ticks, notification errors aside.
func diffDecisions(a, b []engine.Record) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d ticks vs %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		x.NotifyError, y.NotifyError = "", ""
		jx, _ := json.Marshal(x)
		jy, _ := json.Marshal(y)
		if !bytes.Equal(jx, jy) {
			return fmt.Sprintf("tick at %s: %s %q vs %s %q", x.Time.Format(time.RFC3339),
				x.Decision.Action, x.Decision.Reason, y.Decision.Action, y.Decision.Reason)
		}
	}
	return ""
}
