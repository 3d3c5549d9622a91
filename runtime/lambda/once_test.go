package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/internal/realtest/controlplane"
	"github.com/smartscale/smartscale/runtime/dynamo"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
)

// `bootstrap -once` as an operator runs it, with only the environment: a real control plane
// reached through the kubeconfig of the autoscaler's ServiceAccount (k3s/'s RBAC manifest),
// Prometheus with a quiet half hour ending now, dynalite and the EC2 fake. -dry-run reads
// EC2, Prometheus and Kubernetes, decides a scale-down and writes nothing (no cordon, no EC2
// call that changes anything, no state); then -once runs until the worker is drained, its
// instance terminated and its node deleted (one tick, or a few when the demo app's PDB
// refuses the second eviction of a pass).
func TestControlPlaneOnceScalesDownAWorker(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	quiet := realtest.Cluster{Start: now.Add(-30 * time.Minute), Duration: 30 * time.Minute,
		Nodes: []string{"master", "worker-1", "worker-2", "worker-3"},
		Busy:  realtest.Const(0.15), MemUsed: realtest.Const(0.35), Pending: realtest.Const(0)}
	promURL := realtest.Prometheus(t, quiet.OpenMetrics())
	ddbURL := realtest.Dynalite(t)
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""), BaseEndpoint: aws.String(ddbURL)})
	if err := dynamo.CreateTable(context.Background(), ddb, "smartscale"); err != nil {
		t.Fatal(err)
	}
	srv := ec2fake.New()
	t.Cleanup(srv.Close)
	managed := []ec2fake.Tag{{Key: ec2.TagCluster, Value: "demo"}, {Key: ec2.TagManagedBy, Value: ec2.ManagedByValue}}
	cp := controlplane.Start(t)
	cp.AddNode(controlplane.Master("master"))
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("i-w%d", i)
		srv.Add(ec2fake.Instance{ID: id, State: "running", Zone: "us-east-1a", LaunchTime: now.Add(-2 * time.Hour), Tags: managed})
		cp.AddNode(controlplane.Worker(fmt.Sprintf("worker-%d", i), "us-east-1a", id))
	}
	demo := cp.DeployDemo(6, 4, nil)
	cp.Create(cp.Manifest("k3s/manifests/autoscaler-rbac.yaml")...)
	kubeconfig, _ := cp.ServiceAccountKubeconfig("smartscale", "smartscale-autoscaler-token")
	env := map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL_DYNAMODB": ddbURL, "AWS_ENDPOINT_URL_EC2": srv.URL,
		"SMARTSCALE_CLUSTER_ID": "demo", "SMARTSCALE_TABLE": "smartscale", "SMARTSCALE_LAUNCH_TEMPLATE": "lt-0abc",
		"SMARTSCALE_SUBNETS": "subnet-a=us-east-1a", "PROMETHEUS_URL": promURL, "KUBECONFIG": kubeconfig,
		"SMARTSCALE_DRAIN_CALL_TIMEOUT": "10s",
	}
	for k, v := range env { // the AWS SDK reads the process environment
		t.Setenv(k, v)
	}
	once := func(args ...string) engine.Record {
		t.Helper()
		code, out, errs := runArgs(env, append([]string{"-once"}, args...)...)
		var rec engine.Record
		if err := json.Unmarshal([]byte(out), &rec); err != nil || code != 0 {
			t.Fatalf("-once %v: exit %d, record %v\nstdout %s\nstderr %s", args, code, err, out, errs)
		}
		return rec
	}

	rec := once("-dry-run")
	if rec.Lock != engine.LockDryRun || rec.Decision.Action != engine.ActionScaleDown || !strings.HasPrefix(rec.Decision.Node, "worker-") {
		t.Fatalf("dry run: lock %s, decision %+v", rec.Lock, rec.Decision)
	}
	node, instance := rec.Decision.Node, rec.Decision.Instance
	for _, a := range rec.Acted {
		if a.Result != "dry_run" {
			t.Errorf("act %+v in a dry run", a)
		}
	}
	if len(rec.Acted) == 0 || len(rec.Observation.Instances) != 3 || len(rec.Observation.Nodes) != 4 || srv.Count("DescribeInstances") == 0 {
		t.Errorf("dry run: acts %+v, %d instances, %d nodes: want the cordon it would do, read from EC2 and Kubernetes", rec.Acted, len(rec.Observation.Instances), len(rec.Observation.Nodes))
	}
	if n, _ := cp.Client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); n.Spec.Unschedulable || srv.Count("TerminateInstances")+srv.Count("RunInstances") != 0 {
		t.Fatalf("the dry run acted: %s unschedulable %v, %d EC2 writes", node, n.Spec.Unschedulable, srv.Count("TerminateInstances")+srv.Count("RunInstances"))
	}
	if st, err := dynamo.New(ddb, "smartscale", "demo").Load(context.Background()); err != nil || st.Seq != 0 || st.Operation != nil {
		t.Errorf("state written in a dry run: %+v %v", st, err)
	}

	var terminated bool
	var ticks int
	for i := 0; i < 5 && !terminated; i++ {
		ticks++
		rec = once()
		for _, a := range rec.Acted {
			terminated = terminated || (a.Kind == "terminate" && a.Result == "ok")
		}
		if i == 0 && (rec.Decision.Action != engine.ActionScaleDown || rec.Decision.Node != node) {
			t.Fatalf("first tick decision %+v, want the dry run's %s", rec.Decision, node)
		}
	}
	if !terminated {
		t.Fatalf("not terminated after 5 ticks; last acts %+v", rec.Acted)
	}
	t.Logf("%s removed in %d -once ticks", node, ticks)
	for _, in := range srv.Instances() {
		if (in.ID == instance) != (in.State == "shutting-down") {
			t.Errorf("%s is %s", in.ID, in.State)
		}
	}
	if _, err := cp.Client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node %s: %v, want it deleted", node, err)
	}
	cp.WaitDeploymentReady("demo", "demo-app", time.Minute)
	if on := cp.PodsOn("demo", demo.Selector()); on[node] != 0 {
		t.Errorf("demo pods per node %v after removing %s", on, node)
	}
}
