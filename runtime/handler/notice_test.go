package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/emf"
	"github.com/smartscale/smartscale/runtime/internal/fakes"
)

const interruptionEvent = `{"version":"0","id":"1e5527d7-bb36-4607-3370-4164db56a40e","detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2","account":"123456789012","time":"2026-01-01T00:55:07Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1b:instance/i-w2"],"detail":{"instance-id":"i-w2","instance-action":"terminate"}}`

const rebalanceEvent = `{"version":"0","id":"5f3a6c8e","detail-type":"EC2 Instance Rebalance Recommendation","source":"aws.ec2","account":"123456789012","time":"2026-01-01T00:55:07Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1b:instance/i-w2"],"detail":{"instance-id":"i-w2"}}`

func TestParseNotice(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 55, 7, 0, time.UTC)
	n, err := ParseNotice([]byte(interruptionEvent))
	if err != nil || n.Kind != engine.NoticeInterruption || n.Instance != "i-w2" || !n.Time.Equal(at) ||
		!n.Deadline.Equal(at.Add(2*time.Minute)) || n.Action != "terminate" || n.ID == "" {
		t.Errorf("interruption: %+v %v", n, err)
	}
	n, err = ParseNotice([]byte(rebalanceEvent))
	if err != nil || n.Kind != engine.NoticeRebalance || !n.Deadline.IsZero() {
		t.Errorf("rebalance: %+v %v", n, err)
	}
	// the instance from the ARN when the detail has none
	n, err = ParseNotice([]byte(strings.Replace(rebalanceEvent, `"detail":{"instance-id":"i-w2"}`, `"detail":{}`, 1)))
	if err != nil || n.Instance != "i-w2" {
		t.Errorf("from resources: %+v %v", n, err)
	}
	for _, c := range []struct{ name, in, want string }{
		{"not JSON", `{"detail-type":`, "not an EventBridge event"},
		{"no instance", `{"detail-type":"EC2 Instance Rebalance Recommendation","source":"aws.ec2","time":"2026-01-01T00:55:07Z","detail":{}}`, "no detail.instance-id"},
		{"bad instance", strings.ReplaceAll(interruptionEvent, "i-w2", "sir-123"), `does not start with i-`},
		{"bad time", strings.Replace(interruptionEvent, "2026-01-01T00:55:07Z", "yesterday", 1), `time "yesterday"`},
		{"detail type", strings.Replace(interruptionEvent, "EC2 Spot Instance Interruption Warning", "EC2 Instance State-change Notification", 1), "is not an EC2 notice"},
	} {
		if _, err := ParseNotice([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

type noticeRig struct {
	h     *Handler
	cloud *fakes.Cloud
	kube  *fakes.Cluster
	store *fakes.Store
	logs  *bytes.Buffer
	now   time.Time
}

func newNoticeRig(t *testing.T) *noticeRig {
	t.Helper()
	now := time.Date(2026, 1, 1, 0, 55, 10, 0, time.UTC)
	env := map[string]string{"SMARTSCALE_HANDLES": "tick", "SMARTSCALE_CLUSTER_ID": "demo", "SMARTSCALE_TABLE": "t",
		"SMARTSCALE_LAUNCH_TEMPLATE": "lt-0abc", "SMARTSCALE_SUBNETS": "subnet-a=us-east-1a,subnet-b=us-east-1b",
		"PROMETHEUS_URL": "http://127.0.0.1:1", "KUBECONFIG": "/nonexistent/kubeconfig", "POLICY_JSON": `{"spot_percent": 50}`}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	r := &noticeRig{cloud: &fakes.Cloud{Now: func() time.Time { return now }}, store: &fakes.Store{}, logs: &bytes.Buffer{}, now: now}
	r.cloud.Insts = []engine.Instance{
		{ID: "i-w1", State: engine.InstanceRunning, LaunchedAt: now.Add(-time.Hour), Offering: engine.Offering{InstanceType: "t3.medium", Zone: "us-east-1a", Subnet: "subnet-a"}},
		{ID: "i-w2", State: engine.InstanceRunning, LaunchedAt: now.Add(-time.Hour), Offering: engine.Offering{InstanceType: "t3.medium", Zone: "us-east-1b", Subnet: "subnet-b", CapacityType: engine.CapacitySpot}},
	}
	r.kube = &fakes.Cluster{List: fakes.Workers(now.Add(-time.Hour), "i-w1", "i-w2")}
	a := Adapters{Metrics: fakes.NewMetrics(cfg.Policy, nil), Cloud: r.cloud, Cluster: r.kube, Store: r.store}
	r.h = &Handler{Cfg: cfg, Log: slog.New(slog.NewJSONHandler(r.logs, nil)), EMF: emf.New(&bytes.Buffer{}),
		BuildStep: func(context.Context) (*engine.Step, error) { return NewStep(cfg, a), nil },
		Now:       func() time.Time { return r.now }}
	return r
}

func (r *noticeRig) invoke(t *testing.T, payload, id string) (Result, error) {
	t.Helper()
	return invokeNotice(r.h, payload, id)
}

func invokeNotice(h *Handler, payload, id string) (Result, error) {
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: id})
	out, err := h.Invoke(ctx, []byte(payload))
	var res Result
	if err == nil {
		_ = json.Unmarshal(out, &res)
	}
	return res, err
}

func TestNoticeEventRunsTheStep(t *testing.T) {
	r := newNoticeRig(t)
	res, err := r.invoke(t, interruptionEvent, "r1")
	if err != nil || res.Kind != "notice" || res.Lock != engine.LockAcquired || res.Decision.Action != engine.ActionInterruption || res.Decision.Delta != 1 {
		t.Fatalf("result %+v %v", res, err)
	}
	// the fake's drain finishes at once: drained and terminated within the invocation
	if r.cloud.Launches != 1 || r.store.St.Operation == nil || len(r.store.St.Finishing) != 0 || !r.store.St.LastRemoved.Equal(r.now) {
		t.Errorf("launches %d, state %+v", r.cloud.Launches, r.store.St)
	}
	if !strings.Contains(r.logs.String(), `"msg":"tick"`) || !strings.Contains(r.logs.String(), `"notice":{"kind":"spot_interruption"`) {
		t.Errorf("no flight record with the notice:\n%s", r.logs)
	}
	// repeated: a no-op with a log line
	res, err = r.invoke(t, interruptionEvent, "r2")
	if err != nil || res.Decision.Action != engine.ActionNone || r.cloud.Launches != 1 {
		t.Errorf("repeated: %+v %v, %d launches", res, err, r.cloud.Launches)
	}
	if !strings.Contains(r.logs.String(), "notice needs nothing") {
		t.Errorf("no log line for the repeated notice:\n%s", r.logs)
	}
}

func TestNoticeEventForAnotherInstanceOrMalformedIsALoggedNoOp(t *testing.T) {
	r := newNoticeRig(t)
	res, err := r.invoke(t, strings.ReplaceAll(interruptionEvent, "i-w2", "i-0notours"), "r1")
	if err != nil || res.Decision.Action != engine.ActionNone || !strings.Contains(res.Decision.Reason, "not a managed worker") {
		t.Errorf("unmanaged: %+v %v", res, err)
	}
	if !strings.Contains(r.logs.String(), "i-0notours") || !strings.Contains(r.logs.String(), "notice needs nothing") {
		t.Errorf("unmanaged instance not logged:\n%s", r.logs)
	}
	for _, bad := range []string{
		`{"detail-type":"EC2 Spot Instance Interruption Warning","source":"aws.ec2","detail":{"instance-id":"i-w2"}}`, // no time
		`{"detail-type":"EC2 Instance Rebalance Recommendation","source":"aws.ec2","time":"2026-01-01T00:55:07Z","detail":"x"}`,
	} {
		res, err := r.invoke(t, bad, "r2")
		if err != nil || res.Kind != "notice" || res.Decision.Action != engine.ActionNone {
			t.Errorf("malformed %s: %+v %v", bad, res, err)
		}
	}
	if !strings.Contains(r.logs.String(), "notice ignored: malformed EC2 event") {
		t.Errorf("malformed events not logged:\n%s", r.logs)
	}
	if r.cloud.Launches != 0 || len(r.cloud.Calls) != 0 {
		t.Errorf("acted on ignored notices: %d launches", r.cloud.Launches)
	}
}

func TestNoticeWaitsForTheLock(t *testing.T) {
	r := newNoticeRig(t)
	if _, _, err := r.store.Acquire(context.Background(), "tick", r.now, time.Minute); err != nil {
		t.Fatal(err)
	}
	slept := 0
	r.h.Sleep = func(context.Context, time.Duration) {
		slept++
		r.now = r.now.Add(time.Minute + time.Second) // the tick's lease ran out meanwhile
	}
	res, err := r.invoke(t, interruptionEvent, "r1")
	if err != nil || res.Lock != engine.LockAcquired || res.Decision.Action != engine.ActionInterruption || slept != 1 {
		t.Errorf("result %+v %v after %d waits", res, err, slept)
	}
	// a lock that stays held: the notice gives up within NoticeLockWait and says so
	r2 := newNoticeRig(t)
	if _, _, err := r2.store.Acquire(context.Background(), "stuck", r2.now, time.Hour); err != nil {
		t.Fatal(err)
	}
	wait, retry := NoticeLockWait, NoticeRetry
	NoticeLockWait, NoticeRetry = 30*time.Millisecond, 10*time.Millisecond
	t.Cleanup(func() { NoticeLockWait, NoticeRetry = wait, retry })
	r2.h.Sleep = nil
	res, err = r2.invoke(t, interruptionEvent, "r2")
	if err != nil || res.Lock != engine.LockHeld || !strings.Contains(r2.logs.String(), "notice not handled: the lock stayed held") {
		t.Errorf("stuck lock: %+v %v\n%s", res, err, r2.logs)
	}
}
