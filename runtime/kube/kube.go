// Package kube is the engine.Cluster adapter on the Kubernetes API (client-go): nodes with
// their instance ids, cordon/uncordon, one bounded drain pass per call with
// k8s.io/kubectl/pkg/drain (evictions honour PodDisruptionBudgets, DaemonSets are skipped,
// emptyDir data is deleted) and node deletion.
//
// Node <-> instance: spec.providerID "aws:///<zone>/<instance-id>" when the AWS cloud
// provider sets it, else the label smartscale.io/instance-id that the worker user-data sets
// (`--node-label smartscale.io/instance-id=$(IMDS instance-id)` on the K3s agent).
//
// Pods that forbid removing a node ("critical", engine.Node.CriticalPods, and a drain that
// reports Critical instead of evicting anything): a pod that is not owned by a DaemonSet, is
// not a mirror (static) pod, has not finished, is not annotated
// cluster-autoscaler.kubernetes.io/safe-to-evict=true, and either
//   - lives in kube-system and has no other live replica (same controller) on another node,
//     e.g. coredns or metrics-server with one replica; or
//   - has no controller at all (a bare pod: an eviction would lose it for good).
package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"github.com/smartscale/smartscale/engine"
)

// Labels and annotations the adapter reads.
const (
	LabelInstanceID     = "smartscale.io/instance-id"
	LabelControlPlane   = "node-role.kubernetes.io/control-plane"
	LabelMaster         = "node-role.kubernetes.io/master"
	AnnotationMirror    = "kubernetes.io/config.mirror"
	AnnotationSafeEvict = "cluster-autoscaler.kubernetes.io/safe-to-evict"
)

// Cluster talks to one cluster's API server.
type Cluster struct {
	client kubernetes.Interface
	// CallTimeout bounds one Drain call (the engine calls Drain once per tick until done
	// or the policy's DrainTimeout). Default 30s.
	CallTimeout time.Duration
	// WaitEvicted is how long a Drain call waits for evicted pods to go (within
	// CallTimeout). Default 20s.
	WaitEvicted time.Duration
	// Poll is the interval of that wait. Default 1s.
	Poll time.Duration
}

var _ engine.Cluster = (*Cluster)(nil)

// New returns the adapter over a clientset.
func New(client kubernetes.Interface) *Cluster {
	return &Cluster{client: client, CallTimeout: 30 * time.Second, WaitEvicted: 20 * time.Second, Poll: time.Second}
}

// Nodes lists every node with its readiness, role, instance id and pod counts.
func (c *Cluster) Nodes(ctx context.Context) ([]engine.Node, error) {
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", kubeError(err))
	}
	pods, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", kubeError(err))
	}
	byNode := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	out := make([]engine.Node, 0, len(nodes.Items))
	for _, n := range nodes.Items {
		en := engine.Node{
			Name:          n.Name,
			InstanceID:    InstanceID(&n),
			Ready:         ready(&n),
			Unschedulable: n.Spec.Unschedulable,
			ControlPlane:  controlPlane(&n),
			CreatedAt:     n.CreationTimestamp.UTC(),
		}
		for _, p := range byNode[n.Name] {
			if evictable(&p) {
				en.Pods++
			}
			if Critical(&p, pods.Items) != "" {
				en.CriticalPods++
			}
		}
		out = append(out, en)
	}
	return out, nil
}

// InstanceID returns a node's EC2 instance id from its providerID or label, or "".
func InstanceID(n *corev1.Node) string {
	if id, ok := strings.CutPrefix(n.Spec.ProviderID, "aws://"); ok {
		if i := strings.LastIndex(id, "/"); i >= 0 {
			id = id[i+1:]
		}
		if strings.HasPrefix(id, "i-") {
			return id
		}
	}
	return n.Labels[LabelInstanceID]
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func controlPlane(n *corev1.Node) bool {
	_, cp := n.Labels[LabelControlPlane]
	_, m := n.Labels[LabelMaster]
	return cp || m
}

func daemonSet(p *corev1.Pod) bool {
	ref := metav1.GetControllerOf(p)
	return ref != nil && ref.Kind == "DaemonSet"
}

func mirror(p *corev1.Pod) bool {
	_, ok := p.Annotations[AnnotationMirror]
	return ok
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// evictable: a pod a drain has to move (not a DaemonSet's, not a mirror pod, not finished).
func evictable(p *corev1.Pod) bool { return !daemonSet(p) && !mirror(p) && !finished(p) }

// Critical returns why a pod forbids removing its node, or "" (see the package comment).
// all is every pod of the cluster (for the other-replica check).
func Critical(p *corev1.Pod, all []corev1.Pod) string {
	if !evictable(p) || p.Annotations[AnnotationSafeEvict] == "true" {
		return ""
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return fmt.Sprintf("pod %s/%s has no controller", p.Namespace, p.Name)
	}
	if p.Namespace != metav1.NamespaceSystem {
		return ""
	}
	for i := range all {
		o := &all[i]
		if o.UID == p.UID || o.Spec.NodeName == p.Spec.NodeName || o.Spec.NodeName == "" || o.DeletionTimestamp != nil || finished(o) {
			continue
		}
		if r := metav1.GetControllerOf(o); r != nil && r.UID == ref.UID {
			return ""
		}
	}
	return fmt.Sprintf("kube-system pod %s has no other replica (%s %s)", p.Name, ref.Kind, ref.Name)
}

// Cordon marks the node unschedulable.
func (c *Cluster) Cordon(ctx context.Context, node string) error { return c.cordon(ctx, node, true) }

// Uncordon makes the node schedulable again.
func (c *Cluster) Uncordon(ctx context.Context, node string) error {
	return c.cordon(ctx, node, false)
}

func (c *Cluster) cordon(ctx context.Context, node string, desired bool) error {
	verb := "cordoning"
	if !desired {
		verb = "uncordoning"
	}
	n, err := c.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, node, kubeError(err))
	}
	h := drain.NewCordonHelper(n)
	if !h.UpdateIfRequired(desired) {
		return nil
	}
	err, patchErr := h.PatchOrReplaceWithContext(ctx, c.client, false)
	if patchErr != nil {
		err = errors.Join(err, patchErr)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", verb, node, kubeError(err))
	}
	return nil
}

// Drain makes one bounded pass: it refuses nodes with critical pods, evicts the evictable
// pods (a PodDisruptionBudget's 429 counts as Blocked), waits a little for them to go and
// reports what is left.
func (c *Cluster) Drain(ctx context.Context, node string) (engine.DrainStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(c.CallTimeout, 30*time.Second))
	defer cancel()
	all, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return engine.DrainStatus{}, fmt.Errorf("draining %s: listing pods: %w", node, kubeError(err))
	}
	var onNode []corev1.Pod
	for _, p := range all.Items {
		if p.Spec.NodeName == node && evictable(&p) {
			onNode = append(onNode, p)
		}
	}
	for i := range onNode {
		if why := Critical(&onNode[i], all.Items); why != "" {
			return engine.DrainStatus{Critical: true, Remaining: len(onNode)}, fmt.Errorf("draining %s: %s", node, why)
		}
	}
	h := &drain.Helper{
		Ctx: ctx, Client: c.client,
		Force:               false,
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		GracePeriodSeconds:  -1,
		Timeout:             orDefault(c.CallTimeout, 30*time.Second),
		Out:                 io.Discard, ErrOut: io.Discard,
		// The API server applies the spec.nodeName field selector; this filter keeps the
		// same meaning where a client does not (fake clientsets).
		AdditionalFilters: []drain.PodFilter{func(p corev1.Pod) drain.PodDeleteStatus {
			if p.Spec.NodeName != node {
				return drain.MakePodDeleteStatusSkip()
			}
			return drain.MakePodDeleteStatusOkay()
		}},
	}
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return engine.DrainStatus{Remaining: len(onNode)}, fmt.Errorf("draining %s: %w", node, errors.Join(errs...))
	}
	var st engine.DrainStatus
	var evictErrs []error
	evicted := map[types.UID]bool{}
	for _, p := range list.Pods() {
		err := h.EvictPod(p, policyv1.SchemeGroupVersion)
		switch {
		case err == nil, apierrors.IsNotFound(err):
			st.Evicted++
			evicted[p.UID] = true
		case apierrors.IsTooManyRequests(err):
			st.Blocked++
		default:
			evictErrs = append(evictErrs, fmt.Errorf("evicting %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	// Give the evicted pods a moment to terminate, within the call's bound.
	deadline := time.Now().Add(orDefault(c.WaitEvicted, 20*time.Second))
	for len(evicted) > 0 && time.Now().Before(deadline) && ctx.Err() == nil && c.anyLeft(ctx, node, evicted) {
		select {
		case <-ctx.Done():
		case <-time.After(orDefault(c.Poll, time.Second)):
		}
	}
	// Count what is left even when the call's bound has just run out.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ccancel()
	left, err := c.remaining(cctx, node)
	if err != nil {
		return st, fmt.Errorf("draining %s: %w", node, err)
	}
	st.Remaining, st.Done = left, left == 0
	if err := errors.Join(evictErrs...); err != nil {
		return st, fmt.Errorf("draining %s: %w", node, err)
	}
	return st, nil
}

// anyLeft reports whether any of the evicted pods is still on the node.
func (c *Cluster) anyLeft(ctx context.Context, node string, evicted map[types.UID]bool) bool {
	pods, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return true
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName == node && evicted[p.UID] {
			return true
		}
	}
	return false
}

// remaining counts the pods a drain still has to move off the node.
func (c *Cluster) remaining(ctx context.Context, node string) (int, error) {
	pods, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return 0, fmt.Errorf("listing pods: %w", kubeError(err))
	}
	n := 0
	for _, p := range pods.Items {
		if p.Spec.NodeName == node && evictable(&p) {
			n++
		}
	}
	return n, nil
}

// Delete removes the node object.
func (c *Cluster) Delete(ctx context.Context, node string) error {
	if err := c.client.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("deleting node %s: %w", node, kubeError(err))
	}
	return nil
}

// kubeError types the API errors the engine acts on.
func kubeError(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return &engine.CloudError{Kind: engine.KindNotFound, Code: "NotFound", Err: err}
	case apierrors.IsTooManyRequests(err):
		return &engine.CloudError{Kind: engine.KindThrottled, Code: "TooManyRequests", Err: err}
	}
	return err
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
