// Package handler is the Lambda's logic, apart from its wiring to AWS: it recognises the
// event (EventBridge schedule or SNS), runs one engine.Step tick or forwards SNS messages to
// Slack, and writes the flight record (one JSON log line per tick) and the CloudWatch EMF
// metrics.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/emf"
	"github.com/smartscale/smartscale/runtime/notify"
	"github.com/smartscale/smartscale/runtime/secrets"
	"github.com/smartscale/smartscale/runtime/slack"
)

// RecordKey is the log attribute holding the engine.Record of a tick (see
// docs/flight-record.md); RecordMsg is the message of those lines.
const (
	RecordKey = "record"
	RecordMsg = "tick"
)

// Adapters are the ports of one tick.
type Adapters struct {
	Metrics  engine.Metrics
	Cloud    engine.Cloud
	Cluster  engine.Cluster
	Store    engine.StateStore
	Notifier engine.Notifier // nil: no notifications
}

// NewStep builds the engine step of the configuration over the adapters.
func NewStep(cfg config.Config, a Adapters) *engine.Step {
	s := &engine.Step{
		ClusterID: cfg.ClusterID, Policy: cfg.Policy,
		Metrics: a.Metrics, Cloud: a.Cloud, Cluster: a.Cluster, Store: a.Store,
		Offerings: cfg.Offerings, Lease: cfg.Lease, DryRun: cfg.DryRun,
	}
	if a.Notifier != nil {
		s.Notifier = a.Notifier
	}
	return s
}

// SecretGetter reads a secret's value.
type SecretGetter interface {
	Get(ctx context.Context, id string) (string, error)
}

// Handler serves the Lambda's events.
type Handler struct {
	Cfg config.Config
	Log *slog.Logger
	EMF *emf.Writer
	// BuildStep makes the tick's step on first use (the Kubernetes client needs a secret,
	// fetched then rather than at init). A failed build is retried on the next event.
	BuildStep func(ctx context.Context) (*engine.Step, error)
	Secrets   SecretGetter
	HTTP      *http.Client
	Now       func() time.Time

	mu   sync.Mutex
	step *engine.Step
}

// Result is what an invocation returns.
type Result struct {
	Kind      string           `json:"kind"` // tick or slack
	Lock      string           `json:"lock,omitempty"`
	Decision  *engine.Decision `json:"decision,omitempty"`
	Acted     int              `json:"acted,omitempty"`
	Forwarded int              `json:"forwarded,omitempty"`
}

// Invoke implements lambda.Handler: it dispatches on the event's shape.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var probe struct {
		Source     string `json:"source"`
		DetailType string `json:"detail-type"`
		Records    []struct {
			EventSource string `json:"EventSource"`
		} `json:"Records"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("event is not JSON: %w", err)
	}
	var res Result
	var err error
	switch {
	case probe.DetailType == "Scheduled Event":
		if !h.Cfg.Has(config.RoleTick) {
			return nil, errors.New("scheduled event, but SMARTSCALE_HANDLES does not include tick")
		}
		var rec engine.Record
		rec, err = h.Tick(ctx)
		d := rec.Decision
		res = Result{Kind: "tick", Lock: rec.Lock, Decision: &d, Acted: len(rec.Acted)}
	case isAlertPayload(payload): // Alertmanager's webhook, posted directly
		if !h.Cfg.Has(config.RoleTick) {
			return nil, errors.New("alert notification, but SMARTSCALE_HANDLES does not include tick")
		}
		res = h.Alert(ctx, payload)
	case len(probe.Records) > 0 && allSNS(probe.Records):
		var ev events.SNSEvent
		if err := json.Unmarshal(payload, &ev); err != nil {
			return nil, fmt.Errorf("decoding SNS event: %w", err)
		}
		alerts, rest := h.splitSNS(ev)
		if len(alerts) > 0 {
			if !h.Cfg.Has(config.RoleTick) {
				return nil, errors.New("alert notification on SNS, but SMARTSCALE_HANDLES does not include tick")
			}
			// one tick for the whole batch: several notifications at once are one look
			res = h.Alert(ctx, alerts[0])
			for _, a := range alerts[1:] {
				if r := h.Alert(ctx, a); r.Decision != nil && res.Decision == nil {
					res = r
				}
			}
		}
		if len(rest.Records) > 0 {
			if !h.Cfg.Has(config.RoleSlack) {
				return nil, errors.New("SNS event, but SMARTSCALE_HANDLES does not include slack")
			}
			var n int
			n, err = h.Forward(ctx, rest)
			if len(alerts) == 0 {
				res = Result{Kind: "slack"}
			}
			res.Forwarded = n
		}
	default:
		return nil, fmt.Errorf("unrecognised event (want an EventBridge \"Scheduled Event\" or SNS records): %.200s", payload)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

func allSNS(rs []struct {
	EventSource string `json:"EventSource"`
}) bool {
	for _, r := range rs {
		if r.EventSource != "aws:sns" {
			return false
		}
	}
	return true
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) getStep(ctx context.Context) (*engine.Step, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.step != nil {
		return h.step, nil
	}
	s, err := h.BuildStep(ctx)
	if err != nil {
		return nil, err
	}
	if s.Clock == nil {
		s.Clock = h.now // renewing the lease before each side effect reads the time
	}
	h.step = s
	return s, nil
}

// Holder names this invocation in the lock: the Lambda request id, else host and pid.
func Holder(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())
}

// Tick runs one scheduled autoscaler tick, logs its flight record and writes its metrics.
func (h *Handler) Tick(ctx context.Context) (engine.Record, error) {
	return h.TickTriggered(ctx, engine.TriggerSchedule)
}

// TickTriggered is Tick with what asked for it recorded (engine.Step.RunTriggered).
func (h *Handler) TickTriggered(ctx context.Context, trigger string) (engine.Record, error) {
	began := time.Now()
	now := h.now()
	step, err := h.getStep(ctx)
	if err != nil {
		rec := engine.Record{Time: now.UTC(), Lock: engine.LockNotAcquired, Acted: []engine.Act{}, Error: err.Error(),
			Decision: engine.Decision{Action: engine.ActionNoData, Reason: "could not start: " + err.Error()}}
		h.logRecord(ctx, rec)
		_ = h.EMF.Tick(h.Cfg.ClusterID, rec, time.Since(began))
		return rec, fmt.Errorf("building the tick: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok && step.Lease > 0 && dl.Sub(began) >= step.Lease {
		h.Log.WarnContext(ctx, "lease shorter than the invocation's time left: a timed-out tick could overlap the next",
			"cluster", h.Cfg.ClusterID, "lease", step.Lease.String(), "time_left", dl.Sub(began).Round(time.Second).String())
	}
	rec, err := step.RunTriggered(ctx, now, Holder(ctx), trigger)
	h.logRecord(ctx, rec)
	if merr := h.EMF.Tick(h.Cfg.ClusterID, rec, time.Since(began)); merr != nil {
		h.Log.WarnContext(ctx, "writing metrics", "cluster", h.Cfg.ClusterID, "error", merr.Error())
	}
	return rec, err
}

// logRecord writes the flight record: one JSON line, msg "tick", the record under "record".
func (h *Handler) logRecord(ctx context.Context, rec engine.Record) {
	level := slog.LevelInfo
	if rec.Error != "" {
		level = slog.LevelError
	}
	h.Log.LogAttrs(ctx, level, RecordMsg,
		slog.String("cluster", h.Cfg.ClusterID),
		slog.String("tick", rec.Time.Format(time.RFC3339)),
		slog.String("decision", string(rec.Decision.Action)),
		slog.String("reason", rec.Decision.Reason),
		slog.Any(RecordKey, rec),
	)
}

// Forward posts each SNS message to Slack. Messages that are not SmartScale events are
// posted as warnings with their raw text, so nothing is lost.
func (h *Handler) Forward(ctx context.Context, ev events.SNSEvent) (int, error) {
	raw, err := h.Secrets.Get(ctx, h.Cfg.SlackSecret)
	if err != nil {
		return 0, fmt.Errorf("slack webhook: %w", err)
	}
	webhook, err := secrets.Field(raw, "url", "webhook_url", "webhook")
	if err != nil {
		return 0, fmt.Errorf("slack webhook secret %s: %w", h.Cfg.SlackSecret, err)
	}
	var errs []error
	n := 0
	for _, r := range ev.Records {
		msg, derr := notify.Decode(r.SNS.Message)
		if derr != nil {
			msg = notify.Message{Cluster: h.Cfg.ClusterID, Event: engine.Event{Kind: engine.EventWarning, Time: r.SNS.Timestamp,
				Message: r.SNS.Subject + ": " + r.SNS.Message}}
		}
		if err := slack.Post(ctx, h.HTTP, webhook, slack.Render(msg.Cluster, msg.Event)); err != nil {
			errs = append(errs, fmt.Errorf("message %s: %w", r.SNS.MessageID, err))
			continue
		}
		n++
		h.Log.InfoContext(ctx, "forwarded", "cluster", msg.Cluster, "kind", string(msg.Event.Kind), "message", msg.Event.Message)
	}
	return n, errors.Join(errs...)
}
