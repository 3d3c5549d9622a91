// Package realtest starts the real components the runtime's integration tests run against:
// a Prometheus 2.42 server over backfilled OpenMetrics data and a dynalite DynamoDB server.
// Each binds to 127.0.0.1 on a free port and is stopped by t.Cleanup. A missing tool skips
// the test locally and fails it when the CI environment variable is set.
package realtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Missing reports a tool the test cannot run without: a failure in CI, a skip elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s (run `make tools`)", msg)
	}
	t.Skipf("%s (run `make tools`; in CI this is a failure)", msg)
}

// Tool returns the path of an executable on PATH or under the repo's .tools/bin.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if root, err := RepoRoot(); err == nil {
		p := filepath.Join(root, ".tools", "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	Missing(t, "%s is not installed", name)
	return ""
}

// RepoRoot is the directory holding go.mod, found from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a command started by Start.
type Process struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
	once sync.Once
	peak int64 // peak resident set size in bytes, read just before the stop
}

// Start runs cmd in the background and stops it (SIGINT, then SIGKILL) at cleanup, or
// earlier with Stop. Its output goes to a buffer printed when the test fails.
func Start(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{cmd: cmd, out: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() && p.out.Len() > 0 {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), tail(p.out.String(), 4000))
		}
	})
	return p
}

// Stop ends the process group (SIGINT, SIGKILL after 5 s) and waits for it. It is safe to
// call more than once.
func (p *Process) Stop() { p.end(syscall.SIGINT) }

// Kill ends the process group at once (SIGKILL) and waits for it, for throwaway servers
// whose graceful shutdown only costs time. Safe to call more than once, and with Stop.
func (p *Process) Kill() { p.end(syscall.SIGKILL) }

func (p *Process) end(sig syscall.Signal) {
	p.once.Do(func() {
		p.peak = peakRSS(p.cmd.Process.Pid)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGCONT) // a frozen process cannot act on sig
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
}

// Signal sends sig to the process group (e.g. SIGSTOP and SIGCONT to freeze a server).
func (p *Process) Signal(sig syscall.Signal) error { return syscall.Kill(-p.cmd.Process.Pid, sig) }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is what the process has printed so far (valid once it has exited).
func (p *Process) Output() string { return p.out.String() }

// PeakRSS is the process's peak resident set size in bytes (Linux VmHWM): now while it
// runs, or as read when it was stopped. 0 when unknown.
func (p *Process) PeakRSS() int64 {
	if p.Exited() {
		return p.peak
	}
	return peakRSS(p.cmd.Process.Pid)
}

// peakRSS reads VmHWM from /proc/PID/status.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// WaitHTTP polls url until it answers with a status below 500, or fails the test.
func WaitHTTP(t testing.TB, url string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready after %v (last error: %v)", url, within, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Prometheus backfills the OpenMetrics text om (timestamps in seconds, ending with
// "# EOF") with promtool and serves it from a Prometheus that scrapes nothing. It returns
// the server's base URL.
func Prometheus(t testing.TB, om string) string {
	t.Helper()
	prom := Tool(t, "prometheus")
	promtool := Tool(t, "promtool")
	dir := t.TempDir()
	data := filepath.Join(dir, "data.om")
	if err := os.WriteFile(data, []byte(om), 0o644); err != nil {
		t.Fatal(err)
	}
	tsdb := filepath.Join(dir, "tsdb")
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", data, tsdb).CombinedOutput(); err != nil {
		t.Fatalf("promtool backfill: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 15s}\nscrape_configs: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	Start(t, exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+tsdb,
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=100y", "--log.level=warn"))
	url := "http://" + addr
	WaitHTTP(t, url+"/-/ready", 20*time.Second)
	return url
}

// Dynalite starts a dynalite server (installed by scripts/tools.sh under .tools/) and
// returns its endpoint URL.
func Dynalite(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(root, ".tools", "node_modules", "dynalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		Missing(t, "dynalite is not installed at %s", cli)
	}
	node := Tool(t, "node")
	port := FreePort(t)
	Start(t, exec.Command(node, cli, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"))
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	WaitHTTP(t, url, 20*time.Second)
	return url
}
