package handler

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sdkec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
	"github.com/smartscale/smartscale/runtime/internal/fakes"
	"github.com/smartscale/smartscale/runtime/kube"
)

func rsPod(name, node string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name),
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web", UID: "rs-web", Controller: &yes}}},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// scaleDownWorld: three managed workers at low load; worker-1 has the fewest pods, one of
// them protected by a PodDisruptionBudget while blocked[name] is true.
func scaleDownWorld(t *testing.T, blocked map[string]bool) (*engine.Step, *ec2fake.Server, *fake.Clientset) {
	t.Helper()
	srv := ec2fake.New()
	t.Cleanup(srv.Close)
	managed := []ec2fake.Tag{{Key: ec2.TagCluster, Value: "demo"}, {Key: ec2.TagManagedBy, Value: ec2.ManagedByValue}}
	objs := []runtime.Object{k8sNode("master", "k3s://master", true), &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}}}
	for i, id := range []string{"i-w1", "i-w2", "i-w3"} {
		srv.Add(ec2fake.Instance{ID: id, State: "running", LaunchTime: start.Add(-time.Hour), Tags: managed})
		name := "worker-" + string(rune('1'+i))
		objs = append(objs, k8sNode(name, "aws:///us-east-1a/"+id, false))
		for p := 0; p <= i+1; p++ {
			objs = append(objs, rsPod(name+"-web-"+string(rune('a'+p)), name))
		}
	}
	cs := fake.NewSimpleClientset(objs...)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if blocked[ev.Name] {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		return true, nil, cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), ev.Namespace, ev.Name)
	})
	cl := kube.New(cs)
	cl.WaitEvicted, cl.Poll = 100*time.Millisecond, 10*time.Millisecond
	api := sdkec2.New(sdkec2.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), BaseEndpoint: aws.String(srv.URL), Retryer: aws.NopRetryer{}})
	p := engine.DefaultPolicy()
	step := &engine.Step{ClusterID: "demo", Policy: p, Store: &fakes.Store{}, Cloud: ec2.New(api, "demo", "lt-0abc", ""), Cluster: cl,
		Metrics: fakes.NewMetrics(p, map[string]float64{
			engine.ReadingCPU: 12, engine.ReadingCPUHighMin: 10, engine.ReadingCPULowMax: 15, engine.ReadingMemory: 30,
			engine.ReadingPending: 0, engine.ReadingPendingMin: 0, engine.ReadingNodes: 4, engine.ReadingMetricAge: 10,
		})}
	return step, srv, cs
}

func acts(rec engine.Record) map[string]string {
	m := map[string]string{}
	for _, a := range rec.Acted {
		m[a.Kind] = a.Result
	}
	return m
}

// Scale-down as a multi-tick state machine over the real adapters: cordon and a first
// drain pass held by a PDB; the budget frees; the drain finishes; only then terminate.
func TestScaleDownDrainsThenTerminates(t *testing.T) {
	blocked := map[string]bool{"worker-1-web-a": true}
	step, srv, cs := scaleDownWorld(t, blocked)
	ctx := context.Background()
	t1 := start.Add(2 * time.Hour)
	rec, err := step.Run(ctx, t1, "a")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Decision.Action != engine.ActionScaleDown || rec.Decision.Node != "worker-1" || rec.Decision.Instance != "i-w1" {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if a := acts(rec); a["cordon"] != "ok" || a["drain"] != "in_progress" || a["terminate"] != "" {
		t.Fatalf("first tick acts %+v", rec.Acted)
	}
	n, _ := cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
	if !n.Spec.Unschedulable {
		t.Error("worker-1 not cordoned")
	}
	if srv.Count("TerminateInstances") != 0 {
		t.Fatal("terminated before the drain finished")
	}
	delete(blocked, "worker-1-web-a")
	rec, err = step.Run(ctx, t1.Add(time.Minute), "b")
	if err != nil {
		t.Fatal(err)
	}
	if a := acts(rec); a["drain"] != "ok" || a["terminate"] != "ok" {
		t.Fatalf("second tick acts %+v", rec.Acted)
	}
	for _, in := range srv.Instances() {
		if (in.ID == "i-w1") != (in.State == "shutting-down") {
			t.Errorf("%s is %s", in.ID, in.State)
		}
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node object not deleted: %v", err)
	}
	if len(rec.Events) != 1 || rec.Events[0].Kind != engine.EventScaleDown {
		t.Errorf("events %+v", rec.Events)
	}
}

// A drain a PDB blocks past the policy's DrainTimeout (5 min) is abandoned: uncordon, a
// failure event, and the instance is never terminated.
func TestBlockedDrainIsAbandonedAndUncordoned(t *testing.T) {
	step, srv, cs := scaleDownWorld(t, map[string]bool{"worker-1-web-a": true})
	ctx := context.Background()
	t1 := start.Add(2 * time.Hour)
	var rec engine.Record
	for i, off := range []time.Duration{0, time.Minute, 3 * time.Minute, 5*time.Minute + time.Second} {
		var err error
		rec, err = step.Run(ctx, t1.Add(off), "tick")
		if err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
	}
	if a := acts(rec); a["uncordon"] != "ok" {
		t.Fatalf("last tick acts %+v, want an uncordon", rec.Acted)
	}
	n, _ := cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
	if n.Spec.Unschedulable {
		t.Error("worker-1 left cordoned")
	}
	if srv.Count("TerminateInstances") != 0 {
		t.Error("terminated although the drain never finished")
	}
	if len(rec.Events) == 0 || rec.Events[0].Kind != engine.EventFailure {
		t.Errorf("events %+v, want a failure", rec.Events)
	}
}
