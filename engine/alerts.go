package engine

import (
	"fmt"
	"strconv"
	"time"
)

// AlertRule is a Prometheus alerting rule for a scale-up condition: when it fires,
// Alertmanager sends a notification through SNS and the Lambda runs a tick at once instead
// of at the next 2-minute schedule (alert_ticks). The rules are data, like the queries: the
// simulator evaluates them on its TSDB with their for durations, and
// k3s/monitoring/alert-rules.yml holds the same expressions (a test keeps them equal for the
// responsive preset).
type AlertRule struct {
	Name    string
	Expr    string
	For     time.Duration
	Summary string
}

// Alert names.
const (
	AlertPodsUnschedulable = "SmartScalePodsUnschedulable"
	AlertHPAUnmet          = "SmartScaleHPAUnmet"
	AlertCPUHigh           = "SmartScaleCPUHigh"
	AlertPredictedGrowth   = "SmartScalePredictedGrowth"
)

// AlertRules returns the scale-up alert rules of the policy: pods unschedulable for 30 s; the
// HPAs wanting replicas they do not have, or replicas that do not fit (they grew in the last
// minute and pods are unschedulable: the pods are the HPA's new ones, not a pod that waits
// for a while for some other reason, which the 30 s rule is for), or the app turning away
// more than 1% of its requests (a saturated app's HPA under-asks), at once: the tick decides,
// the alert only asks for one, and the handler runs at most one alert tick per alert_tick_min_interval; CPU over
// the scale-up threshold for a minute; and, when the policy predicts, the predicted busy
// cores outgrowing the HPA's tolerance.
func (p Policy) AlertRules() []AlertRule {
	rules := []AlertRule{
		{Name: AlertPodsUnschedulable, For: 30 * time.Second,
			Expr:    `sum(kube_pod_status_unschedulable) > 0`,
			Summary: "pods the scheduler cannot place"},
		{Name: AlertHPAUnmet, For: 0,
			Expr: `sum(kube_horizontalpodautoscaler_status_desired_replicas) > sum(kube_horizontalpodautoscaler_status_current_replicas)` +
				` or (sum(kube_horizontalpodautoscaler_status_desired_replicas) > sum(kube_horizontalpodautoscaler_status_desired_replicas offset 1m)` +
				` and on() sum(kube_pod_status_unschedulable) > 0)` +
				` or sum(rate(http_requests_total{code=~"5.."}[1m])) > 0.01 * sum(rate(http_requests_total[1m]))`,
			Summary: "the HPAs want replicas they do not have or that do not fit, or the app turns requests away"},
		{Name: AlertCPUHigh, For: time.Minute,
			Expr:    p.Expand(ReadingCPU) + " > " + strconv.FormatFloat(p.ScaleUpCPUPercent, 'f', -1, 64),
			Summary: fmt.Sprintf("CPU above %g%%", p.ScaleUpCPUPercent)},
	}
	if p.PredictHorizon > 0 {
		rules = append(rules, AlertRule{Name: AlertPredictedGrowth,
			Expr:    p.Expand(ReadingBusyCoresPredicted) + " > " + strconv.FormatFloat(1+hpaTolerance, 'f', -1, 64) + " * " + p.Expand(ReadingBusyCores),
			Summary: fmt.Sprintf("busy cores predicted to grow more than %.0f%% in %v", 100*hpaTolerance, p.PredictHorizon)})
	}
	return rules
}
