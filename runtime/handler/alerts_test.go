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
