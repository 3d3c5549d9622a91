package handler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// Explanation is the output of the -explain mode: one JSON object.
type Explanation struct {
	At          time.Time          `json:"at"`
	Observation engine.Observation `json:"observation"`
	Decision    engine.Decision    `json:"decision"`
	Queries     map[string]string  `json:"queries"`
	// Trigger is what a tick at At would record: "alert:NAME[,NAME]" when the policy takes
	// alert ticks and Prometheus had the policy's scale-up alerts firing, else "schedule".
	Trigger string `json:"trigger"`
	// AlertsFiring are the policy's scale-up alerts Prometheus had firing at At (its ALERTS
	// series, so after their for: durations), whether or not the policy takes alert ticks.
	AlertsFiring []string `json:"alerts_firing,omitempty"`
	Note         string   `json:"note,omitempty"`
}

// ExplainOptions tune Explain.
type ExplainOptions struct {
	// Workers, when >= 0, overrides the worker count (else count(kube_node_info) minus the
	// policy's control_plane_nodes).
	Workers int
	// State, when non-nil, is the autoscaler's state (cooldowns, open operation); else the
	// zero state, so cooldowns count as elapsed.
	State *engine.State
}

// Explain observes through m alone (no cloud, no cluster) at `at` and decides with the
// policy. It fails only when it could not observe at all: Prometheus answered none of the
// queries.
func Explain(ctx context.Context, p engine.Policy, m engine.Metrics, at time.Time, opt ExplainOptions) (Explanation, error) {
	obs, err := engine.Observe(ctx, p, m, nil, nil, at)
	if err != nil {
		return Explanation{}, fmt.Errorf("observing: %w", err)
	}
	if err := unreachable(obs.Readings); err != nil {
		return Explanation{At: at.UTC(), Observation: obs}, err
	}
	var notes []string
	if opt.Workers >= 0 {
		obs.RegisteredWorkers, obs.WorkersKnown = opt.Workers, true
		notes = append(notes, fmt.Sprintf("worker count %d given on the command line", opt.Workers))
	} else {
		notes = append(notes, fmt.Sprintf("workers = count(kube_node_info) - %d control-plane node(s); no cloud listing, so launching instances are not counted", p.ControlPlaneNodes))
	}
	st := engine.State{}
	if opt.State != nil {
		st = *opt.State
		notes = append(notes, "cooldowns and the open operation come from the state store")
	} else {
		notes = append(notes, "no state store given: cooldowns count as elapsed and no operation is in progress")
	}
	d := Decide(at, p, obs, st)
	if d.Action == engine.ActionScaleDown && len(obs.Nodes) == 0 {
		notes = append(notes, "a scale-down needs the node list: the live tick picks the node")
	}
	if p.SizesByPods() {
		notes = append(notes, "the pod rules (sizing by pods, the requests rule) need the cluster's pods and nodes: a full tick (-once) reads them")
	}
	q := map[string]string{}
	for _, n := range p.ReadingNames() {
		q[n] = p.Expand(n)
	}
	firing, note := firingAlerts(ctx, p, m, at)
	if note != "" {
		notes = append(notes, note)
	}
	trigger := engine.TriggerSchedule
	switch {
	case p.AlertTicks && len(firing) > 0:
		trigger = engine.TriggerAlertPrefix + strings.Join(firing, ",")
	case len(firing) > 0:
		notes = append(notes, "scale-up alerts are firing but the policy does not take alert ticks (alert_ticks)")
	}
	return Explanation{At: at.UTC(), Observation: obs, Decision: d, Queries: q, Trigger: trigger, AlertsFiring: firing, Note: strings.Join(notes, "; ")}, nil
}

// firingAlerts asks Prometheus which of the policy's scale-up alerts were firing at `at`,
// from the ALERTS series its rule evaluation writes. No series means not firing; any other
// failure is reported in the note and counts as none firing.
func firingAlerts(ctx context.Context, p engine.Policy, m engine.Metrics, at time.Time) ([]string, string) {
	var firing []string
	var failed []string
	for _, r := range p.AlertRules() {
		s, err := m.Query(ctx, `count(ALERTS{alertname="`+r.Name+`",alertstate="firing"})`, at)
		var me *engine.MetricError
		switch {
		case errors.As(err, &me) && me.Problem == engine.ProblemEmpty:
		case err != nil:
			failed = append(failed, r.Name+": "+err.Error())
		case s.Value > 0:
			firing = append(firing, r.Name)
		}
	}
	slices.Sort(firing) // as the handler names an alert tick
	if len(failed) > 0 {
		return firing, "could not read the ALERTS series (" + strings.Join(failed, "; ") + ")"
	}
	return firing, ""
}

// Decide is engine.Decide, except that without a node list (explain mode) a wanted
// scale-down is reported as such instead of "no removable worker".
func Decide(at time.Time, p engine.Policy, obs engine.Observation, st engine.State) engine.Decision {
	d := engine.Decide(at, p, obs, st)
	if len(obs.Nodes) == 0 && d.Action == engine.ActionNone && strings.HasPrefix(d.Reason, "no removable worker") {
		d.Action, d.Delta, d.Target = engine.ActionScaleDown, -1, d.Workers-1
		d.Reason = strings.TrimPrefix(d.Reason, "no removable worker (ready, schedulable, managed, no critical pods): ")
	}
	return d
}

// unreachable returns an error when no query got an answer from Prometheus (connection,
// HTTP or timeout failures on every one): then nothing was observed.
func unreachable(r engine.Readings) error {
	var errs []error
	seen := map[string]bool{}
	for _, n := range engine.QueryNames() {
		rd := r.Get(n)
		switch rd.Problem {
		case engine.ProblemHTTP, engine.ProblemTimeout, engine.ProblemError, engine.ProblemMissing:
			if !seen[rd.Detail] {
				seen[rd.Detail] = true
				errs = append(errs, fmt.Errorf("%s: %s", n, rd.Detail))
			}
		default:
			return nil
		}
	}
	return fmt.Errorf("could not observe, Prometheus answered no query: %w", errors.Join(errs...))
}
