package kube

import (
	"context"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/smartscale/smartscale/engine"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func node(name string, ready bool, labels map[string]string, providerID string) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, CreationTimestamp: metav1.NewTime(t0)},
		Spec:       corev1.NodeSpec{ProviderID: providerID},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}},
	}
}

type owner struct{ kind, name string }

func pod(ns, name, nodeName string, own *owner, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name)},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if own != nil {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: own.kind, Name: own.name, UID: types.UID(own.kind + "/" + own.name), Controller: &yes}}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withEmptyDir(p *corev1.Pod) {
	p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
}
func mirrorPod(p *corev1.Pod) { p.Annotations = map[string]string{AnnotationMirror: "x"} }
func succeeded(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }

// newClientset is a fake clientset whose pod lists honour the spec.nodeName field
// selector, as the API server does (the drain helper lists a node's pods with it).
func newClientset(objs ...runtime.Object) *fake.Clientset {
	cs := fake.NewSimpleClientset(objs...)
	cs.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		la := a.(k8stesting.ListAction)
		sel := la.GetListRestrictions().Fields
		if sel == nil || sel.Empty() {
			return false, nil, nil
		}
		obj, err := cs.Tracker().List(corev1.SchemeGroupVersion.WithResource("pods"), corev1.SchemeGroupVersion.WithKind("Pod"), la.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		var keep []corev1.Pod
		for _, p := range list.Items {
			if sel.Matches(fields.Set{"spec.nodeName": p.Spec.NodeName}) {
				keep = append(keep, p)
			}
		}
		list.Items = keep
		return true, list, nil
	})
	return cs
}

// fixture: a control plane, three workers and their pods.
func fixture() []runtime.Object {
	rs := func(n string) *owner { return &owner{"ReplicaSet", n} }
	ds := &owner{"DaemonSet", "node-exporter"}
	return []runtime.Object{
		node("master", true, map[string]string{LabelControlPlane: "true"}, "k3s://master"),
		node("worker-1", true, nil, "aws:///us-east-1a/i-0aaa"),
		node("worker-2", true, map[string]string{LabelInstanceID: "i-0bbb"}, "k3s://worker-2"),
		node("worker-3", false, map[string]string{LabelInstanceID: "i-0ccc"}, ""),
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "node-exporter"}},
		pod("kube-system", "coredns-1", "master", rs("coredns")),
		pod("kube-system", "etcd-master", "master", nil, mirrorPod),
		pod("monitoring", "node-exporter-1", "worker-1", ds),
		pod("default", "web-1", "worker-1", rs("web")),
		pod("default", "web-2", "worker-1", rs("web"), withEmptyDir),
		pod("default", "job-1", "worker-1", &owner{"Job", "job"}, succeeded),
		pod("monitoring", "node-exporter-2", "worker-2", ds),
		pod("kube-system", "metrics-server-1", "worker-2", rs("metrics-server")), // sole replica: critical
		pod("kube-system", "coredns-2", "worker-2", rs("coredns")),               // another replica on master
		pod("default", "web-3", "worker-2", rs("web")),
		pod("default", "debug", "worker-3", nil), // bare pod: critical
	}
}

func TestNodes(t *testing.T) {
	c := New(newClientset(fixture()...))
	nodes, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]engine.Node{}
	for _, n := range nodes {
		got[n.Name] = n
	}
	want := map[string]engine.Node{
		"master":   {Name: "master", Ready: true, ControlPlane: true, Pods: 1, CreatedAt: t0},
		"worker-1": {Name: "worker-1", InstanceID: "i-0aaa", Ready: true, Pods: 2, CreatedAt: t0},
		"worker-2": {Name: "worker-2", InstanceID: "i-0bbb", Ready: true, Pods: 3, CriticalPods: 1, CreatedAt: t0},
		"worker-3": {Name: "worker-3", InstanceID: "i-0ccc", Ready: false, Pods: 1, CriticalPods: 1, CreatedAt: t0},
	}
	if len(got) != len(want) {
		t.Fatalf("nodes %v", nodes)
	}
	for name, w := range want {
		g := got[name]
		if g.Name != w.Name || g.InstanceID != w.InstanceID || g.Ready != w.Ready || g.ControlPlane != w.ControlPlane ||
			g.Pods != w.Pods || g.CriticalPods != w.CriticalPods || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
	}
}

func TestInstanceID(t *testing.T) {
	tests := []struct {
		providerID string
		label      string
		want       string
	}{
		{"aws:///us-east-1a/i-0123456789abcdef0", "", "i-0123456789abcdef0"},
		{"aws:///us-east-1a/i-0123", "i-label", "i-0123"},
		{"k3s://worker-2", "i-0bbb", "i-0bbb"},
		{"", "", ""},
		{"aws:///us-east-1a/not-an-instance", "", ""},
	}
	for _, tt := range tests {
		n := node("n", true, map[string]string{}, tt.providerID)
		if tt.label != "" {
			n.Labels[LabelInstanceID] = tt.label
		}
		if got := InstanceID(n); got != tt.want {
			t.Errorf("InstanceID(%q, label %q) = %q, want %q", tt.providerID, tt.label, got, tt.want)
		}
	}
}

func TestCordonUncordon(t *testing.T) {
	cs := newClientset(fixture()...)
	c := New(cs)
	ctx := context.Background()
	if err := c.Cordon(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	n, _ := cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
	if !n.Spec.Unschedulable {
		t.Error("worker-1 not cordoned")
	}
	if err := c.Uncordon(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	n, _ = cs.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
	if n.Spec.Unschedulable {
		t.Error("worker-1 still cordoned")
	}
	if err := c.Cordon(ctx, "nope"); !engine.IsNotFound(err) {
		t.Errorf("Cordon of a missing node: %v, want not_found", err)
	}
}

// withEvictions makes the fake clientset answer evictions like an API server: 429 for pods
// a PodDisruptionBudget protects, else the pod is deleted.
func withEvictions(cs *fake.Clientset, blocked map[string]bool) *int {
	calls := new(int)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		*calls++
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		if blocked[ev.Name] {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		return true, nil, cs.Tracker().Delete(gvr, ev.Namespace, ev.Name)
	})
	return calls
}

func TestDrainHonoursPDBAndSkipsDaemonSets(t *testing.T) {
	cs := newClientset(fixture()...)
	blocked := map[string]bool{"web-1": true}
	calls := withEvictions(cs, blocked)
	c := New(cs)
	c.WaitEvicted, c.Poll = 200*time.Millisecond, 10*time.Millisecond
	ctx := context.Background()

	st, err := c.Drain(ctx, "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	// web-2 (emptyDir) and the finished job pod go; web-1 is held by its budget.
	want := engine.DrainStatus{Done: false, Remaining: 1, Blocked: 1, Evicted: 2}
	if st != want {
		t.Errorf("first pass %+v, want %+v", st, want)
	}
	if *calls != 3 {
		t.Errorf("%d eviction calls, want 3 (web-1, web-2, job-1; not the DaemonSet pod)", *calls)
	}
	if _, err := cs.CoreV1().Pods("monitoring").Get(ctx, "node-exporter-1", metav1.GetOptions{}); err != nil {
		t.Errorf("DaemonSet pod touched: %v", err)
	}
	// The budget allows it now: the next pass finishes.
	delete(blocked, "web-1")
	st, err = c.Drain(ctx, "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Done || st.Remaining != 0 || st.Evicted != 1 {
		t.Errorf("second pass %+v, want done", st)
	}
	// Other nodes' pods untouched.
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "web-3", metav1.GetOptions{}); err != nil {
		t.Errorf("web-3 on worker-2 evicted: %v", err)
	}
}

func TestDrainRefusesCriticalPods(t *testing.T) {
	for _, name := range []string{"worker-2", "worker-3"} {
		t.Run(name, func(t *testing.T) {
			cs := newClientset(fixture()...)
			calls := withEvictions(cs, nil)
			c := New(cs)
			st, err := c.Drain(context.Background(), name)
			if !st.Critical || err == nil {
				t.Errorf("Drain(%s) = %+v, %v; want Critical with the reason", name, st, err)
			}
			if *calls != 0 {
				t.Errorf("%d evictions on a node with a critical pod", *calls)
			}
		})
	}
}

func TestDrainIsBoundedInTime(t *testing.T) {
	cs := newClientset(fixture()...)
	// Evictions are accepted but the pods never go (a long terminationGracePeriod).
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return a.GetSubresource() == "eviction", nil, nil
	})
	c := New(cs)
	c.CallTimeout, c.WaitEvicted, c.Poll = 300*time.Millisecond, time.Hour, 20*time.Millisecond
	began := time.Now()
	st, err := c.Drain(context.Background(), "worker-1")
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(began); el > 2*time.Second {
		t.Errorf("Drain took %v, want about the 300ms bound", el)
	}
	if st.Done || st.Remaining != 2 || st.Evicted != 3 {
		t.Errorf("status %+v, want 3 evicted and 2 remaining", st)
	}
}

// A whole scale-down through the engine over the fake cluster: cordon, drain blocked by a
// PDB, then done, terminate; and a drain that never finishes is abandoned with an uncordon.
func TestDrainDeleteAndNotFound(t *testing.T) {
	cs := newClientset(fixture()...)
	c := New(cs)
	ctx := context.Background()
	if err := c.Delete(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "worker-1"); !engine.IsNotFound(err) {
		t.Errorf("second Delete: %v, want not_found", err)
	}
	nodes, _ := c.Nodes(ctx)
	if len(nodes) != 3 {
		t.Errorf("%d nodes after delete, want 3", len(nodes))
	}
}
