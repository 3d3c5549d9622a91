package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/smartscale/smartscale/internal/realtest"
)

// Node describes a node to register. Zero CPU, Memory and Pods default to a t3.medium
// worker as K3s reports it: 2 CPUs, 3912Mi, 110 pods.
type Node struct {
	Name       string
	CPU        string // e.g. "2"
	Memory     string // e.g. "3912Mi"
	Pods       string // e.g. "110"
	Labels     map[string]string
	ProviderID string
	Taints     []corev1.Taint
	// NoKubelet leaves the node to no kubelet: kwok does not manage it, so it never turns
	// Ready (a node registered while its kubelet is not up, or one that never was) and
	// the pods bound to it stay Pending.
	NoKubelet bool
}

// LabelNoKubelet marks the nodes kwok leaves alone (Node.NoKubelet).
const LabelNoKubelet = "smartscale.io/test-no-kubelet"

// Object returns the Node object a kubelet would register, with capacity = allocatable.
func (n Node) Object() *corev1.Node {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(or(n.CPU, "2")),
		corev1.ResourceMemory: resource.MustParse(or(n.Memory, "3912Mi")),
		corev1.ResourcePods:   resource.MustParse(or(n.Pods, "110")),
	}
	lbl := map[string]string{corev1.LabelHostname: n.Name, corev1.LabelOSStable: "linux"}
	for k, v := range n.Labels {
		lbl[k] = v
	}
	if n.NoKubelet {
		lbl[LabelNoKubelet] = "true"
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: lbl},
		Spec:       corev1.NodeSpec{ProviderID: n.ProviderID, Taints: n.Taints},
		Status:     corev1.NodeStatus{Capacity: res, Allocatable: res.DeepCopy()},
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// AddNode registers a node and waits until kwok has made it Ready and the node-lifecycle
// controller has lifted its not-ready taint (pods can be scheduled on it), unless it has no
// kubelet.
func (c *ControlPlane) AddNode(n Node) *corev1.Node {
	c.t.Helper()
	return c.AddNodes(n)[0]
}

// AddNodes registers the nodes at once and waits until every one with a kubelet is Ready
// and schedulable.
func (c *ControlPlane) AddNodes(nodes ...Node) []*corev1.Node {
	c.t.Helper()
	out := make([]*corev1.Node, len(nodes))
	for i, n := range nodes {
		created, err := c.Client.CoreV1().Nodes().Create(context.Background(), n.Object(), metav1.CreateOptions{})
		if err != nil {
			c.t.Fatalf("creating node %s: %v", n.Name, err)
		}
		out[i] = created
	}
	for i, n := range nodes {
		if !n.NoKubelet {
			out[i] = c.WaitNodeReady(n.Name, time.Minute)
		}
	}
	return out
}

// WaitNodeReady waits until the node is Ready and schedulable by condition and taints.
func (c *ControlPlane) WaitNodeReady(name string, within time.Duration) *corev1.Node {
	c.t.Helper()
	var node *corev1.Node
	c.Eventually("node "+name+" Ready without the not-ready taint", within, func(ctx context.Context) (bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		return nodeReady(n), nil
	})
	return node
}

// strict decodes YAML into the registered API types and rejects unknown and duplicate
// fields, as k3s/manifests_test.go does.
var strict = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// Manifest decodes the manifest file at path (relative to the repository root, e.g.
// "k3s/demo-app/manifests/deployment.yaml"), one typed object per YAML document, for a test
// to adjust before Create.
func (c *ControlPlane) Manifest(path string) []runtime.Object {
	c.t.Helper()
	root, err := realtest.RepoRoot()
	if err != nil {
		c.t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		c.t.Fatal(err)
	}
	var out []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			c.t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := strict.Decode(doc, nil, nil)
		if err != nil {
			c.t.Fatalf("%s document %d: %v", path, i, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			b.WriteString(line + "\n")
		}
	}
	return b.Bytes()
}

// Create creates typed objects (with their apiVersion and kind set, as Manifest returns
// them) through the dynamic client, in order.
func (c *ControlPlane) Create(objs ...runtime.Object) {
	c.t.Helper()
	ctx := context.Background()
	groups, err := restmapper.GetAPIGroupResources(c.Client.Discovery())
	if err != nil {
		c.t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, obj := range objs {
		gvk := obj.GetObjectKind().GroupVersionKind()
		if gvk.Kind == "" {
			kinds, _, err := scheme.Scheme.ObjectKinds(obj)
			if err != nil {
				c.t.Fatal(err)
			}
			gvk = kinds[0]
		}
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			c.t.Fatalf("%v: %v", gvk, err)
		}
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			c.t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: raw}
		u.SetGroupVersionKind(gvk)
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if ns := u.GetNamespace(); ns != "" {
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			c.t.Fatalf("creating %s %s/%s: %v", gvk.Kind, u.GetNamespace(), u.GetName(), err)
		}
	}
}

// WaitDeploymentReady waits until every replica of the Deployment is updated and Ready.
func (c *ControlPlane) WaitDeploymentReady(ns, name string, within time.Duration) {
	c.t.Helper()
	c.Eventually(fmt.Sprintf("deployment %s/%s ready", ns, name), within, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == want &&
			d.Status.UpdatedReplicas == want && d.Status.Replicas == want, nil
	})
}

// WaitDaemonSetReady waits until the DaemonSet has a Ready pod on every node it targets.
func (c *ControlPlane) WaitDaemonSetReady(ns, name string, nodes int32, within time.Duration) {
	c.t.Helper()
	c.Eventually(fmt.Sprintf("daemonset %s/%s ready on %d nodes", ns, name, nodes), within, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.DesiredNumberScheduled == nodes && d.Status.NumberReady == nodes, nil
	})
}

// WaitPDB waits until the disruption controller has computed the budget's status and it
// allows the given number of disruptions.
func (c *ControlPlane) WaitPDB(ns, name string, allowed int32, within time.Duration) *policyv1.PodDisruptionBudget {
	c.t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	c.Eventually(fmt.Sprintf("pdb %s/%s allowing %d disruptions", ns, name, allowed), within, func(ctx context.Context) (bool, error) {
		p, err := c.Client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pdb = p
		return p.Status.ObservedGeneration >= p.Generation && p.Status.DisruptionsAllowed == allowed, nil
	})
	return pdb
}

// Pods lists the pods of a namespace matching the label selector ("" for all).
func (c *ControlPlane) Pods(ns, selector string) []corev1.Pod {
	c.t.Helper()
	l, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		c.t.Fatal(err)
	}
	return l.Items
}

// PodsOn counts the pods of a namespace and selector bound to each node.
func (c *ControlPlane) PodsOn(ns, selector string) map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for _, p := range c.Pods(ns, selector) {
		out[p.Spec.NodeName]++
	}
	return out
}

// ServiceAccountKubeconfig waits for the token the controller-manager puts in a
// kubernetes.io/service-account-token Secret (as k3s/manifests/autoscaler-rbac.yaml
// declares one) and returns a kubeconfig using it, as master-setup.sh hands the autoscaler:
// its path and its content.
func (c *ControlPlane) ServiceAccountKubeconfig(ns, secret string) (path, content string) {
	c.t.Helper()
	var token string
	c.Eventually(fmt.Sprintf("token in secret %s/%s", ns, secret), time.Minute, func(ctx context.Context) (bool, error) {
		s, err := c.Client.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		token = string(s.Data[corev1.ServiceAccountTokenKey])
		return token != "", nil
	})
	// The apiserver checks the token against the Secret and the ServiceAccount in its
	// informers' caches: wait until it knows them.
	cfg := rest.CopyConfig(c.Config)
	cfg.BearerToken = token
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.Eventually("the token of "+ns+"/"+secret+" accepted", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return err == nil, nil
	})
	path = c.WriteKubeconfig(ns+"-"+secret+".kubeconfig", token)
	b, err := clientcmd.Write(Kubeconfig(c.Server, token))
	if err != nil {
		c.t.Fatal(err)
	}
	return path, string(b)
}

// Selector renders a Deployment's or DaemonSet's pod selector for Pods.
func Selector(obj runtime.Object) string {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return labels.Set(o.Spec.Selector.MatchLabels).String()
	case *appsv1.DaemonSet:
		return labels.Set(o.Spec.Selector.MatchLabels).String()
	}
	return ""
}
