package realtest

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Alertmanager starts Debian's prometheus-alertmanager (0.25) with the configuration text
// cfg (and the files beside it, name -> text, e.g. templates) on 127.0.0.1, clustering off.
// env is added to its environment (e.g. AWS credentials for an SNS receiver). It returns the
// base URL.
func Alertmanager(t testing.TB, cfg string, files map[string]string, env ...string) string {
	t.Helper()
	am := Tool(t, "prometheus-alertmanager")
	dir, path := configDir(t, "alertmanager.yml", cfg, files)
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	cmd := exec.Command(am, "--config.file="+path, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Env = append(os.Environ(), env...)
	Start(t, cmd)
	url := "http://" + addr
	WaitHTTP(t, url+"/-/ready", 20*time.Second)
	return url
}

// PrometheusServer starts a Prometheus 2.42 with the configuration text cfg (and the files
// beside it, name -> text, e.g. rule files: cfg names them by their bare names) that scrapes
// and evaluates live, and returns its base URL.
func PrometheusServer(t testing.TB, cfg string, files map[string]string) string {
	t.Helper()
	prom := Tool(t, "prometheus")
	dir, path := configDir(t, "prometheus.yml", cfg, files)
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	cmd := exec.Command(prom, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir // rule_files resolve against the config's directory
	Start(t, cmd)
	url := "http://" + addr
	WaitHTTP(t, url+"/-/ready", 20*time.Second)
	return url
}

// configDir writes the configuration text cfg as name, and the files beside it, into a new
// temporary directory, and returns the directory and the configuration's path.
func configDir(t testing.TB, name, cfg string, files map[string]string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	files = maps.Clone(files)
	if files == nil {
		files = map[string]string{}
	}
	files[name] = cfg
	for n, text := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, name)
}
