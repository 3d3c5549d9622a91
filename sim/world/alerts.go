package world

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// The alert path of a policy with alert_ticks: Prometheus evaluates the scale-up alert rules
// (engine.Policy.AlertRules) on the TSDB every RuleInterval with their for durations;
// Alertmanager groups the firing alerts of the cluster into one group, notifies group_wait
// after the group starts and at most every group_interval after that when its alerts change;
// SNS invokes the Lambda InvokeLatency later, and the tick runs with trigger "alert:NAMES".
// Resolved notifications (send_resolved) are delivered too: the handler does nothing with them,
// so the world does not tick for them.
const (
	RuleInterval   = 5 * time.Second  // the smartscale-scale-up rule group's interval (k3s/monitoring/alert-rules.yml)
	GroupWait      = 1 * time.Second  // the smartscale route of k3s/monitoring/alertmanager.yml (Alertmanager's default: 30 s)
	GroupInterval  = 30 * time.Second // the smartscale route (default 5 m)
	RepeatInterval = time.Minute      // the smartscale route (default 4 h)
	InvokeLatency  = 2 * time.Second  // Alertmanager -> SNS -> Lambda, invocation included
)

// AlertTicker is an autoscaler that can also tick when alerts fire (SmartScale's engine).
type AlertTicker interface {
	AlertTick(ctx context.Context, now time.Time, alerts []string) (engine.Record, error)
}

type alerting struct {
	rules   []engine.AlertRule
	pending map[string]time.Time // alert -> since when its expression holds
	// Alertmanager's group: notified holds the firing set last sent; next is when the next
	// notification is due (zero: none scheduled)
	notified []string
	last     time.Time
	next     time.Time
	active   bool // the group exists (an alert fired since it last resolved)
}

func newAlerting(p engine.Policy) *alerting {
	return &alerting{rules: p.AlertRules(), pending: map[string]time.Time{}}
}

// evaluate runs one rule evaluation at now and returns the alerts firing.
func (a *alerting) evaluate(ctx context.Context, m engine.Metrics, now time.Time) []string {
	var firing []string
	for _, r := range a.rules {
		// count() turns "any series" into one sample; an empty vector is "not firing"
		_, err := m.Query(ctx, "count("+r.Expr+")", now)
		if err != nil {
			delete(a.pending, r.Name)
			continue
		}
		since, ok := a.pending[r.Name]
		if !ok {
			a.pending[r.Name], since = now, now
		}
		if now.Sub(since) >= r.For {
			firing = append(firing, r.Name)
		}
	}
	return firing
}

// due updates Alertmanager's group with the alerts firing at now and returns the alerts a
// notification sends now (nil: none, or a resolved one, on which the handler does nothing).
// A new group waits GroupWait; a group whose alerts changed notifies GroupInterval after its
// last notification; an unchanged one repeats after RepeatInterval.
func (a *alerting) due(firing []string, now time.Time) []string {
	if !a.active {
		if len(firing) == 0 {
			return nil
		}
		a.active, a.next, a.notified, a.last = true, now.Add(GroupWait), nil, time.Time{}
	}
	if a.next.IsZero() {
		switch {
		case !slices.Equal(firing, a.notified):
			a.next = later(now, a.last.Add(GroupInterval))
		case !now.Before(a.last.Add(RepeatInterval)):
			a.next = now
		}
	}
	if a.next.IsZero() || now.Before(a.next) {
		return nil
	}
	a.notified, a.last, a.next = slices.Clone(firing), now, time.Time{}
	if len(firing) == 0 {
		a.active = false
		return nil
	}
	return firing
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// scheduleAlerts evaluates the rules every RuleInterval and runs an alert tick for each
// notification, InvokeLatency after it. Alertmanager's timers are its own: a notification due
// between two evaluations (group_wait is shorter than the rule interval) goes out when due,
// with the alerts of the last evaluation.
func (w *World) scheduleAlerts(ctx context.Context, at AlertTicker) {
	a := newAlerting(w.Cfg.Policy)
	w.notify = func(names []string) {
		w.Loop.After(InvokeLatency, func() {
			rec, err := at.AlertTick(ctx, w.Loop.Now(), names)
			w.m.tick(rec, err)
			if rec.Lock != engine.LockSkipped {
				w.m.alertTicks++
			}
			if w.AfterTick != nil {
				w.AfterTick(rec, err)
			}
		})
	}
	w.Loop.Every(Epoch.Add(RuleInterval+time.Second), RuleInterval, func() {
		now := w.Loop.Now()
		firing := a.evaluate(ctx, w.Metrics, now)
		if names := a.due(firing, now); len(names) > 0 {
			w.notify(names)
			return
		}
		if next := a.next; !next.IsZero() && next.Before(now.Add(RuleInterval)) {
			w.Loop.After(next.Sub(now), func() {
				if names := a.due(firing, w.Loop.Now()); len(names) > 0 {
					w.notify(names)
				}
			})
		}
	})
}

// DeliverAlert delivers one more notification of the firing alerts as Alertmanager would,
// outside its grouping (a redelivery, a flapping rule: the chaos harness's alert storm); the
// alert tick runs InvokeLatency later. It reports false when the run takes no alert ticks.
func (w *World) DeliverAlert(alerts []string) bool {
	if w.notify == nil {
		return false
	}
	w.notify(alerts)
	return true
}

// AlertTick implements AlertTicker.
func (s *stepper) AlertTick(ctx context.Context, now time.Time, alerts []string) (engine.Record, error) {
	s.n++
	return s.step.RunTriggered(ctx, now, fmt.Sprintf("alert-%d", s.n), engine.TriggerAlertPrefix+strings.Join(alerts, ","))
}
