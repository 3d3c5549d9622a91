// Package k3s holds no Go code of its own besides this test: it checks the cluster-side files
// (manifests, Prometheus config, dashboards) for what the promtool and shellcheck runs in the
// Makefile cannot see.
package k3s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/smartscale/smartscale/engine"
)

// object is one decoded manifest document.
type object struct {
	file string
	obj  runtime.Object
}

// strictDecoder decodes YAML into the registered API types and rejects unknown and duplicate
// fields; an unregistered kind is an error too.
var strictDecoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// manifestFiles lists every Kubernetes manifest under k3s/ (*.yaml; Prometheus's own files
// are *.yml under monitoring/ and checked by promtool).
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found only %d manifests: %v", len(files), files)
	}
	return files
}

func decodeAll(t *testing.T) []object {
	t.Helper()
	var out []object
	for _, f := range manifestFiles(t) {
		objs, err := decodeFile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		out = append(out, objs...)
	}
	return out
}

func decodeFile(path string) ([]object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeDocs(path, data)
}

func decodeDocs(path string, data []byte) ([]object, error) {
	var out []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if isBlank(doc) {
			continue
		}
		obj, gvk, err := strictDecoder.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if gvk.Kind == "" {
			return nil, fmt.Errorf("document %d has no kind", i)
		}
		out = append(out, object{file: path, obj: obj})
	}
}

func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

func TestEveryManifestDecodesStrictly(t *testing.T) {
	objs := decodeAll(t)
	if len(objs) < 20 {
		t.Fatalf("decoded only %d objects", len(objs))
	}
}

// The decoder must reject what a typo would produce; otherwise the test above proves nothing.
func TestStrictDecoderRejectsUnknownFieldsAndKinds(t *testing.T) {
	bad := map[string]string{
		"unknown field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  prots: []\n",
		"unknown kind":  "apiVersion: v1\nkind: Servce\nmetadata: {name: x}\n",
		"wrong group":   "apiVersion: apps/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n",
		"duplicate":     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n",
	}
	for name, doc := range bad {
		if _, err := decodeDocs(name, []byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// find returns the single object of type T with the given name.
func find[T runtime.Object](t *testing.T, objs []object, name string) T {
	t.Helper()
	var hits []T
	for _, o := range objs {
		if v, ok := o.obj.(T); ok {
			if m, err := metaName(o.obj); err == nil && m == name {
				hits = append(hits, v)
			}
		}
	}
	if len(hits) != 1 {
		var zero T
		t.Fatalf("want exactly one %T named %q, found %d", zero, name, len(hits))
	}
	return hits[0]
}

func metaName(o runtime.Object) (string, error) {
	acc, ok := o.(metav1.Object)
	if !ok {
		return "", errors.New("no metadata")
	}
	return acc.GetName(), nil
}

func TestDemoAppWorkload(t *testing.T) {
	objs := decodeAll(t)
	dep := find[*appsv1.Deployment](t, objs, "demo-app")
	hpa := find[*autoscalingv2.HorizontalPodAutoscaler](t, objs, "demo-app")
	pdb := find[*policyv1.PodDisruptionBudget](t, objs, "demo-app")

	podLabels := labels.Set(dep.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Fatalf("the Deployment's selector %v does not match its pods %v (%v)", dep.Spec.Selector, podLabels, err)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("250m")) != 0 {
		t.Errorf("CPU request %s, want 250m", got.String())
	}
	if got := c.Resources.Requests[corev1.ResourceMemory]; got.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("memory request %s, want 256Mi", got.String())
	}
	if dep.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("demo pods are not annotated for scraping")
	}

	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != dep.Name || ref.APIVersion != "apps/v1" || hpa.Namespace != dep.Namespace {
		t.Errorf("HPA targets %s %s/%s in %q, want the demo Deployment", ref.APIVersion, ref.Kind, ref.Name, hpa.Namespace)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil ||
		hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
		hpa.Spec.Metrics[0].Resource.Target.AverageUtilization == nil ||
		*hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 {
		t.Errorf("HPA metrics %+v, want CPU utilisation 60%%", hpa.Spec.Metrics)
	}

	psel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || psel.Empty() || !psel.Matches(podLabels) || pdb.Namespace != dep.Namespace {
		t.Errorf("PDB selector %v does not select the demo pods %v in %q", pdb.Spec.Selector, podLabels, dep.Namespace)
	}
	if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
		t.Errorf("PDB sets neither minAvailable nor maxUnavailable")
	}

	for _, name := range []string{"demo-app", "demo-app-metrics"} {
		svc := find[*corev1.Service](t, objs, name)
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || svc.Namespace != dep.Namespace {
			t.Errorf("Service %s does not select the demo pods", name)
		}
	}
}

func TestPrometheusService(t *testing.T) {
	objs := decodeAll(t)
	svc := find[*corev1.Service](t, objs, "prometheus")
	if svc.Spec.Type != corev1.ServiceTypeNodePort || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].NodePort != 30090 {
		t.Fatalf("prometheus Service %+v, want NodePort 30090", svc.Spec)
	}
	dep := find[*appsv1.Deployment](t, objs, "prometheus")
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("the prometheus Service does not select the Prometheus pods")
	}
}

func TestAutoscalerRBAC(t *testing.T) {
	objs := decodeAll(t)
	role := find[*rbacv1.ClusterRole](t, objs, "smartscale-autoscaler")
	got := map[string][]string{}
	for _, r := range role.Rules {
		if len(r.APIGroups) != 1 || len(r.NonResourceURLs) != 0 || len(r.ResourceNames) != 0 {
			t.Errorf("rule %+v: want one API group per rule", r)
			continue
		}
		for _, res := range r.Resources {
			key := res
			if r.APIGroups[0] != "" {
				key = r.APIGroups[0] + "/" + res
			}
			got[key] = append(got[key], r.Verbs...)
		}
	}
	want := map[string][]string{
		"nodes":           {"get", "list", "patch", "delete"},
		"pods":            {"list"},
		"pods/eviction":   {"create"},
		"apps/daemonsets": {"get"}, // kubectl's drain library checks each DaemonSet pod's owner
	}
	if len(got) != len(want) {
		t.Errorf("resources %v, want %v", got, want)
	}
	for res, verbs := range want {
		g := slices.Clone(got[res])
		slices.Sort(g)
		w := slices.Clone(verbs)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s verbs %v, want %v", res, got[res], verbs)
		}
	}
	bind := find[*rbacv1.ClusterRoleBinding](t, objs, "smartscale-autoscaler")
	if bind.RoleRef.Name != role.Name || len(bind.Subjects) != 1 || bind.Subjects[0].Name != "smartscale-autoscaler" {
		t.Errorf("binding %+v", bind)
	}
	sec := find[*corev1.Secret](t, objs, "smartscale-autoscaler-token")
	if sec.Type != corev1.SecretTypeServiceAccountToken || sec.Annotations[corev1.ServiceAccountNameKey] != "smartscale-autoscaler" {
		t.Errorf("token secret %+v", sec)
	}
}

// Every container image is pinned to a version.
func TestImagesArePinned(t *testing.T) {
	for _, o := range decodeAll(t) {
		var spec *corev1.PodSpec
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			spec = &v.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = &v.Spec.Template.Spec
		case *batchv1.Job:
			spec = &v.Spec.Template.Spec
		case *corev1.Pod:
			spec = &v.Spec
		default:
			continue
		}
		for _, c := range spec.Containers {
			i := strings.LastIndex(c.Image, ":")
			if i < 0 || strings.Contains(c.Image[i:], "/") || strings.HasSuffix(c.Image, ":latest") {
				t.Errorf("%s: image %q is not pinned", o.file, c.Image)
			}
		}
	}
}

// The ConfigMap Prometheus reads and the standalone files promtool checks must agree.
func TestPrometheusConfigMapMatchesStandaloneFiles(t *testing.T) {
	cm := find[*corev1.ConfigMap](t, decodeAll(t), "prometheus-config")
	for key, file := range map[string]string{
		"prometheus.yml":  "monitoring/prometheus-config.yml",
		"alert-rules.yml": "monitoring/alert-rules.yml",
	} {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[key] != string(want) {
			t.Errorf("ConfigMap key %s differs from %s: copy the file into k3s/manifests/monitoring/prometheus.yaml", key, file)
		}
	}
	if !strings.Contains(cm.Data["prometheus.yml"], "/etc/prometheus/alert-rules.yml") {
		t.Errorf("prometheus.yml does not load the alert rules from where the ConfigMap mounts them")
	}
}

// The scrape targets named in the Prometheus config exist as Services in the manifests.
func TestScrapeTargetsExist(t *testing.T) {
	objs := decodeAll(t)
	cfg, err := os.ReadFile("monitoring/prometheus-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []struct{ name, ns string }{
		{"node-exporter", "monitoring"}, {"kube-state-metrics", "monitoring"}, {"demo-app-metrics", "demo"},
	} {
		s := find[*corev1.Service](t, objs, svc.name)
		if s.Namespace != svc.ns {
			t.Errorf("Service %s in %q, want %q", svc.name, s.Namespace, svc.ns)
		}
		host := svc.name + "." + svc.ns + ".svc.cluster.local"
		if !strings.Contains(string(cfg), host) {
			t.Errorf("prometheus-config.yml does not scrape %s", host)
		}
	}
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // collapsed rows
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

func TestDashboards(t *testing.T) {
	files, err := filepath.Glob("dashboards/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("want at least 2 dashboards, found %v (%v)", files, err)
	}
	var exprs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		var d dashboard
		if err := dec.Decode(&d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.Title == "" || d.UID == "" {
			t.Errorf("%s: dashboard without title or uid", f)
		}
		n := 0
		for _, p := range flatten(d.Panels) {
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", f, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q has an empty query", f, p.Title)
				}
				exprs = append(exprs, tg.Expr)
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no queries", f)
		}
	}
	// The utilisation panels show what the autoscaler decides on: the engine's queries.
	q := engine.DefaultQueries()
	for name, want := range map[string]string{"cpu": q.CPU, "memory": q.Memory, "pending": q.Pending, "nodes": q.Nodes,
		"hpa_desired": q.HPADesired, "request_rate": q.RequestRate, "served_rate": q.ServedRate} {
		if !slices.Contains(exprs, want) {
			t.Errorf("no dashboard panel uses the engine's %s query %q", name, want)
		}
	}
	for _, e := range exprs {
		if strings.Contains(e, `mode!="idle"`) {
			t.Errorf("dashboard query %q uses the brief's under-reading CPU form", e)
		}
	}
}

// The scale-up alert rules Prometheus evaluates are the engine's (responsive preset): the
// simulator models these very expressions and for durations.
func TestScaleUpAlertRulesAreTheEngines(t *testing.T) {
	var doc struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval"`
			Rules    []struct {
				Alert  string            `json:"alert"`
				Expr   string            `json:"expr"`
				For    string            `json:"for"`
				Labels map[string]string `json:"labels"`
			} `json:"rules"`
		} `json:"groups"`
	}
	b, err := os.ReadFile("monitoring/alert-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := engine.ResponsivePolicy().AlertRules()
	for _, g := range doc.Groups {
		if g.Name != "smartscale-scale-up" {
			continue
		}
		if g.Interval != "5s" {
			t.Errorf("rule interval %q, the simulator evaluates every 5s", g.Interval)
		}
		if len(g.Rules) != len(want) {
			t.Fatalf("%d rules, the engine has %d", len(g.Rules), len(want))
		}
		for i, r := range g.Rules {
			d, err := time.ParseDuration(r.For)
			if err != nil || r.Alert != want[i].Name || strings.TrimSpace(r.Expr) != want[i].Expr || d != want[i].For || r.Labels["severity"] != "scale-up" {
				t.Errorf("rule %d: %s %q for %s\nengine: %s %q for %v", i, r.Alert, r.Expr, r.For, want[i].Name, want[i].Expr, want[i].For)
			}
		}
		return
	}
	t.Fatal("no smartscale-scale-up group in monitoring/alert-rules.yml")
}

// The ConfigMap Alertmanager reads and the standalone files amtool checks must agree.
func TestAlertmanagerConfigMapMatchesStandaloneFiles(t *testing.T) {
	cm := find[*corev1.ConfigMap](t, decodeAll(t), "alertmanager-config")
	for key, file := range map[string]string{"alertmanager.yml": "monitoring/alertmanager.yml", "smartscale.tmpl": "monitoring/smartscale.tmpl"} {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[key] != string(want) {
			t.Errorf("ConfigMap key %s differs from %s", key, file)
		}
	}
}
