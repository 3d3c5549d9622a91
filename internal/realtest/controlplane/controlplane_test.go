package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The demo app's manifests run as shipped: the real scheduler spreads its pods over the
// kwok nodes, kwok turns them Ready, the disruption controller computes its budget, the
// node-exporter DaemonSet lands on every node; and a pod marked as ignoring SIGTERM stays
// for its grace period after deletion while an ordinary one goes at once.
func TestControlPlaneRunsTheDemoApp(t *testing.T) {
	c := Start(t)
	nodes := []Node{Master("master")}
	for i, n := range []string{"worker-1", "worker-2", "worker-3"} {
		nodes = append(nodes, Worker(n, "us-east-1a", fmt.Sprintf("i-w%d", i+1)))
	}
	began := time.Now()
	c.AddNodes(nodes...)
	t.Logf("4 nodes Ready in %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	demo := c.DeployDemo(3, 4, nil)
	t.Logf("demo app and node-exporter Ready in %v", time.Since(began).Round(time.Millisecond))
	on := c.PodsOn("demo", demo.Selector())
	if len(on) != 3 || on["master"] != 0 {
		t.Errorf("demo pods per node %v, want one on each worker (topology spread) and none on the tainted master", on)
	}

	ctx := context.Background()
	grace := int64(3)
	for _, name := range []string{"stubborn", "polite"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if name == "stubborn" {
			p.Annotations = map[string]string{AnnotationIgnoresSIGTERM: "true"}
		}
		if _, err := c.Client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Eventually("both pods running", time.Minute, func(ctx context.Context) (bool, error) {
		n := 0
		for _, p := range c.Pods("default", "") {
			if p.Status.Phase == corev1.PodRunning {
				n++
			}
		}
		return n == 2, nil
	})
	deleted := time.Now()
	for _, name := range []string{"stubborn", "polite"} {
		if err := c.Client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(name string) func(ctx context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			_, err := c.Client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			return err != nil, nil
		}
	}
	c.Eventually("polite pod gone", 2*time.Second, gone("polite"))
	if _, err := c.Client.CoreV1().Pods("default").Get(ctx, "stubborn", metav1.GetOptions{}); err != nil {
		t.Errorf("the pod ignoring SIGTERM went before its grace period: %v", err)
	}
	c.Eventually("stubborn pod gone after its grace period", 15*time.Second, gone("stubborn"))
	// (deletionTimestamp has a resolution of a second: the grace period ends 2-3 s on)
	if el := time.Since(deleted); el < 2*time.Second {
		t.Errorf("the pod ignoring SIGTERM went after %v, before its 3 s grace period", el)
	}
}
