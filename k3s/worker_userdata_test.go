package k3s

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The worker user data runs here against stubs of curl (IMDS, the API's /cacerts, the K3s
// installer), aws, systemctl and sleep, which record what the script asked of them.

const stubCurl = `#!/bin/bash
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
  */meta-data/instance-id) echo i-0123456789abcdef0 ;;
  */meta-data/placement/region) echo us-east-1 ;;
  */meta-data/placement/availability-zone) echo us-east-1b ;;
  */cacerts) [ -n "${API_DOWN:-}" ] && exit 7; echo cert ;;
  */install.sh)
    cat >"$out" <<'SH'
env | grep -E '^(K3S_|INSTALL_K3S_)' | sort >"$STUB_DIR/installer.env"
cp "$K3S_TOKEN_FILE" "$STUB_DIR/token.seen"
touch "$STUB_DIR/agent.active"
SH
    ;;
  *) echo "unexpected url $url" >&2; exit 22 ;;
esac
`

const stubAws = `#!/bin/bash
echo "aws $*" >>"$STUB_DIR/calls"
case "$1 $2" in
  "ec2 describe-instances") printf '%s\n' "$MASTER_IPS" ;;
  "secretsmanager get-secret-value") [ -n "$AGENT_TOKEN" ] || exit 254; printf '%s\n' "$AGENT_TOKEN" ;;
  "logs create-log-stream") ;;
  "logs put-log-events")
    for a in "$@"; do case "$a" in file://*) cp "${a#file://}" "$STUB_DIR/shipped.json" ;; esac; done ;;
  *) exit 1 ;;
esac
`

const stubSystemctl = `#!/bin/bash
echo "systemctl $*" >>"$STUB_DIR/calls"
[ "$1" = is-active ] && [ -f "$STUB_DIR/agent.active" ]
`

type workerRun struct {
	dir    string
	out    string
	err    error
	calls  string
	logTxt string
}

func runWorker(t *testing.T, env map[string]string, before func(dir string)) workerRun {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not available")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"curl": stubCurl, "aws": stubAws, "systemctl": stubSystemctl, "sleep": "#!/bin/sh\nexit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if before != nil {
		before(dir)
	}
	cmd := exec.Command("bash", "worker-userdata.sh")
	cmd.Env = []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"HOME=" + dir,
		"STUB_DIR=" + dir,
		"SMARTSCALE_CLUSTER_ID=demo",
		"SMARTSCALE_TOKEN_SECRET_ID=arn:aws:secretsmanager:us-east-1:123456789012:secret:token",
		"SMARTSCALE_WORKER_LOG=" + filepath.Join(dir, "worker.log"),
		"SMARTSCALE_TOKEN_FILE=" + filepath.Join(dir, "rancher", "agent-token"),
		"SMARTSCALE_WAIT_TRIES=3",
		"MASTER_IPS=10.40.160.10",
		"AGENT_TOKEN=K10secret-agent-token",
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	logTxt, _ := os.ReadFile(filepath.Join(dir, "worker.log"))
	return workerRun{dir: dir, out: string(out), err: err, calls: string(calls), logTxt: string(logTxt)}
}

func TestWorkerUserDataJoins(t *testing.T) {
	r := runWorker(t, nil, nil)
	if r.err != nil {
		t.Fatalf("worker user data failed: %v\n%s", r.err, r.out)
	}
	env, err := os.ReadFile(filepath.Join(r.dir, "installer.env"))
	if err != nil {
		t.Fatalf("the K3s installer did not run:\n%s", r.out)
	}
	for _, want := range []string{
		"K3S_URL=https://10.40.160.10:6443",
		"K3S_TOKEN_FILE=" + filepath.Join(r.dir, "rancher", "agent-token"),
		"INSTALL_K3S_VERSION=v1.33.1+k3s1",
		"smartscale.io/instance-id=i-0123456789abcdef0",
		"--kubelet-arg=provider-id=aws:///us-east-1b/i-0123456789abcdef0",
	} {
		if !strings.Contains(string(env), want) {
			t.Errorf("installer environment lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(string(env), "K3S_TOKEN=") {
		t.Errorf("the token is passed in the environment, not as a file:\n%s", env)
	}
	if tok, _ := os.ReadFile(filepath.Join(r.dir, "token.seen")); strings.TrimSpace(string(tok)) != "K10secret-agent-token" {
		t.Errorf("token file held %q", tok)
	}
	if fi, err := os.Stat(filepath.Join(r.dir, "rancher", "agent-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if strings.Contains(r.logTxt, "K10secret") || strings.Contains(r.out, "K10secret") {
		t.Errorf("the token leaked into the log")
	}
	for _, want := range []string{
		"X-aws-ec2-metadata-token: imds-session", // IMDSv2
		"Name=tag:Role,Values=k3s-master",
		"Name=tag:smartscale.io/cluster,Values=demo",
		"Name=instance-state-name,Values=running",
		"--secret-id arn:aws:secretsmanager:us-east-1:123456789012:secret:token",
		"logs put-log-events",
	} {
		if !strings.Contains(r.calls, want) {
			t.Errorf("no call with %q:\n%s", want, r.calls)
		}
	}
	if !strings.Contains(r.logTxt, "joined: k3s-agent active on i-0123456789abcdef0") {
		t.Errorf("log lacks the join:\n%s", r.logTxt)
	}
}

func TestWorkerUserDataIsIdempotent(t *testing.T) {
	r := runWorker(t, nil, func(dir string) {
		_ = os.WriteFile(filepath.Join(dir, "agent.active"), nil, 0o644)
	})
	if r.err != nil {
		t.Fatalf("second run failed: %v\n%s", r.err, r.out)
	}
	if strings.Contains(r.calls, "install.sh") || strings.Contains(r.calls, "get-secret-value") {
		t.Errorf("an active agent was set up again:\n%s", r.calls)
	}
}

func TestWorkerUserDataFailsLoudly(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"no master":        {map[string]string{"MASTER_IPS": "None"}, "could not resolve exactly one running k3s-master"},
		"two masters":      {map[string]string{"MASTER_IPS": "10.40.160.10\t10.40.176.9"}, "could not resolve exactly one running k3s-master"},
		"no token":         {map[string]string{"AGENT_TOKEN": ""}, "could not read the agent token"},
		"API unreachable":  {map[string]string{"API_DOWN": "1"}, "not reachable"},
		"missing settings": {map[string]string{"SMARTSCALE_CLUSTER_ID": ""}, "SMARTSCALE_CLUSTER_ID is not set"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r := runWorker(t, c.env, nil)
			if r.err == nil {
				t.Fatalf("succeeded:\n%s", r.out)
			}
			if !strings.Contains(r.out, c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, r.out)
			}
			if _, err := os.Stat(filepath.Join(r.dir, "installer.env")); err == nil {
				t.Errorf("the installer ran")
			}
			if name == "missing settings" {
				return // fails before it knows where to log
			}
			if !strings.Contains(r.out, "FAILED (exit 1)") {
				t.Errorf("no FAILED line:\n%s", r.out)
			}
			if _, err := exec.LookPath("python3"); err != nil {
				return // the script ships logs only where python3 builds the events
			}
			data, err := os.ReadFile(filepath.Join(r.dir, "shipped.json"))
			if err != nil {
				t.Fatalf("the log was not shipped to CloudWatch:\n%s", r.calls)
			}
			var events []struct {
				Timestamp int64  `json:"timestamp"`
				Message   string `json:"message"`
			}
			if err := json.Unmarshal(data, &events); err != nil || len(events) == 0 || events[0].Timestamp == 0 {
				t.Errorf("shipped events %s (%v)", data, err)
			}
		})
	}
}
