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
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest/controlplane"
	"github.com/smartscale/smartscale/runtime/ec2"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
	"github.com/smartscale/smartscale/runtime/internal/fakes"
	"github.com/smartscale/smartscale/runtime/kube"
)

// downWorld is a scale-down rig: the engine's Step over the EC2 fake and a real control
// plane (a master, three managed workers, node-exporter and the demo app from k3s/), with
// fixed low readings (CPU 12%, memory 30%, nothing pending), so the engine removes a worker.
type downWorld struct {
	step *engine.Step
	ec2  *ec2fake.Server
	cp   *controlplane.ControlPlane
	demo controlplane.Demo
	kube *kube.Cluster
}

func newDownWorld(t *testing.T, replicas int32, edit func(runtime.Object)) *downWorld {
	t.Helper()
	srv := ec2fake.New()
	t.Cleanup(srv.Close)
	managed := []ec2fake.Tag{{Key: ec2.TagCluster, Value: "demo"}, {Key: ec2.TagManagedBy, Value: ec2.ManagedByValue}}
	cp := controlplane.Start(t)
	cp.AddNode(controlplane.Master("master"))
	for i, id := range []string{"i-w1", "i-w2", "i-w3"} {
		srv.Add(ec2fake.Instance{ID: id, State: "running", LaunchTime: start.Add(-time.Hour), Tags: managed})
		cp.AddNode(controlplane.Worker("worker-"+string(rune('1'+i)), "us-east-1a", id))
	}
	demo := cp.DeployDemo(replicas, 4, edit)
	cl := kube.New(autoscalerClient(t, cp))
	cl.CallTimeout, cl.WaitEvicted, cl.Poll = 2*time.Second, time.Second, 50*time.Millisecond
	api := sdkec2.New(sdkec2.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), BaseEndpoint: aws.String(srv.URL), Retryer: aws.NopRetryer{}})
	p := engine.DefaultPolicy()
	step := &engine.Step{ClusterID: "demo", Policy: p, Store: &fakes.Store{}, Cloud: ec2.New(api, "demo", "lt-0abc", ""), Cluster: cl,
		Metrics: fakes.NewMetrics(p, map[string]float64{
			engine.ReadingCPU: 12, engine.ReadingCPUHighMin: 10, engine.ReadingCPULowMax: 15, engine.ReadingMemory: 30,
			engine.ReadingPending: 0, engine.ReadingPendingMin: 0, engine.ReadingNodes: 4, engine.ReadingMetricAge: 10,
		})}
	w := &downWorld{step: step, ec2: srv, cp: cp, demo: demo, kube: cl}
	// Nothing is terminated while a pod that must move is still on the node.
	step.Hook = func(point string) error {
		if point == "terminate" && w.podsLeft(w.targetOf(step)) > 0 {
			t.Errorf("terminating with %d pods still on the node", w.podsLeft(w.targetOf(step)))
		}
		return nil
	}
	return w
}

// autoscalerClient is a client with the token of the autoscaler's ServiceAccount from
// k3s/manifests/autoscaler-rbac.yaml: the drain runs with exactly the rights the Lambda has.
func autoscalerClient(t *testing.T, cp *controlplane.ControlPlane) kubernetes.Interface {
	t.Helper()
	cp.Create(cp.Manifest("k3s/manifests/autoscaler-rbac.yaml")...)
	path, _ := cp.ServiceAccountKubeconfig("smartscale", "smartscale-autoscaler-token")
	return kubeFromFile(t, path)
}

// targetOf is the node of the scale-down under way, from the state store.
func (w *downWorld) targetOf(step *engine.Step) string {
	st, _ := step.Store.Load(context.Background())
	if st.Operation == nil {
		return ""
	}
	return st.Operation.Node
}

// podsLeft counts the pods on node that a drain has to move (not DaemonSet pods).
func (w *downWorld) podsLeft(node string) int {
	n := 0
	for _, p := range w.cp.Pods("", "") {
		if p.Spec.NodeName == node && (metav1.GetControllerOf(&p) == nil || metav1.GetControllerOf(&p).Kind != "DaemonSet") {
			n++
		}
	}
	return n
}

func (w *downWorld) cordoned(t *testing.T, node string) bool {
	t.Helper()
	n, err := w.cp.Client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Spec.Unschedulable
}

func acts(rec engine.Record) map[string]string {
	m := map[string]string{}
	for _, a := range rec.Acted {
		m[a.Kind] = a.Result
	}
	return m
}

// ignoreSIGTERM makes the demo pods stay grace seconds after their eviction.
func ignoreSIGTERM(grace int64) func(runtime.Object) {
	return func(o runtime.Object) {
		if d, ok := o.(*appsv1.Deployment); ok {
			d.Spec.Template.Annotations[controlplane.AnnotationIgnoresSIGTERM] = "true"
			d.Spec.Template.Spec.TerminationGracePeriodSeconds = &grace
		}
	}
}

// Scale-down as a multi-tick state machine against the real control plane: cordon, then
// drain passes (the pods ignore SIGTERM for 4 s, so the drain spans ticks, each bounded),
// and only once the node is empty terminate the instance and delete the node; the demo
// pods run on the other workers, rescheduled by the real scheduler.
func TestControlPlaneScaleDownDrainsAcrossTicksThenTerminates(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	w := newDownWorld(t, 6, ignoreSIGTERM(4))
	ctx := context.Background()
	t1 := start.Add(2 * time.Hour)
	rec, err := w.step.Run(ctx, t1, "a")
	if err != nil {
		t.Fatal(err)
	}
	node, instance := rec.Decision.Node, rec.Decision.Instance
	if rec.Decision.Action != engine.ActionScaleDown || node == "" || instance != "i-w"+node[len(node)-1:] {
		t.Fatalf("decision %+v", rec.Decision)
	}
	if a := acts(rec); a["cordon"] != "ok" || a["drain"] != "in_progress" || a["terminate"] != "" {
		t.Fatalf("first tick acts %+v", rec.Acted)
	}
	if !w.cordoned(t, node) {
		t.Errorf("%s not cordoned", node)
	}
	ticks := 1
	for ; ticks < 20 && acts(rec)["terminate"] == ""; ticks++ {
		if w.ec2.Count("TerminateInstances") != 0 {
			t.Fatal("terminated before the drain finished")
		}
		if rec, err = w.step.Run(ctx, t1.Add(time.Duration(ticks)*20*time.Second), "b"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s drained and its instance terminated at tick %d", node, ticks)
	if a := acts(rec); a["drain"] != "ok" || a["terminate"] != "ok" || ticks < 3 {
		t.Fatalf("tick %d acts %+v, want the drain done and the instance terminated after a few ticks", ticks, rec.Acted)
	}
	for _, in := range w.ec2.Instances() {
		if (in.ID == instance) != (in.State == "shutting-down") {
			t.Errorf("%s is %s", in.ID, in.State)
		}
	}
	if _, err := w.cp.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node object not deleted: %v", err)
	}
	if len(rec.Events) != 1 || rec.Events[0].Kind != engine.EventScaleDown {
		t.Errorf("events %+v", rec.Events)
	}
	w.cp.WaitDeploymentReady("demo", "demo-app", time.Minute)
	if on := w.cp.PodsOn("demo", w.demo.Selector()); on[node] != 0 || len(on) != 2 {
		t.Errorf("demo pods per node %v, want them on the two workers left", on)
	}
}

// A PDB at 0 disruptions blocks the drain: every eviction is refused (429) and shown in
// the acts; past the policy's DrainTimeout (5 min) the drain is abandoned: uncordon, a
// failure event, and the instance is never terminated.
func TestControlPlaneBlockedDrainIsAbandonedAndUncordoned(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	w := newDownWorld(t, 3, func(o runtime.Object) {
		if p, ok := o.(*policyv1.PodDisruptionBudget); ok {
			p.Spec.MaxUnavailable = new(intstr.FromInt32(0))
		}
	})
	ctx := context.Background()
	t1 := start.Add(2 * time.Hour)
	var rec engine.Record
	var node string
	for i, off := range []time.Duration{0, time.Minute, 3 * time.Minute, 5*time.Minute + time.Second} {
		var err error
		rec, err = w.step.Run(ctx, t1.Add(off), "tick")
		if err != nil {
			t.Fatalf("tick %d: %v", i, err)
		}
		if i == 0 {
			node = rec.Decision.Node
		}
		if i < 3 {
			for _, a := range rec.Acted {
				if a.Kind == "drain" && (a.Result != "in_progress" || a.Error != "1 evictions refused by a PodDisruptionBudget") {
					t.Errorf("tick %d drain act %+v, want in progress with the refusal", i, a)
				}
			}
			if !w.cordoned(t, node) {
				t.Errorf("tick %d: %s not cordoned during the drain", i, node)
			}
		}
	}
	if a := acts(rec); a["uncordon"] != "ok" {
		t.Fatalf("last tick acts %+v, want an uncordon", rec.Acted)
	}
	if w.cordoned(t, node) {
		t.Errorf("%s left cordoned", node)
	}
	if w.ec2.Count("TerminateInstances") != 0 {
		t.Error("terminated although the drain never finished")
	}
	if len(rec.Events) == 0 || rec.Events[0].Kind != engine.EventFailure {
		t.Errorf("events %+v, want a failure", rec.Events)
	}
	if n := w.podsLeft(node); n != 1 {
		t.Errorf("%d demo pods left on %s, want its one pod untouched", n, node)
	}
}

// The node the engine would remove carries the only coredns replica (kube-system): it is
// not chosen, another worker is.
func TestControlPlaneNodeWithCriticalPodIsNotChosen(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	w := newDownWorld(t, 3, nil)
	ctx := context.Background()
	t1 := start.Add(2 * time.Hour)
	w.step.DryRun = true
	rec, err := w.step.Run(ctx, t1, "dry")
	if err != nil {
		t.Fatal(err)
	}
	first := rec.Decision.Node
	if rec.Decision.Action != engine.ActionScaleDown || first == "" {
		t.Fatalf("dry-run decision %+v", rec.Decision)
	}
	one := int32(1)
	lbl := map[string]string{"k8s-app": "kube-dns"}
	w.cp.Create(&appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "coredns"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{corev1.LabelHostname: first}, PriorityClassName: "system-cluster-critical",
				Containers: []corev1.Container{{Name: "coredns", Image: "rancher/mirrored-coredns-coredns:1.12.0"}}}}},
	})
	w.cp.WaitDeploymentReady(metav1.NamespaceSystem, "coredns", time.Minute)

	w.step.DryRun = false
	rec, err = w.step.Run(ctx, t1.Add(time.Minute), "real")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Decision.Action != engine.ActionScaleDown || rec.Decision.Node == "" || rec.Decision.Node == first {
		t.Fatalf("decision %+v, want a scale-down of a worker other than %s (coredns)", rec.Decision, first)
	}
	for _, n := range rec.Observation.Nodes {
		if (n.Name == first) != (n.CriticalPods == 1) {
			t.Errorf("observed %s with %d critical pods", n.Name, n.CriticalPods)
		}
	}
	if w.cordoned(t, first) {
		t.Errorf("%s (coredns) cordoned", first)
	}
}

// The apiserver goes away in the middle of a drain pass: the tick records the failed drain
// and keeps the node cordoned; a tick while it is down cannot observe and does nothing;
// once it is back, the next tick resumes the drain and finishes the scale-down. Nothing is
// terminated while the pods are still on the node (the Hook checks at the terminate).
func TestControlPlaneAPIServerStoppedMidDrain(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	w := newDownWorld(t, 3, ignoreSIGTERM(3))
	ctx := context.Background()
	t1 := start.Add(2 * time.Hour)
	rec, err := w.step.Run(ctx, t1, "a")
	if err != nil {
		t.Fatal(err)
	}
	node := rec.Decision.Node
	if a := acts(rec); a["cordon"] != "ok" || a["drain"] != "in_progress" {
		t.Fatalf("first tick acts %+v", rec.Acted)
	}

	// Second tick: the apiserver stops half a second into the drain pass.
	stopped := make(chan struct{})
	check := w.step.Hook
	w.step.Hook = func(point string) error {
		if point == "drain" {
			time.AfterFunc(500*time.Millisecond, func() {
				t0 := time.Now()
				w.cp.StopAPIServer()
				t.Logf("apiserver stopped in %v", time.Since(t0).Round(time.Millisecond))
				close(stopped)
			})
		}
		return check(point)
	}
	rec, err = w.step.Run(ctx, t1.Add(time.Minute), "b")
	<-stopped
	w.step.Hook = check
	if err != nil {
		t.Fatalf("tick with the apiserver stopping: %v", err)
	}
	var drain engine.Act
	for _, a := range rec.Acted {
		if a.Kind == "drain" {
			drain = a
		}
	}
	t.Logf("drain pass while the apiserver stopped: %+v", drain)
	if drain.Result != "failed" || drain.Error == "" {
		t.Errorf("drain act %+v, want failed with the error", drain)
	}

	// Third tick, apiserver down: no observation, no act.
	rec, err = w.step.Run(ctx, t1.Add(2*time.Minute), "c")
	if err == nil || rec.Decision.Action != engine.ActionNoData || len(rec.Acted) != 0 {
		t.Errorf("tick without an apiserver: %v, decision %+v, acts %+v; want a failed observation and nothing done", err, rec.Decision, rec.Acted)
	}
	if w.ec2.Count("TerminateInstances") != 0 {
		t.Fatal("terminated while the apiserver was down")
	}

	t0 := time.Now()
	w.cp.StartAPIServer()
	t.Logf("apiserver back in %v", time.Since(t0).Round(time.Millisecond))
	if !w.cordoned(t, node) {
		t.Errorf("%s not cordoned after the outage", node)
	}
	var ticks int
	for ticks = 3; ticks < 20 && acts(rec)["terminate"] != "ok"; ticks++ {
		if rec, err = w.step.Run(ctx, t1.Add(time.Duration(ticks)*time.Minute), "d"); err != nil {
			t.Fatalf("tick %d after the restart: %v", ticks, err)
		}
	}
	if a := acts(rec); a["drain"] != "ok" || a["terminate"] != "ok" {
		t.Fatalf("tick %d acts %+v, want the scale-down finished", ticks, rec.Acted)
	}
	if _, err := w.cp.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node object not deleted: %v", err)
	}
}
