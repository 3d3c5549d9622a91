package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/config"
)

// EC2's notices through EventBridge: "EC2 Spot Instance Interruption Warning" and "EC2
// Instance Rebalance Recommendation" invoke the same Lambda as the schedule, and run the
// same engine Step under the same lease (engine.Step.Notice). An event about an instance
// SmartScale does not manage is ignored with a log line; a malformed event is a logged
// no-op, never an error (an error would only make Lambda retry the same bytes).

// EventBridge detail types of the notices.
const (
	DetailInterruption = "EC2 Spot Instance Interruption Warning"
	DetailRebalance    = "EC2 Instance Rebalance Recommendation"
)

// NoticeLockWait bounds how long a notice waits for a lock another invocation holds
// (retrying every NoticeRetry): the interruption is two minutes away, and a tick takes
// seconds. After it the notice is logged as not handled; the scheduled tick replaces what
// is lost.
var (
	NoticeLockWait = 60 * time.Second
	NoticeRetry    = 5 * time.Second
)

// isNotice reports whether an event's source and detail type are an EC2 notice.
func isNotice(source, detailType string) bool {
	return source == "aws.ec2" && (detailType == DetailInterruption || detailType == DetailRebalance)
}

// ParseNotice reads an EventBridge EC2 notice. The instance comes from detail.instance-id,
// else from the event's instance ARN; the deadline of an interruption is two minutes after
// the event's time (EC2 sends the warning two minutes ahead).
func ParseNotice(payload []byte) (engine.Notice, error) {
	var ev struct {
		ID         string   `json:"id"`
		DetailType string   `json:"detail-type"`
		Source     string   `json:"source"`
		Time       string   `json:"time"`
		Resources  []string `json:"resources"`
		Detail     struct {
			InstanceID     string `json:"instance-id"`
			InstanceAction string `json:"instance-action"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return engine.Notice{}, fmt.Errorf("not an EventBridge event: %w", err)
	}
	n := engine.Notice{ID: ev.ID, Source: ev.Source, Instance: ev.Detail.InstanceID, Action: ev.Detail.InstanceAction}
	switch ev.DetailType {
	case DetailInterruption:
		n.Kind = engine.NoticeInterruption
	case DetailRebalance:
		n.Kind = engine.NoticeRebalance
	default:
		return n, fmt.Errorf("detail-type %q is not an EC2 notice", ev.DetailType)
	}
	if n.Instance == "" {
		for _, r := range ev.Resources { // arn:aws:ec2:us-east-1b:instance/i-0b662ef9931388ba0
			if _, id, ok := strings.Cut(r, ":instance/"); ok {
				n.Instance = id
			}
		}
	}
	if n.Instance == "" {
		return n, errors.New("no detail.instance-id and no instance ARN in resources")
	}
	if !strings.HasPrefix(n.Instance, "i-") {
		return n, fmt.Errorf("instance id %q does not start with i-", n.Instance)
	}
	t, err := time.Parse(time.RFC3339, ev.Time)
	if err != nil {
		return n, fmt.Errorf("time %q: %w", ev.Time, err)
	}
	n.Time = t.UTC()
	if n.Kind == engine.NoticeInterruption {
		n.Deadline = n.Time.Add(engine.InterruptionNotice)
	}
	return n, nil
}

// Notice handles one EC2 notice event: a logged no-op when it cannot be read, else the
// engine's Notice, retried while another invocation holds the lock (at most NoticeLockWait).
// It logs the flight record like a tick.
func (h *Handler) Notice(ctx context.Context, payload []byte) (Result, error) {
	res := Result{Kind: "notice"}
	n, err := ParseNotice(payload)
	if err != nil {
		h.Log.WarnContext(ctx, "notice ignored: malformed EC2 event", "cluster", h.Cfg.ClusterID, "error", err.Error(),
			"event", fmt.Sprintf("%.300s", payload))
		d := engine.Decision{Action: engine.ActionNone, Reason: "malformed notice ignored: " + err.Error()}
		res.Decision = &d
		return res, nil
	}
	if !h.Cfg.Has(config.RoleTick) {
		return res, errors.New("EC2 notice, but SMARTSCALE_HANDLES does not include tick")
	}
	began := time.Now()
	step, err := h.getStep(ctx)
	if err != nil {
		rec := engine.Record{Time: h.now().UTC(), Notice: &n, Lock: engine.LockNotAcquired, Acted: []engine.Act{}, Error: err.Error(),
			Decision: engine.Decision{Action: engine.ActionNoData, Reason: "could not start: " + err.Error()}}
		h.logRecord(ctx, rec)
		return res, fmt.Errorf("building the step: %w", err)
	}
	sleep := h.Sleep
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
	var rec engine.Record
	for {
		rec, err = step.Notice(ctx, h.now(), Holder(ctx), n)
		if rec.Lock != engine.LockHeld || time.Since(began)+NoticeRetry > NoticeLockWait || ctx.Err() != nil {
			break
		}
		sleep(ctx, NoticeRetry)
	}
	h.logRecord(ctx, rec)
	if merr := h.EMF.Tick(h.Cfg.ClusterID, rec, time.Since(began)); merr != nil {
		h.Log.WarnContext(ctx, "writing metrics", "cluster", h.Cfg.ClusterID, "error", merr.Error())
	}
	switch {
	case rec.Lock == engine.LockHeld:
		h.Log.WarnContext(ctx, "notice not handled: the lock stayed held", "cluster", h.Cfg.ClusterID, "instance", n.Instance,
			"kind", string(n.Kind), "waited", time.Since(began).Round(time.Second).String())
	case rec.Decision.Action == engine.ActionNone:
		h.Log.InfoContext(ctx, "notice needs nothing", "cluster", h.Cfg.ClusterID, "instance", n.Instance,
			"kind", string(n.Kind), "reason", rec.Decision.Reason)
	}
	d := rec.Decision
	res.Lock, res.Decision, res.Acted = rec.Lock, &d, len(rec.Acted)
	return res, err
}
