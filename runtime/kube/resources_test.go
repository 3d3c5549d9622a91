package kube

import (
	"context"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/smartscale/smartscale/engine"
)

func requests(cpu, mem string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}
}

func TestPodRequests(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	cases := []struct {
		name string
		spec corev1.PodSpec
		want engine.Resources
	}{
		{"containers add up", corev1.PodSpec{Containers: []corev1.Container{
			{Resources: requests("250m", "128Mi")}, {Resources: requests("250m", "128Mi")}}},
			engine.Resources{MilliCPU: 500, Memory: 256 << 20, Pods: 1}},
		{"a larger init container wins", corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: requests("1", "64Mi")}},
			Containers:     []corev1.Container{{Resources: requests("250m", "128Mi")}}},
			engine.Resources{MilliCPU: 1000, Memory: 128 << 20, Pods: 1}},
		{"sidecars run beside the containers", corev1.PodSpec{
			InitContainers: []corev1.Container{{RestartPolicy: &always, Resources: requests("100m", "32Mi")}},
			Containers:     []corev1.Container{{Resources: requests("250m", "128Mi")}}},
			engine.Resources{MilliCPU: 350, Memory: 160 << 20, Pods: 1}},
		{"overhead is added", corev1.PodSpec{
			Overhead:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
			Containers: []corev1.Container{{Resources: requests("250m", "128Mi")}}},
			engine.Resources{MilliCPU: 300, Memory: 128 << 20, Pods: 1}},
		{"no requests", corev1.PodSpec{Containers: []corev1.Container{{}}}, engine.Resources{Pods: 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := PodRequests(&corev1.Pod{Spec: c.spec}); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestResourcesOnTheFakeClientset(t *testing.T) {
	n := node("w1", true, map[string]string{LabelInstanceType: "t3.medium"}, "aws:///us-east-1a/i-1")
	n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1930m"),
		corev1.ResourceMemory: resource.MustParse("3Gi"), corev1.ResourcePods: resource.MustParse("110")}
	withReq := func(cpu, mem string) func(*corev1.Pod) {
		return func(p *corev1.Pod) { p.Spec.Containers = []corev1.Container{{Resources: requests(cpu, mem)}} }
	}
	pendingFor := func(reason string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
				Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: reason,
				LastTransitionTime: metav1.NewTime(t0)}}}
		}
	}
	client := fake.NewClientset(n,
		pod("default", "app-1", "w1", &owner{"ReplicaSet", "app"}, withReq("500m", "256Mi")),
		pod("kube-system", "exporter", "w1", &owner{"DaemonSet", "node-exporter"}, withReq("100m", "64Mi")),
		pod("default", "done", "w1", &owner{"Job", "j"}, withReq("1", "1Gi"), succeeded),
		pod("default", "app-2", "", &owner{"ReplicaSet", "app"}, withReq("500m", "256Mi"), pendingFor(corev1.PodReasonUnschedulable)),
		pod("default", "gated", "", &owner{"ReplicaSet", "app"}, withReq("500m", "256Mi"), pendingFor(corev1.PodReasonSchedulingGated)),
	)
	res, err := New(client).Resources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending) != 1 || res.Pending[0].Name != "app-2" || res.Pending[0].Requests.MilliCPU != 500 || !res.Pending[0].Since.Equal(t0) {
		t.Errorf("pending %+v, want app-2 with 500m since t0 (a gated pod is not unschedulable)", res.Pending)
	}
	if len(res.Nodes) != 1 {
		t.Fatalf("nodes %+v", res.Nodes)
	}
	got := res.Nodes[0]
	want := engine.NodeResources{Node: "w1", InstanceType: "t3.medium",
		Allocatable: engine.Resources{MilliCPU: 1930, Memory: 3 << 30, Pods: 110},
		Requested:   engine.Resources{MilliCPU: 600, Memory: 320 << 20, Pods: 2},
		DaemonSet:   engine.Resources{MilliCPU: 100, Memory: 64 << 20, Pods: 1},
		Pods:        []engine.PodShape{{Requests: engine.Resources{MilliCPU: 500, Memory: 256 << 20, Pods: 1}, Count: 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("node\n got %+v\nwant %+v", got, want)
	}
}
