package controlplane

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Nodes as K3s registers them in the cluster k3s/master-setup.sh and worker-userdata.sh set
// up: the master labelled control-plane and tainted NoSchedule, with the providerID K3s
// gives a node without a cloud provider; workers with the AWS providerID, the
// smartscale.io/instance-id label and the instance type.

// Master is the K3s server node.
func Master(name string) Node {
	return Node{Name: name, ProviderID: "k3s://" + name,
		Labels: map[string]string{"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"},
		Taints: []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}}
}

// Worker is a K3s agent on the EC2 instance id in zone, a t3.medium.
func Worker(name, zone, instanceID string) Node {
	return Node{Name: name, ProviderID: fmt.Sprintf("aws:///%s/%s", zone, instanceID),
		Labels: map[string]string{"smartscale.io/instance-id": instanceID, "node.kubernetes.io/instance-type": "t3.medium",
			corev1.LabelTopologyZone: zone}}
}

// Demo is the demo app and node-exporter as k3s/ ships them, running.
type Demo struct {
	Deployment *appsv1.Deployment
	PDB        *policyv1.PodDisruptionBudget
	DaemonSet  *appsv1.DaemonSet
}

// strictSpread turns the manifest's soft topology spread (ScheduleAnyway, a scoring
// preference the scheduler may trade away) into a rule.
func strictSpread(d *appsv1.Deployment) {
	honor := corev1.NodeInclusionPolicyHonor
	for i := range d.Spec.Template.Spec.TopologySpreadConstraints {
		c := &d.Spec.Template.Spec.TopologySpreadConstraints[i]
		c.WhenUnsatisfiable, c.NodeTaintsPolicy = corev1.DoNotSchedule, &honor
	}
}

// Selector is the demo pods' label selector.
func (d Demo) Selector() string { return Selector(d.Deployment) }

// DeployDemo creates the demo namespace, Deployment and PodDisruptionBudget and the
// monitoring namespace with the node-exporter DaemonSet from k3s/'s manifests, with
// replicas demo pods and whatever edit changes on the decoded objects first, and waits until
// every pod is Ready (on nodes nodes, counting the master) and the budget is computed. The
// Deployment's spread over the nodes is made strict (DoNotSchedule, among the nodes whose
// taints it tolerates), so the tests know where its pods are: as even as the room allows.
func (c *ControlPlane) DeployDemo(replicas int32, nodes int32, edit func(runtime.Object)) Demo {
	c.t.Helper()
	var objs []runtime.Object
	for _, f := range []string{"k3s/demo-app/manifests/namespace.yaml", "k3s/demo-app/manifests/deployment.yaml",
		"k3s/demo-app/manifests/pdb.yaml", "k3s/manifests/monitoring/namespace.yaml", "k3s/manifests/monitoring/node-exporter.yaml"} {
		objs = append(objs, c.Manifest(f)...)
	}
	var d Demo
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			o.Spec.Replicas = &replicas
			strictSpread(o)
			d.Deployment = o
		case *policyv1.PodDisruptionBudget:
			d.PDB = o
		case *appsv1.DaemonSet:
			d.DaemonSet = o
		}
		if edit != nil {
			edit(o)
		}
	}
	if d.Deployment == nil || d.PDB == nil || d.DaemonSet == nil {
		c.t.Fatalf("k3s/ manifests lack the demo Deployment, its PDB or the node-exporter DaemonSet")
	}
	c.Create(objs...)
	c.WaitDeploymentReady(d.Deployment.Namespace, d.Deployment.Name, time.Minute)
	c.WaitDaemonSetReady(d.DaemonSet.Namespace, d.DaemonSet.Name, nodes, time.Minute)
	if d.PDB.Spec.MaxUnavailable != nil {
		c.WaitPDB(d.PDB.Namespace, d.PDB.Name, int32(d.PDB.Spec.MaxUnavailable.IntValue()), time.Minute)
	}
	return d
}
