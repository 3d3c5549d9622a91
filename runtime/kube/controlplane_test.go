package kube

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest/controlplane"
)

// k3sCluster is a real control plane shaped like the K3s cluster: a tainted master (instance
// id by label only) and three t3.medium workers (kwok), node-exporter everywhere and the demo app with its PDB from
// k3s/'s manifests (edit adjusts them). The adapter talks to it as the autoscaler's
// ServiceAccount of k3s/manifests/autoscaler-rbac.yaml, so every call also proves the
// ClusterRole allows it.
func k3sCluster(t *testing.T, replicas int32, edit func(runtime.Object)) (*controlplane.ControlPlane, controlplane.Demo, *Cluster) {
	t.Helper()
	cp := controlplane.Start(t)
	master := controlplane.Master("master")
	master.Labels[LabelInstanceID] = "i-m0" // as k3s/master-setup.sh labels it; its providerID is K3s' k3s://master
	cp.AddNode(master)
	for _, w := range []struct{ name, id string }{{"worker-1", "i-w1"}, {"worker-2", "i-w2"}, {"worker-3", "i-w3"}} {
		cp.AddNode(controlplane.Worker(w.name, "us-east-1a", w.id))
	}
	demo := cp.DeployDemo(replicas, 4, edit)
	return cp, demo, New(autoscalerClient(t, cp))
}

// autoscalerClient is a client with the token of the autoscaler's ServiceAccount.
func autoscalerClient(t *testing.T, cp *controlplane.ControlPlane) kubernetes.Interface {
	t.Helper()
	cp.Create(cp.Manifest("k3s/manifests/autoscaler-rbac.yaml")...)
	path, _ := cp.ServiceAccountKubeconfig("smartscale", "smartscale-autoscaler-token")
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

// readyWatch follows the demo pods and records the fewest Ready, not terminating, ones seen.
type readyWatch struct {
	mu    sync.Mutex
	ready map[types.UID]bool
	min   int
}

func watchReady(t *testing.T, cp *controlplane.ControlPlane, demo controlplane.Demo) *readyWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := cp.Client.CoreV1().Pods(demo.Deployment.Namespace).Watch(ctx, metav1.ListOptions{LabelSelector: demo.Selector()})
	if err != nil {
		t.Fatal(err)
	}
	rw := &readyWatch{ready: map[types.UID]bool{}, min: 1 << 30}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rw.mu.Lock()
			rw.ready[p.UID] = ev.Type != watch.Deleted && p.DeletionTimestamp == nil && podReady(p)
			n := 0
			for _, r := range rw.ready {
				if r {
					n++
				}
			}
			if len(rw.ready) >= int(*demo.Deployment.Spec.Replicas) {
				rw.min = min(rw.min, n)
			}
			rw.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return rw
}

func (rw *readyWatch) fewest() int {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.min
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// drainUntilDone calls Drain until it reports Done, at most passes times, and returns the
// last status and the sums of evicted and blocked pods.
func drainUntilDone(t *testing.T, c *Cluster, node string, passes int) (last engine.DrainStatus, evicted, blocked int) {
	t.Helper()
	for i := 0; i < passes; i++ {
		st, err := c.Drain(context.Background(), node)
		if err != nil {
			t.Fatalf("drain pass %d: %v", i+1, err)
		}
		evicted, blocked = evicted+st.Evicted, blocked+st.Blocked
		if st.Done {
			return st, evicted, blocked
		}
	}
	t.Fatalf("%s not drained after %d passes", node, passes)
	return
}

// A node with demo pods and a PDB (maxUnavailable 1) is cordoned and drained through the
// eviction API: the budget holds throughout, the real scheduler puts the replacements on the
// other workers, the node-exporter pod stays, and the node object is then deleted.
func TestControlPlaneDrainReschedulesAndDeletesNode(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	cp, demo, c := k3sCluster(t, 6, nil)
	c.WaitEvicted, c.Poll = 5*time.Second, 50*time.Millisecond
	ctx := context.Background()
	before := cp.PodsOn("demo", demo.Selector())
	if before["worker-1"] == 0 {
		t.Fatalf("no demo pod on worker-1 to drain: %v", before)
	}
	watch := watchReady(t, cp, demo)

	if err := c.Cordon(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		want := n.Name == "worker-1"
		if n.Unschedulable != want {
			t.Errorf("%s unschedulable = %v after cordoning worker-1", n.Name, n.Unschedulable)
		}
		if n.Name == "worker-1" && (n.Pods != before["worker-1"] || n.InstanceID != "i-w1" || !n.Ready || n.CriticalPods != 0) {
			t.Errorf("worker-1 listed as %+v, want %d evictable pods of i-w1, Ready, none critical", n, before["worker-1"])
		}
	}

	st, evicted, blocked := drainUntilDone(t, c, "worker-1", 10)
	if st.Remaining != 0 || evicted < before["worker-1"] {
		t.Errorf("drain ended %+v after %d evictions (%d refused), want all %d demo pods evicted", st, evicted, blocked, before["worker-1"])
	}
	t.Logf("worker-1 drained: %d evictions accepted, %d refused by the PDB; at least %d of 6 demo pods Ready throughout", evicted, blocked, watch.fewest())
	cp.WaitDeploymentReady("demo", "demo-app", time.Minute)
	after := cp.PodsOn("demo", demo.Selector())
	if after["worker-1"] != 0 || after["master"] != 0 || after["worker-2"]+after["worker-3"] != 6 {
		t.Errorf("demo pods per node after the drain %v, want all 6 on worker-2 and worker-3", after)
	}
	if n := watch.fewest(); n < 5 {
		t.Errorf("only %d of 6 demo pods Ready at some point of the drain; the PDB allows 1 unavailable", n)
	}
	if ds := cp.PodsOn("monitoring", controlplane.Selector(demo.DaemonSet)); ds["worker-1"] != 1 {
		t.Errorf("node-exporter pods per node %v, want its worker-1 pod left in place", ds)
	}
	n, err := cp.Client.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
	if err != nil || !n.Spec.Unschedulable {
		t.Fatalf("worker-1 after the drain: %v, unschedulable %v", err, n.Spec.Unschedulable)
	}

	if err := c.Delete(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "worker-1"); !engine.IsNotFound(err) {
		t.Errorf("second Delete: %v, want not_found", err)
	}
	if err := c.Cordon(ctx, "worker-1"); !engine.IsNotFound(err) {
		t.Errorf("Cordon of a deleted node: %v, want not_found", err)
	}
	nodes, _ = c.Nodes(ctx)
	if len(nodes) != 3 {
		t.Errorf("%d nodes after the delete, want 3", len(nodes))
	}
}

// A PDB with maxUnavailable 0: the apiserver refuses every eviction with 429, the drain
// reports them Blocked and evicts nothing; uncordon gives the node back.
func TestControlPlanePDBAtZeroRefusesEvictions(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	cp, demo, c := k3sCluster(t, 3, func(o runtime.Object) {
		if p, ok := o.(*policyv1.PodDisruptionBudget); ok {
			p.Spec.MaxUnavailable = new(intstr.FromInt32(0))
		}
	})
	c.WaitEvicted, c.Poll = time.Second, 50*time.Millisecond
	ctx := context.Background()
	on := cp.PodsOn("demo", demo.Selector())
	if on["worker-1"] == 0 {
		t.Fatalf("no demo pod on worker-1: %v", on)
	}
	uids := map[types.UID]bool{}
	for _, p := range cp.Pods("demo", demo.Selector()) {
		uids[p.UID] = true
	}
	if err := c.Cordon(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	for pass := 0; pass < 2; pass++ {
		st, err := c.Drain(ctx, "worker-1")
		if err != nil {
			t.Fatal(err)
		}
		want := engine.DrainStatus{Remaining: on["worker-1"], Blocked: on["worker-1"]}
		if st != want {
			t.Errorf("pass %d: %+v, want %+v", pass+1, st, want)
		}
	}
	for _, p := range cp.Pods("demo", demo.Selector()) {
		if !uids[p.UID] || p.DeletionTimestamp != nil {
			t.Errorf("pod %s was evicted or replaced despite the budget", p.Name)
		}
	}
	if err := c.Uncordon(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := cp.Client.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{}); n.Spec.Unschedulable {
		t.Error("worker-1 still cordoned")
	}
}

// Nodes as the engine sees them, on a cluster with every kind of pod the rules tell apart:
// the instance id from the AWS providerID or, on the master (k3s://), from the label;
// Ready from the kubelet (a registered node whose kubelet is not up is not Ready, and the
// pod bound to it counts); movable pods without DaemonSet, mirror (static) and finished
// (a completed Job's) pods; and critical pods: a kube-system Deployment's only replica and
// a bare pod make their nodes critical, and Drain refuses such a node without evicting
// anything; a kube-system replica with a twin on another node does not.
func TestControlPlaneNodesCountMovableAndCriticalPods(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	cp, demo, c := k3sCluster(t, 2, nil)
	ctx := context.Background()
	one := int32(1)
	pinned := func(ns, name, node string, replicas int32) *appsv1.Deployment {
		lbl := map[string]string{"app": name}
		return &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: lbl},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: corev1.PodSpec{
					NodeSelector: map[string]string{corev1.LabelHostname: node},
					Containers:   []corev1.Container{{Name: name, Image: "registry.k8s.io/" + name}}}}},
		}
	}
	// coredns pinned to worker-2 alone; metrics-server with one replica on worker-1 and
	// one on worker-3 (two Deployments would be two controllers: one with a spread).
	spread := pinned(metav1.NamespaceSystem, "metrics-server", "", 2)
	spread.Spec.Template.Spec.NodeSelector = nil
	spread.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"worker-1", "worker-3"}}}}}}},
		PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "metrics-server"}}, TopologyKey: corev1.LabelHostname}}}}
	bare := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "debug"},
		Spec:       corev1.PodSpec{NodeName: "worker-3", Containers: []corev1.Container{{Name: "sh", Image: "busybox"}}}}
	// A Job run to completion on worker-1 (kwok completes Job pods): its pod stays, finished.
	job := &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "report"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			NodeSelector: map[string]string{corev1.LabelHostname: "worker-1"},
			Containers:   []corev1.Container{{Name: "report", Image: "busybox"}}}}}}
	// A static pod of the master, as the kubelet mirrors it into the API.
	masterNode, err := cp.Client.CoreV1().Nodes().Get(ctx, "master", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	static := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: "kube-vip-master",
			Annotations:     map[string]string{AnnotationMirror: "3f2a"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: "master", UID: masterNode.UID}}},
		Spec: corev1.PodSpec{NodeName: "master", Containers: []corev1.Container{{Name: "kube-vip", Image: "ghcr.io/kube-vip/kube-vip"}}}}
	cp.Create(pinned(metav1.NamespaceSystem, "coredns", "worker-2", one), spread, bare, job, static)
	// worker-4 is registered but its kubelet is not up: not Ready, and the pod bound to it
	// by name stays Pending there.
	cp.AddNode(controlplane.Node{Name: "worker-4", NoKubelet: true, ProviderID: "aws:///us-east-1b/i-w4",
		Labels: map[string]string{LabelInstanceType: "t3.medium"}})
	queued := pinned("default", "queued", "", 1)
	queued.Spec.Template.Spec.NodeSelector = nil
	queued.Spec.Template.Spec.NodeName = "worker-4"
	cp.Create(queued)
	cp.WaitDeploymentReady(metav1.NamespaceSystem, "coredns", time.Minute)
	cp.WaitDeploymentReady(metav1.NamespaceSystem, "metrics-server", time.Minute)
	cp.Eventually("the bare and static pods running, the Job done, the queued pod bound", time.Minute, func(ctx context.Context) (bool, error) {
		pods := cp.Pods("", "")
		phase := func(node, prefix string) corev1.PodPhase {
			for _, p := range pods {
				if p.Spec.NodeName == node && strings.HasPrefix(p.Name, prefix) {
					return p.Status.Phase
				}
			}
			return ""
		}
		return phase("worker-3", "debug") == corev1.PodRunning && phase("master", "kube-vip-") == corev1.PodRunning &&
			phase("worker-1", "report-") == corev1.PodSucceeded && phase("worker-4", "queued-") == corev1.PodPending, nil
	})

	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	demoOn := cp.PodsOn("demo", demo.Selector())
	want := map[string]engine.Node{
		"master":   {Name: "master", InstanceID: "i-m0", Ready: true, ControlPlane: true},
		"worker-1": {Name: "worker-1", InstanceID: "i-w1", Ready: true, Pods: demoOn["worker-1"] + 1},
		"worker-2": {Name: "worker-2", InstanceID: "i-w2", Ready: true, Pods: demoOn["worker-2"] + 1, CriticalPods: 1},
		"worker-3": {Name: "worker-3", InstanceID: "i-w3", Ready: true, Pods: demoOn["worker-3"] + 2, CriticalPods: 1},
		"worker-4": {Name: "worker-4", InstanceID: "i-w4", Ready: false, Pods: 1},
	}
	if len(nodes) != len(want) {
		t.Errorf("%d nodes listed, want %d: %+v", len(nodes), len(want), nodes)
	}
	for _, n := range nodes {
		api, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w := want[n.Name]
		w.CreatedAt = api.CreationTimestamp.UTC()
		if n != w {
			t.Errorf("node\n got %+v\nwant %+v (demo pods per node %v)", n, w, demoOn)
		}
	}
	for _, node := range []string{"worker-2", "worker-3"} {
		before := cp.Pods("", "")
		st, err := c.Drain(ctx, node)
		if !st.Critical || err == nil || st.Evicted != 0 {
			t.Errorf("Drain(%s) = %+v, %v; want Critical with the reason and nothing evicted", node, st, err)
		}
		if after := cp.Pods("", ""); len(after) != len(before) {
			t.Errorf("Drain(%s) changed the pods: %d before, %d after", node, len(before), len(after))
		}
	}
	// worker-1's metrics-server has its twin on worker-3: the node can go.
	if st, err := c.Drain(ctx, "worker-1"); err != nil || st.Critical {
		t.Errorf("Drain(worker-1) = %+v, %v; want it drained", st, err)
	}
}

// Pods that ignore SIGTERM stay for their grace period after the eviction: each Drain call
// returns within its bound with the pods still counted (also when the apiserver freezes
// during one), and a later call finds the node empty.
func TestControlPlaneDrainOfPodsIgnoringSIGTERMIsBounded(t *testing.T) {
	t.Parallel() // a control plane of its own; most of the time is spent waiting on it
	const grace = 6
	cp, demo, c := k3sCluster(t, 3, func(o runtime.Object) {
		if d, ok := o.(*appsv1.Deployment); ok {
			d.Spec.Template.Annotations[controlplane.AnnotationIgnoresSIGTERM] = "true"
			d.Spec.Template.Spec.TerminationGracePeriodSeconds = new(int64(grace))
		}
	})
	c.CallTimeout, c.WaitEvicted, c.Poll = 1500*time.Millisecond, time.Second, 100*time.Millisecond
	ctx := context.Background()
	if n := cp.PodsOn("demo", demo.Selector())["worker-1"]; n != 1 {
		t.Fatalf("%d demo pods on worker-1, want 1", n)
	}
	if err := c.Cordon(ctx, "worker-1"); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var passes int
	for {
		passes++
		if passes == 2 {
			// An apiserver too slow to answer: the pass still ends within its bounds
			// (the call's, then 5 s to count what is left) with an error, not done.
			cp.FreezeAPIServer()
			t0 := time.Now()
			st, err := c.Drain(ctx, "worker-1")
			el := time.Since(t0)
			cp.ThawAPIServer()
			t.Logf("pass against a frozen apiserver: %+v, %v after %v", st, err, el.Round(time.Millisecond))
			if err == nil || st.Done || el > c.CallTimeout+7*time.Second {
				t.Errorf("pass against a frozen apiserver: %+v, %v after %v; want an error within the bounds", st, err, el)
			}
			continue
		}
		t0 := time.Now()
		st, err := c.Drain(ctx, "worker-1")
		if err != nil {
			t.Fatal(err)
		}
		if el := time.Since(t0); el > c.CallTimeout+2*time.Second {
			t.Errorf("pass %d took %v, over its %v bound", passes, el, c.CallTimeout)
		}
		if passes == 1 && (st.Evicted != 1 || st.Remaining != 1 || st.Done) {
			t.Errorf("first pass %+v, want the pod evicted and still there", st)
		}
		if st.Done {
			break
		}
		if time.Since(began) > 3*grace*time.Second {
			t.Fatalf("still not drained after %v: %+v", time.Since(began), st)
		}
	}
	t.Logf("drained in %d passes over %v", passes, time.Since(began).Round(time.Millisecond))
	if el := time.Since(began); el < (grace-1)*time.Second || passes < 3 {
		t.Errorf("drained after %v in %d passes; the pod ignores SIGTERM for %d s", el, passes, grace)
	}
}
