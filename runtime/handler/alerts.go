package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smartscale/smartscale/engine"
)

// An Alertmanager notification: the webhook body Alertmanager posts, or the same shape in
// the message of its SNS receiver (k3s/monitoring/alertmanager.yml's template writes it).
type alertNotification struct {
	Version      string            `json:"version"`
	Status       string            `json:"status"` // firing or resolved
	Receiver     string            `json:"receiver"`
	GroupKey     string            `json:"groupKey"`
	CommonLabels map[string]string `json:"commonLabels"`
	Alerts       []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// errNotAlert: the text is not an Alertmanager notification.
var errNotAlert = errors.New("not an Alertmanager notification")

// parseAlerts decodes an Alertmanager notification.
func parseAlerts(b []byte) (alertNotification, error) {
	var n alertNotification
	if err := json.Unmarshal(b, &n); err != nil {
		return n, fmt.Errorf("%w: %v", errNotAlert, err)
	}
	if n.Alerts == nil || n.Status == "" {
		return n, fmt.Errorf("%w: no status or alerts", errNotAlert)
	}
	return n, nil
}

// isAlertPayload reports whether a direct invocation's payload is an Alertmanager webhook
// notification.
func isAlertPayload(b []byte) bool {
	_, err := parseAlerts(b)
	return err == nil
}

// firing returns the names of the firing alerts for this cluster, and why there are none.
func (h *Handler) firing(n alertNotification) ([]string, string) {
	if n.Status != "firing" {
		return nil, "notification is " + n.Status + ": nothing to do"
	}
	var names []string
	for _, a := range n.Alerts {
		if a.Status != "firing" {
			continue
		}
		cluster := a.Labels["cluster"]
		if cluster == "" {
			cluster = n.CommonLabels["cluster"]
		}
		if cluster != "" && cluster != h.Cfg.ClusterID {
			continue // another cluster's alert on a shared topic
		}
		if name := a.Labels["alertname"]; name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, "no firing alert for cluster " + h.Cfg.ClusterID
	}
	slices.Sort(names)
	return names, ""
}

// Alert runs one alert tick for a notification. Malformed, resolved or foreign notifications
// are a logged no-op, never an error that makes Lambda retry the event.
func (h *Handler) Alert(ctx context.Context, body []byte) Result {
	n, err := parseAlerts(body)
	if err != nil {
		h.Log.WarnContext(ctx, "alert notification ignored", "cluster", h.Cfg.ClusterID, "reason", err.Error())
		return Result{Kind: "alert", Lock: engine.LockSkipped}
	}
	names, why := h.firing(n)
	if len(names) == 0 {
		h.Log.InfoContext(ctx, "alert notification ignored", "cluster", h.Cfg.ClusterID, "reason", why, "group", n.GroupKey)
		return Result{Kind: "alert", Lock: engine.LockSkipped}
	}
	rec, err := h.TickTriggered(ctx, engine.TriggerAlertPrefix+strings.Join(names, ","))
	if err != nil {
		// the flight record has the error; a retry of this event would only repeat it
		h.Log.WarnContext(ctx, "alert tick failed", "cluster", h.Cfg.ClusterID, "error", err.Error())
	}
	d := rec.Decision
	return Result{Kind: "alert", Lock: rec.Lock, Decision: &d, Acted: len(rec.Acted)}
}

// splitSNS separates an SNS event's alert messages (from the alert topic, or shaped like an
// Alertmanager notification when no alert topic is configured) from the rest.
func (h *Handler) splitSNS(ev events.SNSEvent) (alerts [][]byte, rest events.SNSEvent) {
	for _, r := range ev.Records {
		msg := []byte(r.SNS.Message)
		switch {
		case h.Cfg.AlertTopicARN != "" && r.SNS.TopicArn == h.Cfg.AlertTopicARN:
			alerts = append(alerts, msg)
		case h.Cfg.AlertTopicARN == "" && isAlertPayload(msg):
			alerts = append(alerts, msg)
		default:
			rest.Records = append(rest.Records, r)
		}
	}
	return alerts, rest
}
