package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
)

// published is one SNS Publish request Alertmanager made.
type published struct {
	at      time.Time
	topic   string
	subject string
	message string
	signed  bool
}

// fakeSNS answers the SNS Query API's Publish as SNS does and hands every message over.
func fakeSNS(t *testing.T) (*httptest.Server, <-chan published) {
	ch := make(chan published, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(body))
		if err != nil || form.Get("Action") != "Publish" {
			http.Error(w, "want Action=Publish", http.StatusBadRequest)
			return
		}
		ch <- published{at: time.Now(), topic: form.Get("TopicArn"), subject: form.Get("Subject"), message: form.Get("Message"),
			signed: strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

// TestAlertmanagerToHandlerThroughSNS: the shipped alert rules evaluated by a real
// Prometheus 2.42 on live series (the HPA wants more replicas than it has), routed by a real
// Alertmanager 0.25 with the shipped configuration and message template to its SNS receiver
// (SigV4-signed Publish, here to a stand-in for SNS on loopback), and the message, in SNS's
// Lambda event, runs an alert tick in the handler. The notification comes within the route's
// group_wait (1 s) of the rule firing.
func TestAlertmanagerToHandlerThroughSNS(t *testing.T) {
	root, err := realtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	const topic = "arn:aws:sns:us-east-1:123456789012:smartscale-demo-alerts"
	sns, inbox := fakeSNS(t)

	amCfg := read("k3s/monitoring/alertmanager.yml")
	amCfg = strings.NewReplacer("SMARTSCALE_ALERT_TOPIC_ARN", topic, "SMARTSCALE_REGION", "us-east-1",
		"        sigv4:", "        api_url: "+sns.URL+"\n        sigv4:").Replace(amCfg)
	dir := t.TempDir()
	amCfg = strings.ReplaceAll(amCfg, "/etc/alertmanager/", dir+"/")
	if err := os.WriteFile(filepath.Join(dir, "smartscale.tmpl"), []byte(read("k3s/monitoring/smartscale.tmpl")), 0o644); err != nil {
		t.Fatal(err)
	}
	am := realtest.Alertmanager(t, amCfg, nil, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1")

	// the app's cluster as kube-state-metrics would show it: the HPA wants 10, has 6
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "kube_horizontalpodautoscaler_status_desired_replicas{namespace=\"shop\",horizontalpodautoscaler=\"web\"} 10\n"+
			"kube_horizontalpodautoscaler_status_current_replicas{namespace=\"shop\",horizontalpodautoscaler=\"web\"} 6\n")
	}))
	t.Cleanup(exporter.Close)
	promCfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s, external_labels: {cluster: demo}}
rule_files: [alert-rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ["%s"]}]
scrape_configs:
  - job_name: kube-state-metrics
    static_configs: [{targets: ["%s"]}]
`, strings.TrimPrefix(am, "http://"), strings.TrimPrefix(exporter.URL, "http://"))
	start := time.Now()
	realtest.PrometheusServer(t, promCfg, map[string]string{"alert-rules.yml": read("k3s/monitoring/alert-rules.yml")})

	var msg published
	select {
	case msg = <-inbox:
	case <-time.After(60 * time.Second):
		t.Fatal("Alertmanager published nothing within 60 s")
	}
	// the rule fires within a scrape and a 5 s evaluation, then the route waits group_wait
	took := msg.at.Sub(start)
	t.Logf("notified %v after the series appeared", took.Round(100*time.Millisecond))
	if took > 25*time.Second {
		t.Errorf("notification %v after the series appeared: want within a scrape, a rule evaluation and group_wait (1 s)", took.Round(time.Second))
	}
	if msg.topic != topic || !msg.signed || !strings.Contains(msg.subject, "FIRING") {
		t.Errorf("publish: topic %q signed %v subject %q", msg.topic, msg.signed, msg.subject)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(msg.message), &body); err != nil {
		t.Fatalf("the message template does not make JSON: %v\n%s", err, msg.message)
	}

	// SNS's Lambda event around it, as the alert topic's subscription delivers it
	ev := events.SNSEvent{Records: []events.SNSEventRecord{{EventSource: "aws:sns", EventVersion: "1.0",
		SNS: events.SNSEntity{Type: "Notification", MessageID: "m-1", TopicArn: topic, Subject: msg.subject, Message: msg.message, Timestamp: msg.at}}}}
	payload, _ := json.Marshal(ev)
	h, _ := alertHandler(t)
	h.Cfg.AlertTopicARN = topic
	r := invokeAlert(t, h, payload)
	if r.Kind != "alert" || r.Lock != engine.LockAcquired || r.Decision == nil || r.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("result %+v", r)
	}
	st, _ := h.step.Store.Load(context.Background())
	if st.LastAlertTick.IsZero() {
		t.Errorf("the alert tick was not recorded in the state: %+v", st)
	}
}
