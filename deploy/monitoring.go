package main

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Metrics the runtime emits (runtime/emf: CloudWatch embedded metric format, namespace
// SmartScale, dimension cluster; ScaleUpEvents adds reason, ScalingFailures error_type).
// LockHeld is derived here from the Lambda's log: a log metric filter counts ticks whose
// flight record says the lock was held by another invocation.
var dashboardMetrics = []string{
	"AutoscalerInvocations", "ScaleUpEvents", "ScaleDownEvents", "ScalingFailures", "NodeJoinLatency", "LambdaExecutionTime",
}

// newMonitoring creates the alarms (to the SNS topic, so they reach Slack) and the dashboard.
func newMonitoring(ctx *pulumi.Context, cfg Config, a *Autoscaler) (*cloudwatch.Dashboard, error) {
	actions := pulumi.Array{a.Topic.Arn}
	dims := pulumi.StringMap{metricDimensionName: pulumi.String(cfg.ClusterID)}
	alarms := []struct {
		name string
		args *cloudwatch.MetricAlarmArgs
	}{
		// ScalingFailures carries an error_type dimension: a Metrics Insights query sums it
		// over every type of this cluster.
		{"scaling-failures", &cloudwatch.MetricAlarmArgs{
			AlarmDescription: pulumi.String("SmartScale: a scale-up or scale-down failed"),
			MetricQueries: cloudwatch.MetricAlarmMetricQueryArray{&cloudwatch.MetricAlarmMetricQueryArgs{
				Id:         pulumi.String("failures"),
				Expression: pulumi.String(scalingFailuresQuery(cfg)),
				Period:     pulumi.Int(300),
				ReturnData: pulumi.Bool(true),
				Label:      pulumi.String("ScalingFailures"),
			}},
			EvaluationPeriods: pulumi.Int(1),
			Threshold:         pulumi.Float64(1), ComparisonOperator: pulumi.String("GreaterThanOrEqualToThreshold"),
			TreatMissingData: pulumi.String("notBreaching"),
		}},
		{"lambda-errors", &cloudwatch.MetricAlarmArgs{
			AlarmDescription: pulumi.String("SmartScale: the autoscaler Lambda failed (errors or timeouts)"),
			Namespace:        pulumi.String("AWS/Lambda"), MetricName: pulumi.String("Errors"),
			Dimensions: pulumi.StringMap{"FunctionName": a.Function.Name},
			Statistic:  pulumi.String("Sum"), Period: pulumi.Int(600), EvaluationPeriods: pulumi.Int(1),
			Threshold: pulumi.Float64(2), ComparisonOperator: pulumi.String("GreaterThanOrEqualToThreshold"),
			TreatMissingData: pulumi.String("notBreaching"),
		}},
		// The lease is 3 minutes and a tick comes every 2: finding the lock held on three
		// ticks within 10 minutes means a holder kept it far beyond one invocation.
		{"lock-held-too-long", &cloudwatch.MetricAlarmArgs{
			AlarmDescription: pulumi.String("SmartScale: the state lock stayed held across several ticks"),
			Namespace:        pulumi.String(metricsNamespace), MetricName: pulumi.String("LockHeld"), Dimensions: dims,
			Statistic: pulumi.String("Sum"), Period: pulumi.Int(600), EvaluationPeriods: pulumi.Int(1),
			Threshold: pulumi.Float64(3), ComparisonOperator: pulumi.String("GreaterThanOrEqualToThreshold"),
			TreatMissingData: pulumi.String("notBreaching"),
		}},
		// Silence: no invocation recorded for 10 minutes (schedule disabled, or the function
		// fails before it can emit anything).
		{"autoscaler-silent", &cloudwatch.MetricAlarmArgs{
			AlarmDescription: pulumi.String("SmartScale: no autoscaler invocation in 10 minutes"),
			Namespace:        pulumi.String(metricsNamespace), MetricName: pulumi.String("AutoscalerInvocations"), Dimensions: dims,
			Statistic: pulumi.String("SampleCount"), Period: pulumi.Int(600), EvaluationPeriods: pulumi.Int(1),
			Threshold: pulumi.Float64(1), ComparisonOperator: pulumi.String("LessThanThreshold"),
			TreatMissingData: pulumi.String("breaching"),
		}},
	}
	if _, err := cloudwatch.NewLogMetricFilter(ctx, "lock-held", &cloudwatch.LogMetricFilterArgs{
		LogGroupName: a.LogGroup.Name,
		Pattern:      pulumi.String(lockHeldPattern),
		MetricTransformation: &cloudwatch.LogMetricFilterMetricTransformationArgs{
			Namespace:  pulumi.String(metricsNamespace),
			Name:       pulumi.String("LockHeld"),
			Value:      pulumi.String("1"),
			Unit:       pulumi.String("Count"),
			Dimensions: pulumi.StringMap{metricDimensionName: pulumi.String("$.cluster")},
		},
	}); err != nil {
		return nil, err
	}
	for _, al := range alarms {
		al.args.Name = pulumi.String(cfg.ClusterID + "-" + al.name)
		al.args.AlarmActions = actions
		al.args.OkActions = actions
		if _, err := cloudwatch.NewMetricAlarm(ctx, al.name, al.args); err != nil {
			return nil, err
		}
	}
	body := pulumi.All(a.Function.Name).ApplyT(func(v []any) string {
		return dashboardBody(cfg, v[0].(string))
	}).(pulumi.StringOutput)
	return cloudwatch.NewDashboard(ctx, "autoscaler", &cloudwatch.DashboardArgs{
		DashboardName: pulumi.String("smartscale-" + cfg.ClusterID),
		DashboardBody: body,
	})
}

// lockHeldPattern matches the tick flight record (runtime/handler: msg "tick", the record
// under "record") of a tick that found the lock held.
const lockHeldPattern = `{ ($.msg = "tick") && ($.record.lock = "held") }`

func scalingFailuresQuery(cfg Config) string {
	return fmt.Sprintf(`SELECT SUM(ScalingFailures) FROM SCHEMA(%q, %s, error_type) WHERE %s = '%s'`,
		metricsNamespace, metricDimensionName, metricDimensionName, cfg.ClusterID)
}

// dashboardBody renders the CloudWatch dashboard JSON: one widget per metric of the brief,
// plus the Lambda's own errors and duration.
func dashboardBody(cfg Config, function string) string {
	type widget struct {
		Type       string         `json:"type"`
		X          int            `json:"x"`
		Y          int            `json:"y"`
		Width      int            `json:"width"`
		Height     int            `json:"height"`
		Properties map[string]any `json:"properties"`
	}
	stat := map[string]string{"NodeJoinLatency": "p90", "LambdaExecutionTime": "p90"}
	// Metrics emitted with a second dimension are summed over it with SEARCH.
	extraDim := map[string]string{"ScaleUpEvents": "reason", "ScalingFailures": "error_type"}
	var ws []widget
	for i, m := range dashboardMetrics {
		s := stat[m]
		if s == "" {
			s = "Sum"
		}
		var metrics [][]any
		if d := extraDim[m]; d != "" {
			search := fmt.Sprintf(`SEARCH('{%s,%s,%s} MetricName="%s" %s="%s"', '%s', 300)`,
				metricsNamespace, metricDimensionName, d, m, metricDimensionName, cfg.ClusterID, s)
			metrics = [][]any{
				{map[string]any{"expression": "SUM(e1)", "id": "total", "label": m + " (all " + d + "s)"}},
				{map[string]any{"expression": search, "id": "e1", "visible": false}},
			}
		} else {
			metrics = [][]any{{metricsNamespace, m, metricDimensionName, cfg.ClusterID}}
		}
		ws = append(ws, widget{Type: "metric", X: (i % 3) * 8, Y: (i / 3) * 6, Width: 8, Height: 6, Properties: map[string]any{
			"title":   m,
			"region":  cfg.Region,
			"view":    "timeSeries",
			"stat":    s,
			"period":  300,
			"metrics": metrics,
		}})
	}
	ws = append(ws, widget{Type: "metric", X: 0, Y: 12, Width: 24, Height: 6, Properties: map[string]any{
		"title": "Lambda errors, throttles and duration", "region": cfg.Region, "view": "timeSeries", "period": 300,
		"metrics": [][]any{
			{"AWS/Lambda", "Errors", "FunctionName", function, map[string]string{"stat": "Sum"}},
			{"AWS/Lambda", "Throttles", "FunctionName", function, map[string]string{"stat": "Sum"}},
			{"AWS/Lambda", "Duration", "FunctionName", function, map[string]any{"stat": "Maximum", "yAxis": "right"}},
		},
	}})
	b, _ := json.Marshal(map[string]any{"widgets": ws})
	return string(b)
}
