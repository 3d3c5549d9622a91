package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
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

// fixture: a control plane, three workers and their pods, for the errors the real
// apiserver does not give on demand (the classification of Nodes itself is tested against
// the real control plane: TestControlPlaneNodesCountMovableAndCriticalPods).
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

// Errors the real apiserver does not give on demand: an eviction answered with a 500 is an
// error naming the pod, nothing counts as evicted and the node is not done.
func TestDrainReportsEvictionErrors(t *testing.T) {
	// (The fake clientset ignores the drain's spec.nodeName field selector, so worker-3's
	// bare pod, which the drain helper refuses wherever it is, stays out.)
	var objs []runtime.Object
	for _, o := range fixture() {
		if p, ok := o.(*corev1.Pod); !ok || p.Name != "debug" {
			objs = append(objs, o)
		}
	}
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		return true, nil, apierrors.NewInternalError(errors.New("etcdserver: request timed out"))
	})
	c := New(cs)
	c.WaitEvicted, c.Poll = 100*time.Millisecond, 10*time.Millisecond
	st, err := c.Drain(context.Background(), "worker-1")
	if err == nil || !strings.Contains(err.Error(), "evicting default/web-1") || !strings.Contains(err.Error(), "request timed out") {
		t.Errorf("error %v, want each failed eviction named with its cause", err)
	}
	if st.Done || st.Evicted != 0 || st.Remaining != 2 {
		t.Errorf("status %+v, want nothing evicted and 2 remaining", st)
	}
}

// A pod list that fails fails the call before any eviction.
func TestDrainAndNodesReportListErrors(t *testing.T) {
	cs := fake.NewClientset(fixture()...)
	evictions := 0
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("apiserver is shutting down")
	})
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		evictions++
		return false, nil, nil
	})
	c := New(cs)
	if st, err := c.Drain(context.Background(), "worker-1"); err == nil || st.Done || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("Drain = %+v, %v; want the list error", st, err)
	}
	if _, err := c.Nodes(context.Background()); err == nil {
		t.Error("Nodes succeeded with a failing pod list")
	}
	if evictions != 0 {
		t.Errorf("%d evictions after a failed list", evictions)
	}
}
