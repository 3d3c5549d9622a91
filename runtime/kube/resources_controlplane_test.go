package kube

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartscale/smartscale/engine"
)

// The demo app scaled past what the workers hold: the real scheduler leaves the rest
// Pending (Unschedulable) and Resources lists exactly those with their requests; the node
// figures are the apiserver's allocatable and the requests bound there, the DaemonSet part
// apart and the pods a drain would move counted by shape; and the scheduler agrees with
// Free: a pod asking for exactly a node's free room is placed (a shape of its own), one
// asking 1m more is not. A pod held by a scheduling gate is not unschedulable.
func TestControlPlaneResourcesListsUnschedulablePods(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	cp, demo, c := k3sCluster(t, 2, nil)
	ctx := context.Background()
	// 2000m per worker - 20m node-exporter: 7 demo pods of 250m each, 21 on three workers.
	scale, err := cp.Client.AppsV1().Deployments("demo").GetScale(ctx, "demo-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 24
	if _, err := cp.Client.AppsV1().Deployments("demo").UpdateScale(ctx, "demo-app", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	unschedulable := func(want int) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			n := 0
			for _, p := range cp.Pods("", "") {
				if _, ok := unschedulableSince(&p); ok {
					n++
				}
			}
			return n == want, nil
		}
	}
	cp.Eventually("3 demo pods unschedulable", time.Minute, unschedulable(3))
	if n := len(cp.Pods("demo", demo.Selector())); n != 24 {
		t.Fatalf("%d demo pods, want 24", n)
	}

	res, err := c.Resources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	demoReq := engine.Resources{MilliCPU: 250, Memory: 256 << 20, Pods: 1}
	if len(res.Pending) != 3 {
		t.Fatalf("pending %+v, want the 3 demo pods the scheduler could not place", res.Pending)
	}
	for _, p := range res.Pending {
		if p.Namespace != "demo" || p.Requests != demoReq || p.Since.IsZero() || time.Since(p.Since) > time.Minute {
			t.Errorf("pending %+v, want a demo pod with %+v, unschedulable since moments ago", p, demoReq)
		}
	}
	// Every node as the apiserver has it: allocatable from its status, the requests of the
	// pods bound there, node-exporter's as the DaemonSet part, and the demo pods, which a
	// drain would move, as one shape of 7.
	exporter := engine.Resources{MilliCPU: 20, Memory: 32 << 20, Pods: 1}
	for _, n := range res.Nodes {
		api, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Allocatable != fromList(api.Status.Allocatable) {
			t.Errorf("%s allocatable %+v, apiserver says %v", n.Node, n.Allocatable, api.Status.Allocatable)
		}
		want := engine.NodeResources{Node: n.Node, Allocatable: engine.Resources{MilliCPU: 2000, Memory: 3912 << 20, Pods: 110},
			Requested: exporter, DaemonSet: exporter}
		if n.Node != "master" {
			want.InstanceType = "t3.medium"
			want.Requested = exporter.Add(engine.Resources{MilliCPU: 7 * 250, Memory: 7 * 256 << 20, Pods: 7})
			want.Pods = []engine.PodShape{{Requests: demoReq, Count: 7}}
		}
		if !reflect.DeepEqual(n, want) {
			t.Errorf("node\n got %+v\nwant %+v", n, want)
		}
	}

	// The scheduler's own arithmetic: exactly the free room fits, 1m more does not.
	free := res.Nodes[index(res.Nodes, "worker-1")].Free()
	pinned := func(name, node string, cpu int64) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelHostname: node},
				Containers: []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceCPU: *resource.NewMilliQuantity(cpu, resource.DecimalSI), corev1.ResourceMemory: resource.MustParse("64Mi")}}}}}}
	}
	gated := pinned("gated", "worker-3", 10)
	gated.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "smartscale.io/test"}}
	for _, p := range []*corev1.Pod{pinned("fits", "worker-1", free.MilliCPU), pinned("too-big", "worker-2", free.MilliCPU+1), gated} {
		if _, err := cp.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cp.Eventually("fits running on worker-1", time.Minute, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.CoreV1().Pods("default").Get(ctx, "fits", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName == "worker-1" && p.Status.Phase == corev1.PodRunning, nil
	})
	cp.Eventually("too-big unschedulable", time.Minute, unschedulable(4))
	res, err = c.Resources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]engine.PendingPod{}
	for _, p := range res.Pending {
		names[p.Namespace+"/"+p.Name] = p
	}
	if p, ok := names["default/too-big"]; !ok || p.Requests.MilliCPU != free.MilliCPU+1 || len(names) != 4 {
		t.Errorf("pending %v, want the 3 demo pods and too-big (%dm), not the gated pod", names, free.MilliCPU+1)
	}
	w1 := res.Nodes[index(res.Nodes, "worker-1")]
	if f := w1.Free(); f.MilliCPU != 0 {
		t.Errorf("worker-1 free %+v after a pod took exactly its free CPU, want 0m", f)
	}
	// The new pod is a shape of its own beside the demo pods'.
	shapes := map[engine.Resources]int{}
	for _, s := range w1.Pods {
		shapes[s.Requests] += s.Count
	}
	fits := engine.Resources{MilliCPU: free.MilliCPU, Memory: 64 << 20, Pods: 1}
	if len(w1.Pods) != 2 || shapes[demoReq] != 7 || shapes[fits] != 1 {
		t.Errorf("worker-1 pod shapes %+v, want 7 x %+v and 1 x %+v", w1.Pods, demoReq, fits)
	}
}

func index(nodes []engine.NodeResources, name string) int {
	for i, n := range nodes {
		if n.Node == name {
			return i
		}
	}
	panic(fmt.Sprintf("no node %s", name))
}

// unschedulableSince is the test's own reading of the scheduler's verdict.
func unschedulableSince(p *corev1.Pod) (time.Time, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}
