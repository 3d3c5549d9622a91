package k3s

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
)

// The scale tests cannot run without a cluster; this checks what they would send to it:
// start_load's Job decodes strictly and its k6 options are a ramping-arrival-rate scenario.
const stubKubectl = `#!/bin/bash
n=$(ls "$STUB_DIR"/kubectl-* 2>/dev/null | wc -l)
echo "$*" >"$STUB_DIR/kubectl-$n.args"
case "$*" in
  *"create configmap"*)
    for a in "$@"; do
      case "$a" in --from-file=e2e.json=*) cp "${a#--from-file=e2e.json=}" "$STUB_DIR/e2e.json" ;; esac
    done
    echo "kind: ConfigMap" ;;
  *"apply -f -"*) cat >"$STUB_DIR/kubectl-$n.stdin" ;;
esac
`

func TestStartLoadJob(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not available")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kubectl"), []byte(stubKubectl), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", `set -euo pipefail; source ./e2e-lib.sh; start_load 650 7m 12`)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "STUB_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start_load: %v\n%s", err, out)
	}
	var opts struct {
		Scenarios map[string]struct {
			Executor string `json:"executor"`
			Stages   []struct {
				Duration string `json:"duration"`
				Target   int    `json:"target"`
			} `json:"stages"`
		} `json:"scenarios"`
		SmartScale struct {
			App struct {
				CPUMs float64 `json:"cpu_ms_per_request"`
			} `json:"app"`
		} `json:"smartscale"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "e2e.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &opts); err != nil {
		t.Fatalf("k6 options: %v\n%s", err, data)
	}
	sc, ok := opts.Scenarios["e2e"]
	if !ok || sc.Executor != "ramping-arrival-rate" || len(sc.Stages) != 2 || sc.Stages[1].Target != 650 ||
		sc.Stages[1].Duration != "7m" || opts.SmartScale.App.CPUMs != 12 {
		t.Errorf("k6 options %+v", opts)
	}
	stdins, _ := filepath.Glob(filepath.Join(dir, "kubectl-*.stdin"))
	var job *batchv1.Job
	for _, f := range stdins {
		objs, err := decodeFile(f)
		if err != nil {
			continue // the configmap stub output
		}
		for _, o := range objs {
			if j, ok := o.obj.(*batchv1.Job); ok {
				job = j
			}
		}
	}
	if job == nil {
		t.Fatalf("no Job applied (stdin files %v)", stdins)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if strings.Join(c.Args, " ") != "run --config /scripts/e2e.json /scripts/load-test.js" || c.Env[0].Value != "http://demo-app.demo.svc" {
		t.Errorf("k6 container %+v", c)
	}
	if job.Spec.Template.Spec.NodeSelector["node-role.kubernetes.io/control-plane"] != "true" {
		t.Errorf("k6 does not run on the master: %v", job.Spec.Template.Spec.NodeSelector)
	}
}
