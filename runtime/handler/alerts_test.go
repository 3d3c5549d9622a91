package handler

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
)

func invokeAlert(t *testing.T, h *Handler, payload []byte) Result {
	t.Helper()
	out, err := h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// alertHandler is a handler with pending pods, alert ticks on, and a clock the test moves.
func alertHandler(t *testing.T) (*Handler, *time.Time) {
	h, _, _ := benchHandler(readings(85, 60, 3, 3), 2)
	h.Cfg.Policy.AlertTicks = true
	now := start
	h.Now = func() time.Time { return now }
	step, err := h.BuildStep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	step.Policy.AlertTicks = true
	h.step = step
	return h, &now
}

func TestAlertmanagerWebhookRunsAnAlertTick(t *testing.T) {
	h, now := alertHandler(t)
	r := invokeAlert(t, h, fixture(t, "alertmanager-webhook.json"))
	if r.Kind != "alert" || r.Lock != engine.LockAcquired || r.Decision == nil || r.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("result %+v", r)
	}
	// the same notification again (Alertmanager repeats, or SNS delivers twice) within the
	// min interval is a no-op
	*now = now.Add(10 * time.Second)
	if r := invokeAlert(t, h, fixture(t, "alertmanager-webhook.json")); r.Lock != engine.LockSkipped {
		t.Errorf("repeat within alert_tick_min_interval: %+v", r)
	}
}

func TestSNSWrappedAlertRunsAnAlertTick(t *testing.T) {
	h, _ := alertHandler(t)
	h.Cfg.AlertTopicARN = "arn:aws:sns:us-east-1:123456789012:smartscale-demo-alerts"
	r := invokeAlert(t, h, fixture(t, "sns-alert.json"))
	if r.Kind != "alert" || r.Lock != engine.LockAcquired || r.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("result %+v", r)
	}
}

func TestAlertNotificationsThatDoNothing(t *testing.T) {
	webhook := string(fixture(t, "alertmanager-webhook.json"))
	cases := map[string]string{
		"resolved":        strings.Replace(strings.ReplaceAll(webhook, `"status":"firing"`, `"status":"resolved"`), "", "", 1),
		"another cluster": strings.ReplaceAll(webhook, `"cluster":"demo"`, `"cluster":"prod"`),
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			h, _ := alertHandler(t)
			if r := invokeAlert(t, h, []byte(payload)); r.Lock != engine.LockSkipped || r.Decision != nil {
				t.Errorf("result %+v", r)
			}
		})
	}
	t.Run("malformed message on the alert topic", func(t *testing.T) {
		h, _ := alertHandler(t)
		h.Cfg.AlertTopicARN = "arn:aws:sns:us-east-1:123456789012:smartscale-demo-alerts"
		payload := strings.Replace(string(fixture(t, "sns-alert.json")), `"Message":"{`, `"Message":"{oops `, 1)
		if r := invokeAlert(t, h, []byte(payload)); r.Kind != "alert" || r.Lock != engine.LockSkipped {
			t.Errorf("result %+v", r)
		}
	})
	t.Run("alert ticks off in the policy", func(t *testing.T) {
		h, _ := alertHandler(t)
		h.step.Policy.AlertTicks = false
		r := invokeAlert(t, h, fixture(t, "alertmanager-webhook.json"))
		if r.Lock != engine.LockSkipped || r.Decision == nil || !strings.Contains(r.Decision.Reason, "alert_ticks") {
			t.Errorf("result %+v", r)
		}
	})
}

func TestAlertWhileAScheduledTickHoldsTheLease(t *testing.T) {
	h, _ := alertHandler(t)
	if _, _, err := h.step.Store.Acquire(context.Background(), "scheduled", start, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if r := invokeAlert(t, h, fixture(t, "alertmanager-webhook.json")); r.Lock != engine.LockHeld {
		t.Errorf("result %+v: want a clean held", r)
	}
}

// An alert storm (Alertmanager repeating, SNS redelivering, a flapping rule: a notification
// every 1.5 s for two minutes) runs at most one alert tick per alert_tick_min_interval, and
// acts once: the ticks after the first are held by the scale-up cooldown.
func TestAlertStormRunsOneTickPerInterval(t *testing.T) {
	h, now := alertHandler(t)
	webhook := fixture(t, "alertmanager-webhook.json")
	t0 := *now
	var ticks []time.Duration
	acts := 0
	for i := range 80 {
		*now = t0.Add(time.Duration(i) * 1500 * time.Millisecond)
		r := invokeAlert(t, h, webhook)
		if r.Kind != "alert" {
			t.Fatalf("notification %d: result %+v", i, r)
		}
		if r.Lock == engine.LockSkipped {
			continue
		}
		ticks = append(ticks, now.Sub(t0))
		if r.Decision != nil && r.Decision.Action == engine.ActionScaleUp {
			acts++
		}
	}
	interval := h.step.Policy.AlertTickMinInterval
	if interval <= 0 {
		t.Fatalf("alert_tick_min_interval %v", interval)
	}
	if max := int(2*time.Minute/interval) + 1; len(ticks) == 0 || len(ticks) > max {
		t.Errorf("%d alert ticks in 2 minutes (%v), want 1 to %d", len(ticks), ticks, max)
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i]-ticks[i-1] < interval {
			t.Errorf("alert ticks %v and %v closer than %v", ticks[i-1], ticks[i], interval)
		}
	}
	if acts != 1 {
		t.Errorf("%d scale-ups in the storm, want 1 (the cooldown holds the rest)", acts)
	}
}
