package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartscale/smartscale/engine"
)

// LabelInstanceType is the well-known label the kubelet sets from the cloud's instance type.
const LabelInstanceType = "node.kubernetes.io/instance-type"

// Resources lists the unschedulable pods (Pending, unbound, PodScheduled=False with reason
// Unschedulable) with the requests the scheduler places them by, and every node's
// allocatable resources with the requests of the unfinished pods bound to it.
func (c *Cluster) Resources(ctx context.Context) (engine.ClusterResources, error) {
	nodes, err := c.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return engine.ClusterResources{}, fmt.Errorf("listing nodes: %w", kubeError(err))
	}
	pods, err := c.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return engine.ClusterResources{}, fmt.Errorf("listing pods: %w", kubeError(err))
	}
	var out engine.ClusterResources
	byNode := map[string]int{}
	for _, n := range nodes.Items {
		byNode[n.Name] = len(out.Nodes)
		out.Nodes = append(out.Nodes, engine.NodeResources{
			Node:         n.Name,
			InstanceType: n.Labels[LabelInstanceType],
			Allocatable:  fromList(n.Status.Allocatable),
		})
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if finished(p) {
			continue
		}
		req := PodRequests(p)
		if p.Spec.NodeName == "" {
			if since, ok := unschedulable(p); ok {
				out.Pending = append(out.Pending, engine.PendingPod{Namespace: p.Namespace, Name: p.Name, Requests: req, Since: since.UTC()})
			}
			continue
		}
		j, ok := byNode[p.Spec.NodeName]
		if !ok {
			continue
		}
		nr := &out.Nodes[j]
		nr.Requested = nr.Requested.Add(req)
		if daemonSet(p) || mirror(p) {
			nr.DaemonSet = nr.DaemonSet.Add(req)
		} else {
			nr.AddPod(req)
		}
	}
	return out, nil
}

// unschedulable reports whether the scheduler gave up placing the pod, and since when.
func unschedulable(p *corev1.Pod) (metav1.Time, bool) {
	if p.Status.Phase != corev1.PodPending {
		return metav1.Time{}, false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			if c.LastTransitionTime.IsZero() {
				return p.CreationTimestamp, true
			}
			return c.LastTransitionTime, true
		}
	}
	return metav1.Time{}, false
}

// PodRequests is what the scheduler reserves for a pod: the larger of its containers'
// summed requests and its largest init container's, plus the pod overhead; Pods is 1.
// (Restartable "sidecar" init containers run beside the containers and are added to both.)
func PodRequests(p *corev1.Pod) engine.Resources {
	var sum, sidecars engine.Resources
	for _, c := range p.Spec.Containers {
		sum = sum.Add(fromList(c.Resources.Requests))
	}
	init := engine.Resources{}
	for _, c := range p.Spec.InitContainers {
		r := fromList(c.Resources.Requests)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = sidecars.Add(r)
			continue
		}
		r = r.Add(sidecars)
		init.MilliCPU = max(init.MilliCPU, r.MilliCPU)
		init.Memory = max(init.Memory, r.Memory)
	}
	sum = sum.Add(sidecars)
	out := engine.Resources{MilliCPU: max(sum.MilliCPU, init.MilliCPU), Memory: max(sum.Memory, init.Memory), Pods: 1}
	return out.Add(fromList(p.Spec.Overhead))
}

// fromList reads cpu, memory and pods out of a resource list.
func fromList(l corev1.ResourceList) engine.Resources {
	get := func(name corev1.ResourceName) resource.Quantity { return l[name] }
	cpu, mem, pods := get(corev1.ResourceCPU), get(corev1.ResourceMemory), get(corev1.ResourcePods)
	return engine.Resources{MilliCPU: cpu.MilliValue(), Memory: mem.Value(), Pods: pods.Value()}
}
