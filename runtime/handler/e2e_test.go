package handler

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sdkec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/internal/realtest/controlplane"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/dynamo"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
	"github.com/smartscale/smartscale/runtime/emf"
	"github.com/smartscale/smartscale/runtime/kube"
	"github.com/smartscale/smartscale/runtime/notify"
	"github.com/smartscale/smartscale/runtime/prom"
)

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// snsCapture is an in-memory SNS Publish.
type snsCapture struct {
	mu  sync.Mutex
	ins []*sns.PublishInput
}

func (c *snsCapture) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ins = append(c.ins, in)
	return &sns.PublishOutput{MessageId: aws.String("m1")}, nil
}

type world struct {
	h     *Handler
	ec2   *ec2fake.Server
	cfg   config.Config
	ports Adapters
	cp    *controlplane.ControlPlane
	demo  controlplane.Demo
	store *dynamo.Store
	sns   *snsCapture
	logs  *bytes.Buffer
	emf   *bytes.Buffer
	now   time.Time
}

// newWorld wires a handler to a real Prometheus (backfilled with realtest.Busy over the
// world's nodes: CPU 20% for 30 minutes, then 78% with 2 pods pending from minute 40),
// dynalite, the fake EC2 and a real control plane shaped like the K3s cluster: the master,
// the workers, node-exporter and 2 demo pods per worker from k3s/'s manifests, reached with
// the token of the autoscaler's own ServiceAccount. Workers i-w1, i-w2, ... are managed
// instances, alternately in subnet-a (us-east-1a) and subnet-b (us-east-1b), registered as
// worker-1, worker-2, ... The clock stands at minute 55 (busy).
func newWorld(t *testing.T, workers int) *world {
	t.Helper()
	series := realtest.Busy(start)
	series.Nodes = []string{"master"}
	for i := 1; i <= workers; i++ {
		series.Nodes = append(series.Nodes, fmt.Sprintf("worker-%d", i))
	}
	promURL := realtest.Prometheus(t, series.OpenMetrics())
	ddbURL := realtest.Dynalite(t)
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(ddbURL)})
	if err := dynamo.CreateTable(context.Background(), ddb, "smartscale"); err != nil {
		t.Fatal(err)
	}
	w := &world{ec2: ec2fake.New(), sns: &snsCapture{}, logs: &bytes.Buffer{}, emf: &bytes.Buffer{}, now: start.Add(55*time.Minute + 7*time.Second)}
	t.Cleanup(w.ec2.Close)
	w.ec2.Now = func() time.Time { return w.now }
	w.ec2.SubnetZones = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	managed := []ec2fake.Tag{{Key: ec2.TagCluster, Value: "demo"}, {Key: ec2.TagManagedBy, Value: ec2.ManagedByValue}}
	w.cp = controlplane.Start(t)
	nodes := []controlplane.Node{controlplane.Master("master")}
	for i := 1; i <= workers; i++ {
		id, name := fmt.Sprintf("i-w%d", i), fmt.Sprintf("worker-%d", i)
		subnet, zone := "subnet-a", "us-east-1a"
		if i%2 == 0 {
			subnet, zone = "subnet-b", "us-east-1b"
		}
		w.ec2.Add(ec2fake.Instance{ID: id, State: "running", Zone: zone, Subnet: subnet, LaunchTime: start.Add(-time.Hour), Tags: managed})
		nodes = append(nodes, controlplane.Worker(name, zone, id))
	}
	w.cp.AddNodes(nodes...)
	w.demo = w.cp.DeployDemo(int32(2*workers), int32(workers+1), nil)
	env := map[string]string{
		"SMARTSCALE_HANDLES": "tick,slack", "SMARTSCALE_CLUSTER_ID": "demo", "SMARTSCALE_TABLE": "smartscale",
		"SMARTSCALE_LAUNCH_TEMPLATE": "lt-0abc", "SMARTSCALE_SUBNETS": "subnet-a=us-east-1a,subnet-b=us-east-1b",
		"PROMETHEUS_URL": promURL, "SLACK_WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:slack",
		"SMARTSCALE_KUBECONFIG_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:kube", "SMARTSCALE_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:smartscale",
	}
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pc, err := prom.New(promURL, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.store = dynamo.New(ddb, "smartscale", "demo")
	ec2api := sdkec2.New(sdkec2.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(w.ec2.URL), Retryer: aws.NopRetryer{}})
	cl := kube.New(autoscalerClient(t, w.cp))
	cl.WaitEvicted, cl.Poll = 5*time.Second, 50*time.Millisecond
	w.cfg = cfg
	w.ports = Adapters{Metrics: pc, Cloud: ec2.New(ec2api, "demo", cfg.LaunchTemplate, ""), Cluster: cl, Store: w.store,
		Notifier: notify.New(w.sns, cfg.TopicARN, "demo")}
	w.h = w.handler(cfg)
	return w
}

// handler is a Handler of the configuration over the world's adapters, logging into the
// world's buffers.
func (w *world) handler(cfg config.Config) *Handler {
	return &Handler{Cfg: cfg, Log: slog.New(slog.NewJSONHandler(w.logs, nil)), EMF: emf.New(w.emf),
		BuildStep: func(context.Context) (*engine.Step, error) { return NewStep(cfg, w.ports), nil },
		Now:       func() time.Time { return w.now }}
}

// kubeFromFile is a clientset from a kubeconfig file, as the Lambda builds it.
func kubeFromFile(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const scheduled = `{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-01-01T00:55:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/smartscale-tick"],"detail":{}}`

func invoke(t *testing.T, h *Handler, payload, requestID string) (Result, error) {
	t.Helper()
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: requestID})
	out, err := h.Invoke(ctx, []byte(payload))
	var res Result
	if err == nil {
		if jerr := json.Unmarshal(out, &res); jerr != nil {
			t.Fatalf("result %s: %v", out, jerr)
		}
	}
	return res, err
}

// flightRecords reads the tick lines of the log as a replayer would.
func flightRecords(t *testing.T, logs string) []engine.Record {
	t.Helper()
	var out []engine.Record
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string        `json:"msg"`
			Cluster  string        `json:"cluster"`
			Decision string        `json:"decision"`
			Record   engine.Record `json:"record"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s: %v", sc.Text(), err)
		}
		if line.Msg == RecordMsg {
			if line.Cluster != "demo" || line.Decision != string(line.Record.Decision.Action) {
				t.Errorf("fixed keys wrong in %s", sc.Text())
			}
			out = append(out, line.Record)
		}
	}
	return out
}

// emfLines parses the EMF log lines.
func emfLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("EMF line %s: %v", l, err)
		}
		if _, ok := m["_aws"]; !ok {
			t.Errorf("EMF line without _aws: %s", l)
		}
		out = append(out, m)
	}
	return out
}

func findMetric(lines []map[string]any, name string) map[string]any {
	for _, l := range lines {
		if _, ok := l[name]; ok {
			return l
		}
	}
	return nil
}

// One full tick over real Prometheus, dynalite and control plane and the fake EC2: CPU 78%
// and 2 pods pending for minutes -> add 2 workers; the test registers their nodes as the K3s
// agent would, kwok makes them Ready, and the next tick sees them join. A dry run first
// decides the same and writes nothing: no EC2 write, no notification, no state (the real
// tick then holds fence 1).
func TestControlPlaneTickScaleUpEndToEnd(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	w := newWorld(t, 2)
	dry := w.cfg
	dry.DryRun = true
	res, err := invoke(t, w.handler(dry), scheduled, "dry")
	if err != nil {
		t.Fatalf("dry run: %v\nlogs:\n%s", err, w.logs)
	}
	if res.Lock != engine.LockDryRun || res.Decision == nil || res.Decision.Action != engine.ActionScaleUp || res.Decision.Delta != 2 {
		t.Fatalf("dry run result %+v (decision %+v), want the scale-up by 2 undone", res, res.Decision)
	}
	if n := w.ec2.Count("RunInstances") + w.ec2.Count("TerminateInstances"); n != 0 || w.ec2.Count("DescribeInstances") == 0 {
		t.Errorf("dry run: %d EC2 writes, %d reads; want reads only", n, w.ec2.Count("DescribeInstances"))
	}
	if len(w.sns.ins) != 0 {
		t.Errorf("notified in a dry run")
	}
	if st, err := w.store.Load(context.Background()); err != nil || st.Seq != 0 || st.Operation != nil {
		t.Errorf("state written in a dry run: %+v %v", st, err)
	}
	w.logs.Reset()
	w.emf.Reset()

	res, err = invoke(t, w.h, scheduled, "req-1")
	if err != nil {
		t.Fatalf("tick: %v\nlogs:\n%s", err, w.logs)
	}
	if res.Kind != "tick" || res.Lock != engine.LockAcquired || res.Decision == nil || res.Decision.Action != engine.ActionScaleUp || res.Decision.Delta != 2 {
		t.Fatalf("result %+v (decision %+v)", res, res.Decision)
	}
	var launched []ec2fake.Instance
	for _, in := range w.ec2.Instances() {
		if in.Token != "" {
			launched = append(launched, in)
		}
	}
	if len(launched) != 2 || launched[0].Subnet != "subnet-a" || launched[0].Type != "t3.medium" || launched[0].Template != "lt-0abc" {
		t.Fatalf("launched %+v, want 2 t3.medium in subnet-a from lt-0abc", launched)
	}
	recs := flightRecords(t, w.logs.String())
	if len(recs) != 1 {
		t.Fatalf("%d flight records, want 1:\n%s", len(recs), w.logs)
	}
	rec := recs[0]
	if rec.Holder != "req-1" || rec.Fence != 1 || rec.Decision.Action != engine.ActionScaleUp || len(rec.Events) != 1 {
		t.Errorf("record %+v", rec)
	}
	if cpu := rec.Observation.Readings.CPU; !cpu.OK() || cpu.Value < 77 || cpu.Value > 79 {
		t.Errorf("recorded CPU reading %+v, want about 78", cpu)
	}
	if msg := rec.Events[0].Message; msg != "Added 2 nodes (CPU: 78%) → Total: 4 nodes" {
		t.Errorf("event message %q", msg)
	}
	// Notified through SNS as JSON the forwarder can decode.
	if len(w.sns.ins) != 1 {
		t.Fatalf("%d SNS publishes, want 1", len(w.sns.ins))
	}
	m, err := notify.Decode(aws.ToString(w.sns.ins[0].Message))
	if err != nil || m.Event.Kind != engine.EventScaleUp || m.Cluster != "demo" {
		t.Errorf("published %v: %+v", err, m)
	}
	// EMF metrics.
	lines := emfLines(t, w.emf.String())
	if l := findMetric(lines, emf.Invocations); l == nil || l["AutoscalerInvocations"] != 1.0 {
		t.Errorf("no AutoscalerInvocations line in\n%s", w.emf)
	}
	if l := findMetric(lines, emf.ScaleUpEvents); l == nil || l["reason"] != "cpu_high+pending_pods" || l["ScaleUpEvents"] != 1.0 {
		t.Errorf("ScaleUpEvents line %v", l)
	}
	if findMetric(lines, emf.ExecutionTime) == nil {
		t.Errorf("no LambdaExecutionTime")
	}
	// State: the intent record of the scale-up, lock released.
	st, err := w.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Operation == nil || st.Operation.Phase != engine.PhaseJoining || len(st.Operation.Instances) != 2 || st.Workers != 4 {
		t.Errorf("state %+v op %+v", st, st.Operation)
	}

	// 90 s later the two instances are running and registered as Ready nodes.
	w.now = w.now.Add(90 * time.Second)
	for i, in := range launched {
		w.ec2.SetState(in.ID, "running")
		if n := w.cp.AddNode(controlplane.Worker([]string{"worker-3", "worker-4"}[i], in.Zone, in.ID)); n.Spec.ProviderID != "aws:///"+in.Zone+"/"+in.ID {
			t.Fatalf("node %s registered with providerID %q", n.Name, n.Spec.ProviderID)
		}
	}
	w.logs.Reset()
	w.emf.Reset()
	if _, err := invoke(t, w.h, scheduled, "req-2"); err != nil {
		t.Fatalf("second tick: %v", err)
	}
	recs = flightRecords(t, w.logs.String())
	joined := 0
	for _, a := range recs[0].Acted {
		if a.Kind == "joined" && a.JoinSeconds >= 89 && a.JoinSeconds <= 91 {
			joined++
		}
	}
	if joined != 2 {
		t.Errorf("second tick acts %+v, want 2 joins after ~90s", recs[0].Acted)
	}
	if l := findMetric(emfLines(t, w.emf.String()), emf.NodeJoinLatency); l == nil {
		t.Errorf("no NodeJoinLatency in\n%s", w.emf)
	}
	st, _ = w.store.Load(context.Background())
	if st.Operation != nil {
		t.Errorf("operation still open after the join: %+v", st.Operation)
	}
}

// The quiet half hour of the same series with three workers: the Lambda's ticks remove one
// worker end to end: cordon, evictions through the apiserver (the demo pods move to the other
// workers), TerminateInstances, the node object deleted; SNS, EMF and the flight records
// say so.
func TestControlPlaneTickScaleDownEndToEnd(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	w := newWorld(t, 3)
	w.now = start.Add(25*time.Minute + 7*time.Second)
	var recs []engine.Record
	for i := 0; i < 5 && w.ec2.Count("TerminateInstances") == 0; i++ {
		if _, err := invoke(t, w.h, scheduled, fmt.Sprintf("req-%d", i)); err != nil {
			t.Fatalf("tick %d: %v\nlogs:\n%s", i, err, w.logs)
		}
		w.now = w.now.Add(time.Minute)
	}
	recs = flightRecords(t, w.logs.String())
	if len(recs) == 0 || recs[0].Decision.Action != engine.ActionScaleDown {
		t.Fatalf("records %+v, want a scale-down first", recs)
	}
	node, instance := recs[0].Decision.Node, recs[0].Decision.Instance
	last := recs[len(recs)-1]
	if a := acts(last); a["terminate"] != "ok" {
		t.Fatalf("last tick acts %+v, want the instance terminated (%d ticks)", last.Acted, len(recs))
	}
	for _, in := range w.ec2.Instances() {
		if (in.ID == instance) != (in.State == "shutting-down") {
			t.Errorf("%s is %s", in.ID, in.State)
		}
	}
	ctx := context.Background()
	if _, err := w.cp.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); err == nil {
		t.Errorf("node %s still registered", node)
	}
	w.cp.WaitDeploymentReady("demo", "demo-app", time.Minute)
	if on := w.cp.PodsOn("demo", w.demo.Selector()); on[node] != 0 || on["worker-1"]+on["worker-2"]+on["worker-3"] != 6 {
		t.Errorf("demo pods per node %v, want all 6 on the workers left", on)
	}
	var events []string
	for _, in := range w.sns.ins {
		m, err := notify.Decode(aws.ToString(in.Message))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, string(m.Event.Kind)+": "+m.Event.Message)
	}
	if len(events) != 1 || events[0] != "scale_down: Removed 1 node (CPU: 20%) → Total: 2 nodes" {
		t.Errorf("SNS events %q, want the one scale-down", events)
	}
	if l := findMetric(emfLines(t, w.emf.String()), emf.ScaleDownEvents); l == nil || l["ScaleDownEvents"] != 1.0 {
		t.Errorf("ScaleDownEvents line %v", l)
	}
	st, err := w.store.Load(ctx)
	if err != nil || st.Operation != nil || st.Workers != 2 {
		t.Errorf("state %+v (%v), want 2 workers and no operation", st, err)
	}
}

func TestUnrecognisedEvent(t *testing.T) {
	h := &Handler{Cfg: config.Config{Roles: []config.Role{config.RoleTick, config.RoleSlack}}, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), EMF: emf.New(io.Discard)}
	for _, p := range []string{`{"hello":"world"}`, `not json`, `{"Records":[{"EventSource":"aws:s3"}]}`} {
		if _, err := h.Invoke(context.Background(), []byte(p)); err == nil {
			t.Errorf("Invoke(%s) succeeded, want an error", p)
		}
	}
}

type secretMap map[string]string

func (m secretMap) Get(_ context.Context, id string) (string, error) {
	v, ok := m[id]
	if !ok {
		return "", io.EOF
	}
	return v, nil
}

func TestForwardToSlack(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	status := http.StatusOK
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(hook.Close)
	h := &Handler{
		Cfg:     config.Config{Roles: []config.Role{config.RoleSlack}, SlackSecret: "slack", ClusterID: "demo"},
		Log:     slog.New(slog.NewJSONHandler(io.Discard, nil)),
		EMF:     emf.New(io.Discard),
		Secrets: secretMap{"slack": `{"url":"` + hook.URL + `/services/T/B/X"}`},
	}
	ev := engine.Event{Kind: engine.EventScaleUp, Time: start, Message: "Added 2 nodes (CPU: 78%) → Total: 5 nodes",
		Decision: engine.Decision{Action: engine.ActionScaleUp, Delta: 2, Reason: "cpu 78.0% > 70% for 3m0s"}}
	body, _ := json.Marshal(notify.Message{Cluster: "demo", Event: ev})
	payload, _ := json.Marshal(map[string]any{"Records": []any{
		map[string]any{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": map[string]any{"MessageId": "m1", "Subject": "SmartScale demo: scale_up", "Message": string(body), "Timestamp": "2026-01-01T00:55:00Z"}},
		map[string]any{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": map[string]any{"MessageId": "m2", "Subject": "hello", "Message": "not an event", "Timestamp": "2026-01-01T00:55:00Z"}},
	}})
	res, err := invoke(t, h, string(payload), "r")
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "slack" || res.Forwarded != 2 || len(got) != 2 {
		t.Fatalf("result %+v, %d posts", res, len(got))
	}
	text := got[0]["text"].(string)
	blocks, _ := json.Marshal(got[0]["blocks"])
	if !strings.Contains(text, "🟢") || !strings.Contains(string(blocks), "Added 2 nodes (CPU: 78%) → Total: 5 nodes") {
		t.Errorf("slack message %s / %s", text, blocks)
	}
	if !strings.Contains(got[1]["text"].(string), "⚠️") || !strings.Contains(got[1]["text"].(string), "not an event") {
		t.Errorf("raw message not forwarded as a warning: %v", got[1])
	}
	// Slack refusing is an error (SNS retries the invocation).
	status = http.StatusInternalServerError
	if _, err := invoke(t, h, string(payload), "r2"); err == nil {
		t.Error("want an error when Slack answers 500")
	}
}
