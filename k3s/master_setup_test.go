package k3s

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// master-setup.sh runs here against stubs of curl (IMDS, the K3s installer), k3s (its
// kubectl), systemctl, aws and sleep; the stubs record what they were asked.

const stubK3s = `#!/bin/bash
echo "k3s $*" >>"$STUB_DIR/calls"
if [ "$1" = --version ]; then
  [ -f "$STUB_DIR/k3s.installed" ] || exit 1
  echo "k3s version $(cat "$STUB_DIR/k3s.installed") (stub)"; exit 0
fi
[ -f "$STUB_DIR/k3s.installed" ] || { echo "k3s not installed" >&2; exit 1; }
args="$*"
case "$args" in
  *"get node"*Ready*) echo True ;;
  *"taint nodes"*) ;;
  *"-n monitoring get deployment prometheus"*) ls "$SMARTSCALE_AUTODEPLOY_DIR"/smartscale-monitoring-prometheus.yaml >/dev/null ;;
  *"rollout status"*) ;;
  *"get secret smartscale-autoscaler-token"*"data.token"*) printf '%s' "$(printf 'sa-token-123' | base64)" ;;
  *"get secret smartscale-autoscaler-token"*"data.ca"*) printf '%s' "$(printf 'CA PEM' | base64)" ;;
  *) echo "unexpected: k3s $args" >&2; exit 1 ;;
esac
`

const stubMasterCurl = `#!/bin/bash
echo "curl $*" >>"$STUB_DIR/calls"
out=""; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift 2 ;;
    -H|-X|--max-time|--retry) shift 2 ;;
    http*) url=$1; shift ;;
    *) shift ;;
  esac
done
case "$url" in
  */api/token) echo imds-session ;;
  */meta-data/instance-id) echo i-0master ;;
  */meta-data/placement/region) echo us-east-1 ;;
  */meta-data/local-ipv4) echo 10.40.160.10 ;;
  */install.sh)
    cat >"$out" <<'SH'
env | grep -E '^INSTALL_K3S_' | sort >"$STUB_DIR/installer.env"
echo "$INSTALL_K3S_VERSION" >"$STUB_DIR/k3s.installed"
echo run >>"$STUB_DIR/installs"
SH
    ;;
  *) echo "unexpected url $url" >&2; exit 22 ;;
esac
`

const stubMasterAws = `#!/bin/bash
echo "aws $*" >>"$STUB_DIR/calls"
case "$1 $2" in
  "secretsmanager put-secret-value")
    id=""; file=""; tok=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --secret-id) id=$2; shift 2 ;;
        --secret-string) file=${2#file://}; shift 2 ;;
        --client-request-token) tok=$2; shift 2 ;;
        *) shift ;;
      esac
    done
    cp "$file" "$STUB_DIR/secret-$id"
    echo "$tok" >>"$STUB_DIR/requests-$id" ;;
  "logs create-log-stream"|"logs put-log-events") ;;
  *) exit 1 ;;
esac
`

func runMaster(t *testing.T, dir string, env ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not available")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not available")
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"curl": stubMasterCurl, "aws": stubMasterAws, "k3s": stubK3s, "sleep": "#!/bin/sh\nexit 0\n",
		"systemctl": "#!/bin/bash\n[ \"$1\" = is-active ] && [ -f \"$STUB_DIR/k3s.installed\" ]\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	abs, err := filepath.Abs("manifests")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "master-setup.sh")
	cmd.Env = []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"HOME=" + dir,
		"STUB_DIR=" + dir,
		"SMARTSCALE_CLUSTER_ID=demo",
		"SMARTSCALE_TOKEN_SECRET_ID=token",
		"SMARTSCALE_KUBECONFIG_SECRET_ID=kubeconfig",
		"SMARTSCALE_MASTER_LOG=" + filepath.Join(dir, "master.log"),
		"SMARTSCALE_K3S_ETC=" + filepath.Join(dir, "etc"),
		"SMARTSCALE_AUTODEPLOY_DIR=" + filepath.Join(dir, "autodeploy"),
		"SMARTSCALE_K3S_BIN=" + filepath.Join(bin, "k3s"),
		"MANIFEST_DIR=" + abs,
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMasterSetup(t *testing.T) {
	dir := t.TempDir()
	out, err := runMaster(t, dir)
	if err != nil {
		t.Fatalf("master setup failed: %v\n%s", err, out)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return string(b)
	}
	env := read("installer.env")
	for _, want := range []string{"INSTALL_K3S_VERSION=v1.33.1+k3s1", "INSTALL_K3S_SKIP_SELINUX_RPM=true", "INSTALL_K3S_EXEC=server"} {
		if !strings.Contains(env, want) {
			t.Errorf("installer environment lacks %s:\n%s", want, env)
		}
	}
	cfg := read("etc/config.yaml")
	for _, want := range []string{
		"agent-token-file: " + filepath.Join(dir, "etc", "agent-token"),
		"node-role.kubernetes.io/control-plane:NoSchedule",
		"- 10.40.160.10", "node-ip: 10.40.160.10",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("k3s config lacks %q:\n%s", want, cfg)
		}
	}
	token := read("etc/agent-token")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Errorf("agent token %q is not 32 random bytes in hex", token)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "etc", "agent-token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("agent token mode %v", fi.Mode().Perm())
	}
	if read("secret-token") != token {
		t.Errorf("the secret did not receive the agent token")
	}
	sum := sha256.Sum256([]byte(token))
	if strings.TrimSpace(read("requests-token")) != hex.EncodeToString(sum[:]) {
		t.Errorf("client request token is not the content hash: %s", read("requests-token"))
	}
	if strings.Contains(read("master.log"), token) || strings.Contains(out, token) {
		t.Errorf("the agent token leaked into the log")
	}
	calls := read("calls")
	if !strings.Contains(calls, "taint nodes") || !strings.Contains(calls, "node-role.kubernetes.io/control-plane=:NoSchedule --overwrite") {
		t.Errorf("the master was not tainted:\n%s", calls)
	}
	for _, f := range []string{"smartscale-autoscaler-rbac.yaml", "smartscale-monitoring-prometheus.yaml", "smartscale-monitoring-node-exporter.yaml", "smartscale-monitoring-kube-state-metrics.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, "autodeploy", f)); err != nil {
			t.Errorf("manifest %s not in the auto-deploy directory", f)
		}
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `json:"server"`
				CA     string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Token string `json:"token"`
			} `json:"user"`
		} `json:"users"`
		Current string `json:"current-context"`
	}
	if err := json.Unmarshal([]byte(read("secret-kubeconfig")), &kc); err != nil {
		t.Fatal(err)
	}
	ca, _ := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CA)
	if kc.Clusters[0].Cluster.Server != "https://10.40.160.10:6443" || string(ca) != "CA PEM" ||
		kc.Users[0].User.Token != "sa-token-123" || kc.Current != "smartscale" {
		t.Errorf("kubeconfig %+v", kc)
	}

	// A second run keeps the token, does not reinstall, and repeats the same idempotent put.
	out2, err := runMaster(t, dir)
	if err != nil {
		t.Fatalf("second run failed: %v\n%s", err, out2)
	}
	if read("etc/agent-token") != token {
		t.Errorf("the second run changed the agent token")
	}
	if n := strings.Count(read("installs"), "run"); n != 1 {
		t.Errorf("K3s installed %d times", n)
	}
	reqs := strings.Fields(read("requests-token"))
	if len(reqs) != 2 || reqs[0] != reqs[1] {
		t.Errorf("client request tokens %v, want the same twice", reqs)
	}
}

// TestMasterSetupAlertmanager: Alertmanager is installed, with the alert topic and its region
// filled in, only when the cluster has an alert topic.
func TestMasterSetupAlertmanager(t *testing.T) {
	const arn = "arn:aws:sns:eu-west-1:123456789012:smartscale-demo-alerts"
	am := filepath.Join("autodeploy", "smartscale-monitoring-alertmanager.yaml")
	dir := t.TempDir()
	if out, err := runMaster(t, dir, "SMARTSCALE_ALERT_TOPIC_ARN="+arn); err != nil {
		t.Fatalf("master setup failed: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, am))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, "topic_arn: "+arn) || !strings.Contains(s, "region: eu-west-1") || strings.Contains(s, "SMARTSCALE_") {
		t.Errorf("alertmanager manifest not filled in:\n%s", s)
	}
	if fi, _ := os.Stat(filepath.Join(dir, am)); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	dir = t.TempDir()
	out, err := runMaster(t, dir)
	if err != nil {
		t.Fatalf("master setup failed: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, am)); err == nil {
		t.Error("Alertmanager installed without an alert topic")
	}
}
