package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/runtime/dynamo"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
)

// spotKube is a small stateful Kubernetes API for the interruption path: nodes (list, get,
// patch cordon, delete) and an empty pod list, so a drain finishes at once. It records the
// writes.
type spotKube struct {
	mu     sync.Mutex
	nodes  map[string]*corev1.Node
	writes []string
}

func (k *spotKube) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	notFound := func() {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"%s %s"}`, r.Method, r.URL.Path)
	}
	name, isNode := strings.CutPrefix(r.URL.Path, "/api/v1/nodes/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes":
		list := corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
		for _, n := range []string{"master", "worker-1", "worker-2", "worker-3"} {
			if nd, ok := k.nodes[n]; ok {
				list.Items = append(list.Items, *nd)
			}
		}
		_ = json.NewEncoder(w).Encode(list)
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/pods":
		_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}})
	case isNode && k.nodes[name] == nil:
		notFound()
	case isNode && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(k.nodes[name])
	case isNode && r.Method == http.MethodPatch:
		var patch struct {
			Spec struct {
				Unschedulable *bool `json:"unschedulable"`
			} `json:"spec"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &patch); err != nil || patch.Spec.Unschedulable == nil {
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","code":422,"message":"unexpected patch %s"}`, b)
			return
		}
		k.nodes[name].Spec.Unschedulable = *patch.Spec.Unschedulable
		k.writes = append(k.writes, fmt.Sprintf("patch %s unschedulable=%t", name, *patch.Spec.Unschedulable))
		_ = json.NewEncoder(w).Encode(k.nodes[name])
	case isNode && r.Method == http.MethodDelete:
		delete(k.nodes, name)
		k.writes = append(k.writes, "delete "+name)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Success","code":200}`)
	default:
		notFound()
	}
}

func (k *spotKube) log() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.writes...)
}

// An EC2 spot interruption warning and a rebalance recommendation, delivered by EventBridge
// to the built bootstrap through the Lambda RIE, over real Prometheus and dynalite (fake EC2
// and Kubernetes API): the interrupted node is cordoned, drained and replaced under the
// lease; a repeated warning, an instance of someone else's and a malformed event change
// nothing and are no Lambda errors; the scheduled tick sees the result.
func TestInterruptionThroughRIE(t *testing.T) {
	rie := realtest.Tool(t, "aws-lambda-rie")
	bin := buildBootstrap(t)
	now := time.Now().UTC().Truncate(time.Second)
	promURL := realtest.Prometheus(t, realtest.Busy(now.Add(-time.Hour)).OpenMetrics())
	ddbURL := realtest.Dynalite(t)
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String(ddbURL)})
	if err := dynamo.CreateTable(context.Background(), ddb, "smartscale"); err != nil {
		t.Fatal(err)
	}
	ec2srv := ec2fake.New()
	t.Cleanup(ec2srv.Close)
	ec2srv.SubnetZones = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	managed := []ec2fake.Tag{{Key: ec2.TagCluster, Value: "demo"}, {Key: ec2.TagManagedBy, Value: ec2.ManagedByValue}}
	kube := &spotKube{nodes: map[string]*corev1.Node{}}
	for i, name := range []string{"master", "worker-1", "worker-2", "worker-3"} {
		n := &corev1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}, CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Hour))},
			Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
		if i == 0 {
			n.Labels["node-role.kubernetes.io/control-plane"] = "true"
		} else {
			id, zone, subnet := fmt.Sprintf("i-w%d", i), "us-east-1a", "subnet-a"
			in := ec2fake.Instance{ID: id, Type: "t3.medium", State: "running", Zone: zone, Subnet: subnet, LaunchTime: now.Add(-2 * time.Hour), Tags: managed}
			if i >= 2 {
				in.Zone, in.Subnet, in.Lifecycle, in.SpotRequest = "us-east-1b", "subnet-b", "spot", "sir-old"+id
			}
			n.Spec.ProviderID = "aws:///" + in.Zone + "/" + id
			ec2srv.Add(in)
		}
		kube.nodes[name] = n
	}
	kubeSrv := httptest.NewServer(http.HandlerFunc(kube.serve))
	t.Cleanup(kubeSrv.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: k3s, cluster: {server: %q}}]\nusers: [{name: s, user: {token: test}}]\ncontexts: [{name: k3s, context: {cluster: k3s, user: s}}]\ncurrent-context: k3s\n", kubeSrv.URL)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddbURL, "AWS_ENDPOINT_URL_EC2=" + ec2srv.URL,
		"SMARTSCALE_HANDLES=tick", "SMARTSCALE_CLUSTER_ID=demo", "SMARTSCALE_TABLE=smartscale", "SMARTSCALE_LAUNCH_TEMPLATE=lt-0abc",
		"SMARTSCALE_SUBNETS=subnet-a=us-east-1a,subnet-b=us-east-1b", "PROMETHEUS_URL=" + promURL, "KUBECONFIG=" + kubeconfig,
		`POLICY_JSON={"spot_percent": 70, "max_workers": 6}`,
	}
	addr := startRIE(t, rie, bin, env)
	invoke := func(payload string) map[string]any { t.Helper(); return invokeRIE(t, addr, payload) }
	event := func(detailType, id string) string {
		return fmt.Sprintf(`{"version":"0","id":"ev-%d","detail-type":%q,"source":"aws.ec2","account":"123456789012","time":%q,"region":"us-east-1","resources":["arn:aws:ec2:us-east-1b:instance/%s"],"detail":{"instance-id":%q,"instance-action":"terminate"}}`,
			time.Now().UnixNano(), detailType, time.Now().UTC().Format(time.RFC3339), id, id)
	}
	store := dynamo.New(ddb, "smartscale", "demo")
	decision := func(res map[string]any) map[string]any { d, _ := res["decision"].(map[string]any); return d }

	// 1. The interruption warning for spot worker-2: cordoned, drained (no pods), terminated,
	// its node deleted, and a replacement launched, all in the one invocation.
	res := invoke(event("EC2 Spot Instance Interruption Warning", "i-w2"))
	if res["errorMessage"] != nil || res["kind"] != "notice" || res["lock"] != engine.LockAcquired {
		t.Fatalf("interruption: %v", res)
	}
	if d := decision(res); d["action"] != string(engine.ActionInterruption) || d["delta"] != 1.0 || d["node"] != "worker-2" {
		t.Fatalf("decision %v", d)
	}
	if w := kube.log(); len(w) < 2 || w[0] != "patch worker-2 unschedulable=true" || w[len(w)-1] != "delete worker-2" {
		t.Errorf("kubernetes writes %v: want the cordon first and the node deleted", w)
	}
	if n := ec2srv.Count("RunInstances"); n != 1 {
		t.Errorf("%d RunInstances, want 1 replacement", n)
	}
	var run []string
	for _, r := range ec2srv.Requests() {
		if r.Get("Action") == "RunInstances" {
			run = append(run, r.Get("InstanceMarketOptions.MarketType"), r.Get("SubnetId"), r.Get("ClientToken"))
		}
	}
	if len(run) != 3 || run[0] != "spot" || run[2] == "" {
		t.Errorf("replacement launch %v: want a spot request with a ClientToken", run)
	}
	terminated := 0
	for _, in := range ec2srv.Instances() {
		if in.ID == "i-w2" && in.State == "shutting-down" {
			terminated++
		}
	}
	if terminated != 1 {
		t.Errorf("the drained interrupted instance was not terminated: %+v", ec2srv.Instances())
	}
	st, err := store.Load(context.Background())
	if err != nil || st.Operation == nil || st.Operation.Kind != engine.OpScaleUp || len(st.Operation.SpotInstances) != 1 || len(st.Finishing) != 0 {
		t.Fatalf("state after the interruption: %+v %v", st, err)
	}

	// 2. The same warning again, one for someone else's instance, and a malformed event: no
	// Lambda error, nothing done.
	runs, writes := ec2srv.Count("RunInstances")+ec2srv.Count("TerminateInstances"), len(kube.log())
	for _, payload := range []string{
		event("EC2 Spot Instance Interruption Warning", "i-w2"),
		event("EC2 Spot Instance Interruption Warning", "i-0123456789notours"),
		`{"detail-type":"EC2 Instance Rebalance Recommendation","source":"aws.ec2","time":"not a time","detail":{}}`,
	} {
		res := invoke(payload)
		if res["errorMessage"] != nil || res["kind"] != "notice" || decision(res)["action"] != string(engine.ActionNone) {
			t.Errorf("%s: answered %v", payload, res)
		}
	}
	if n := ec2srv.Count("RunInstances") + ec2srv.Count("TerminateInstances"); n != runs || len(kube.log()) != writes {
		t.Errorf("ignored events acted: %d EC2 writes (was %d), kubernetes %v", n, runs, kube.log())
	}

	// 3. The scheduled tick sees the result: the replacement counts (its scale-up started
	// the cooldown), so the busy cluster waits instead of launching again.
	res = invoke(`{"version":"0","id":"t1","detail-type":"Scheduled Event","source":"aws.events","account":"1","time":"` + time.Now().UTC().Format(time.RFC3339) + `","region":"us-east-1","resources":[],"detail":{}}`)
	if res["errorMessage"] != nil || res["kind"] != "tick" || res["lock"] != engine.LockAcquired {
		t.Fatalf("tick: %v", res)
	}
	if d := decision(res); d["action"] != string(engine.ActionCooldown) || !strings.Contains(d["reason"].(string), "scale-up cooldown") {
		t.Errorf("tick after the interruption: %v", d)
	}

	// 4. A rebalance recommendation for spot worker-3: cordoned and replaced now, drained once
	// the replacement has joined.
	res = invoke(event("EC2 Instance Rebalance Recommendation", "i-w3"))
	if d := decision(res); res["errorMessage"] != nil || d["action"] != string(engine.ActionRebalance) || d["delta"] != 1.0 {
		t.Fatalf("rebalance: %v", res)
	}
	if w := kube.log(); w[len(w)-1] != "patch worker-3 unschedulable=true" {
		t.Errorf("kubernetes writes %v: want worker-3 cordoned", w)
	}
	st, _ = store.Load(context.Background())
	atRisk := 0
	for _, op := range st.Open() {
		if op.Cause == engine.CauseRebalance && op.Phase == engine.PhaseAtRisk && op.Node == "worker-3" && op.After == st.Operation.ID {
			atRisk++
		}
	}
	if atRisk != 1 || ec2srv.Count("RunInstances") != 2 {
		t.Errorf("after the rebalance: %d at-risk operations waiting for the replacement, %d launches", atRisk, ec2srv.Count("RunInstances"))
	}
}
