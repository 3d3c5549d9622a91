package k3s

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/smartscale/smartscale/sim/tune"
)

// arg returns the value after flag in args.
func arg(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("no %s in %q", flag, args)
	}
	return args[i+1]
}

// mountOf returns the volume mounted at the start of path.
func mountOf(t *testing.T, spec corev1.PodSpec, c corev1.Container, path string) corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(path, m.MountPath+"/") {
			for _, v := range spec.Volumes {
				if v.Name == m.Name {
					return v
				}
			}
		}
	}
	t.Fatalf("%s is on no mounted volume", path)
	return corev1.Volume{}
}

// TestTuneJob: the sweep runs as an Indexed Job whose pod i runs shard i/n (n the
// completions), writes it to its own directory on the results claim, reads the space from
// the ConfigMap, and the merge Job lists exactly those n directories.
func TestTuneJob(t *testing.T) {
	objs := decodeAll(t)
	job := find[*batchv1.Job](t, objs, "tune")
	merge := find[*batchv1.Job](t, objs, "tune-merge")
	find[*corev1.PersistentVolumeClaim](t, objs, "tune-results")
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion {
		t.Fatal("job/tune is not an Indexed Job")
	}
	n := int(*job.Spec.Completions)
	spec := job.Spec.Template.Spec
	if spec.RestartPolicy != corev1.RestartPolicyNever || job.Spec.BackoffLimitPerIndex == nil {
		t.Errorf("restartPolicy %s, backoffLimitPerIndex %v: want Never and per-index retries", spec.RestartPolicy, job.Spec.BackoffLimitPerIndex)
	}
	c := spec.Containers[0]
	if c.Args[0] != "tune" {
		t.Fatalf("args %q do not run sim tune", c.Args)
	}
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "JOB_COMPLETION_INDEX" {
			env = &c.Env[i]
		}
	}
	if env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil ||
		env.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Fatalf("JOB_COMPLETION_INDEX is not the pod's completion index: %+v", env)
	}
	shard, out := arg(t, c.Args, "-shard"), arg(t, c.Args, "-out")
	if shard != fmt.Sprintf("$(JOB_COMPLETION_INDEX)/%d", n) || !strings.Contains(out, "$(JOB_COMPLETION_INDEX)") {
		t.Errorf("-shard %s -out %s: want $(JOB_COMPLETION_INDEX)/%d and a directory per shard", shard, out, n)
	}
	for i := range n + 1 {
		_, err := tune.ParseShard(strings.ReplaceAll(shard, "$(JOB_COMPLETION_INDEX)", fmt.Sprint(i)))
		if (err == nil) != (i < n) {
			t.Errorf("index %d: shard error %v", i, err)
		}
	}
	if v := mountOf(t, spec, c, out); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "tune-results" {
		t.Errorf("-out %s is not on the tune-results claim", out)
	}
	if v := mountOf(t, spec, c, arg(t, c.Args, "-space")); v.ConfigMap == nil || v.ConfigMap.Name != "tune-space" {
		t.Errorf("-space is not read from the tune-space ConfigMap")
	}
	if cpu := c.Resources.Requests[corev1.ResourceCPU]; fmt.Sprint(cpu.Value()) != arg(t, c.Args, "-parallel") {
		t.Errorf("-parallel %s, CPU request %s: one world per requested core", arg(t, c.Args, "-parallel"), cpu.String())
	}

	mc := merge.Spec.Template.Spec.Containers[0]
	var want []string
	for i := range n {
		want = append(want, strings.ReplaceAll(out, "$(JOB_COMPLETION_INDEX)", fmt.Sprint(i)))
	}
	if len(mc.Args) < 4 || !slices.Equal(mc.Args[:3], []string{"tune", "merge", "-out"}) || !slices.Equal(mc.Args[4:], want) {
		t.Errorf("merge args %q, want tune merge -out DIR %q", mc.Args, want)
	}
	if v := mountOf(t, merge.Spec.Template.Spec, mc, mc.Args[3]); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "tune-results" {
		t.Errorf("the merge writes %s off the results claim", mc.Args[3])
	}
}
