package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/internal/realtest/controlplane"
	"github.com/smartscale/smartscale/runtime/dynamo"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
	"github.com/smartscale/smartscale/runtime/notify"
)

// buildBootstrap builds the Lambda binary as the Lambda runs it (static, CGO_ENABLED=0,
// -tags lambda.norpc) for this machine's architecture. The first build compiles the
// dependencies without cgo, which takes minutes on two cores; later builds are cached.
func buildBootstrap(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	ctx := context.Background()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
			defer cancel()
		}
	}
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "lambda.norpc", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			t.Fatalf("building bootstrap (CGO_ENABLED=0) did not finish within the test timeout (%v so far): run go test with a longer -timeout", time.Since(began).Round(time.Second))
		}
		t.Fatalf("building bootstrap: %v\n%s", err, b)
	}
	return out
}

// awsFakes serves Secrets Manager GetSecretValue (JSON protocol) and SNS Publish (query
// protocol) from memory.
type awsFakes struct {
	mu        sync.Mutex
	secrets   map[string]string
	published []string
}

func (f *awsFakes) secretsManager(w http.ResponseWriter, r *http.Request) {
	var in struct{ SecretId string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	v, ok := f.secrets[in.SecretId]
	if !ok || r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"ARN": in.SecretId, "Name": "s", "SecretString": v})
}

func (f *awsFakes) sns(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.published = append(f.published, r.PostForm.Get("Message"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprint(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>`)
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not listening", addr)
}

// live is a whole world for the built binary: real Prometheus (series ending now), dynalite
// and Kubernetes control plane, fake EC2, SNS, Secrets Manager and Slack webhook, and the
// environment that points the binary at them.
type live struct {
	env     []string
	now     time.Time
	ec2     *ec2fake.Server
	ddb     *dynamodb.Client
	fk      *awsFakes
	slackMu sync.Mutex
	slack   []string
}

func newLive(t *testing.T) *live {
	t.Helper()
	l := &live{}
	// Series that end now: the binary evaluates at its own clock.
	now := time.Now().UTC().Truncate(time.Second)
	promURL := realtest.Prometheus(t, realtest.Busy(now.Add(-time.Hour)).OpenMetrics())
	ddbURL := realtest.Dynalite(t)
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String(ddbURL)})
	if err := dynamo.CreateTable(context.Background(), ddb, "smartscale"); err != nil {
		t.Fatal(err)
	}
	ec2srv := ec2fake.New()
	t.Cleanup(ec2srv.Close)
	managed := []ec2fake.Tag{{Key: ec2.TagCluster, Value: "demo"}, {Key: ec2.TagManagedBy, Value: ec2.ManagedByValue}}
	// A real control plane with the master and two workers; the binary reads the
	// autoscaler ServiceAccount's kubeconfig from Secrets Manager, as in production.
	cp := controlplane.Start(t)
	cp.AddNode(controlplane.Master("master"))
	for i := 1; i <= 2; i++ {
		id := "i-w" + strconv.Itoa(i)
		ec2srv.Add(ec2fake.Instance{ID: id, State: "running", LaunchTime: now.Add(-2 * time.Hour), Tags: managed})
		cp.AddNode(controlplane.Worker("worker-"+strconv.Itoa(i), "us-east-1a", id))
	}
	cp.Create(cp.Manifest("k3s/manifests/autoscaler-rbac.yaml")...)
	_, kubeconfig := cp.ServiceAccountKubeconfig("smartscale", "smartscale-autoscaler-token")
	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		l.slackMu.Lock()
		l.slack = append(l.slack, string(b))
		l.slackMu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(slackSrv.Close)
	fk := &awsFakes{secrets: map[string]string{"arn:slack": slackSrv.URL + "/services/T/B/X", "arn:kube": kubeconfig}}
	smSrv := httptest.NewServer(http.HandlerFunc(fk.secretsManager))
	t.Cleanup(smSrv.Close)
	snsSrv := httptest.NewServer(http.HandlerFunc(fk.sns))
	t.Cleanup(snsSrv.Close)

	l.env = []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddbURL, "AWS_ENDPOINT_URL_EC2=" + ec2srv.URL,
		"AWS_ENDPOINT_URL_SNS=" + snsSrv.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + smSrv.URL,
		"SMARTSCALE_CLUSTER_ID=demo", "SMARTSCALE_TABLE=smartscale", "SMARTSCALE_LAUNCH_TEMPLATE=lt-0abc",
		"SMARTSCALE_SUBNETS=subnet-a=us-east-1a", "SMARTSCALE_SNS_TOPIC_ARN=arn:aws:sns:us-east-1:1:smartscale",
		"PROMETHEUS_URL=" + promURL, "SLACK_WEBHOOK_SECRET_ARN=arn:slack", "SMARTSCALE_KUBECONFIG_SECRET_ARN=arn:kube",
	}
	l.now, l.ec2, l.ddb, l.fk = now, ec2srv, ddb, fk
	return l
}

// The built bootstrap, run by the Lambda Runtime Interface Emulator, serves a scheduled
// tick (over real Prometheus and dynalite, fake EC2, SNS, Secrets Manager and Kubernetes
// API), an SNS event for Slack, and fails an unknown event.
func TestBootstrapThroughRIE(t *testing.T) {
	rie := realtest.Tool(t, "aws-lambda-rie")
	// build first: the live world's series end now, and the first build without cgo can take
	// minutes, after which the series would be stale
	bin := buildBootstrap(t)
	l := newLive(t)
	now, ec2srv, ddb, fk := l.now, l.ec2, l.ddb, l.fk
	addr := startRIE(t, rie, bin, l.env)
	invoke := func(payload string) map[string]any { t.Helper(); return invokeRIE(t, addr, payload) }

	// 1. A scheduled tick: CPU 78% and pods pending -> +2 workers. The first invocation
	// includes the cold start (process start and init).
	began := time.Now()
	res := invoke(`{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"` + now.Format(time.RFC3339) + `","region":"us-east-1","resources":[],"detail":{}}`)
	if res["errorMessage"] != nil {
		t.Fatalf("tick failed: %v", res)
	}
	t.Logf("first invocation through the RIE (cold start + one tick over local servers): %v", time.Since(began).Round(time.Millisecond))
	dec, _ := res["decision"].(map[string]any)
	if res["kind"] != "tick" || res["lock"] != engine.LockAcquired || dec["action"] != "scale_up" || dec["delta"] != 2.0 {
		t.Fatalf("tick result %v", res)
	}
	if n := ec2srv.Count("RunInstances"); n != 1 {
		t.Errorf("%d RunInstances calls, want 1", n)
	}
	st, err := dynamo.New(ddb, "smartscale", "demo").Load(context.Background())
	if err != nil || st.Operation == nil || len(st.Operation.Instances) != 2 {
		t.Errorf("state after the tick: %+v, %v", st, err)
	}
	fk.mu.Lock()
	published := append([]string(nil), fk.published...)
	fk.mu.Unlock()
	if len(published) != 1 {
		t.Fatalf("%d SNS messages, want 1", len(published))
	}

	// 2. That SNS message, delivered to the forwarder: one Slack post.
	snsEvent, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:1:smartscale:sub",
		"Sns": map[string]any{"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:smartscale",
			"Subject": "SmartScale demo: scale_up", "Message": published[0], "Timestamp": now.Format(time.RFC3339)}}}})
	res = invoke(string(snsEvent))
	if res["kind"] != "slack" || res["forwarded"] != 1.0 {
		t.Fatalf("forwarder result %v", res)
	}
	l.slackMu.Lock()
	defer l.slackMu.Unlock()
	if len(l.slack) != 1 || !strings.Contains(l.slack[0], "🟢") || !strings.Contains(l.slack[0], "Added 2 nodes") {
		t.Errorf("slack posts %q", l.slack)
	}
	if m, err := notify.Decode(published[0]); err != nil || m.Event.Kind != engine.EventScaleUp {
		t.Errorf("published message %v %+v", err, m)
	}

	// 3. An unknown event is a function error: HTTP 200 with errorMessage.
	res = invoke(`{"hello":"world"}`)
	if msg, _ := res["errorMessage"].(string); !strings.Contains(msg, "unrecognised event") {
		t.Errorf("unknown event answered %v", res)
	}
}

func startRIE(t *testing.T, rie, bin string, env []string) string {
	t.Helper()
	port, apiPort := realtest.FreePort(t), realtest.FreePort(t)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(port),
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort), bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	realtest.Start(t, cmd)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	waitPort(t, addr)
	return addr
}

func invokeRIE(t *testing.T, addr, payload string) map[string]any {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post("http://"+addr+"/2015-03-31/functions/function/invocations", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("RIE answered %s: %s", resp.Status, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return m
}

// With a broken configuration every invocation fails with the whole list of problems.
func TestBootstrapBadConfigThroughRIE(t *testing.T) {
	rie := realtest.Tool(t, "aws-lambda-rie")
	bin := buildBootstrap(t)
	addr := startRIE(t, rie, bin, []string{"AWS_REGION=us-east-1", "SMARTSCALE_CLUSTER_ID=demo", "SMARTSCALE_LEASE=10s", "POLICY_JSON={\"max_workers\": 0}"})
	res := invokeRIE(t, addr, `{"detail-type":"Scheduled Event","source":"aws.events"}`)
	msg, _ := res["errorMessage"].(string)
	for _, want := range []string{"invalid configuration", "SMARTSCALE_TABLE is required", "PROMETHEUS_URL is required", "SMARTSCALE_LEASE must be >= 1m", "max_workers", "SLACK_WEBHOOK_SECRET_ARN is required"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}
