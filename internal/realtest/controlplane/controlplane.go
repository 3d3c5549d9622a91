// Package controlplane starts a real Kubernetes control plane for tests, without containers:
// kube-apiserver, kube-controller-manager and kube-scheduler (built from k8s.io/kubernetes by
// scripts/tools.sh) over kine (the apiserver's storage in SQLite), with kwok playing the
// kubelet of every node but those registered with Node.NoKubelet. Admission, the eviction
// API with PodDisruptionBudgets, the disruption, ReplicaSet, DaemonSet, Job,
// service-account and node-lifecycle controllers and the scheduler are Kubernetes' own;
// only the nodes and their containers are simulated (kwok marks nodes Ready, keeps their
// heartbeats, turns bound pods Running, Job pods Succeeded and deleted pods gone).
//
// Every process binds to 127.0.0.1 on a free port, keeps its files in the test's temp dir
// and is stopped by t.Cleanup. A missing binary skips the test locally and fails it when CI
// is set (realtest.Missing).
package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/smartscale/smartscale/internal/realtest"
)

// Binaries the control plane runs; scripts/tools.sh puts them in .tools/bin.
var Binaries = []string{"kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// StagesFile is kwok's published stages (node initialise and heartbeat, pod ready, complete
// and delete) as scripts/tools.sh writes them beside the kwok binary.
const StagesFile = "kwok-stages.yaml"

// AnnotationIgnoresSIGTERM marks a pod that, like a process ignoring SIGTERM, stays until
// its termination grace period has run out after its deletion (then the kubelet kills it).
const AnnotationIgnoresSIGTERM = "smartscale.io/test-ignores-sigterm"

// ignoresSIGTERM is a kwok Stage of ours that deletes a pod carrying the annotation above
// at its deletionTimestamp (deletion time + grace period) instead of at once. Its weight
// makes kwok pick it over the published pod-delete stage (weight 0) for such pods.
//
//go:embed ignores-sigterm.yaml
var ignoresSIGTERM string

// controllers are the controller-manager's controllers the tests need (the others cost CPU
// at every start): the workload controllers, PDB status, ServiceAccounts and their tokens
// (pods are refused without the namespace's default ServiceAccount), node lifecycle (it
// lifts the not-ready taint admission puts on every new node), Jobs (whose pods kwok
// completes: finished pods on a node), and the garbage collectors that remove the pods of
// deleted nodes and owners.
const controllers = "deployment,replicaset,daemonset,job,disruption,serviceaccount,serviceaccount-token,nodelifecycle,podgc,garbagecollector,namespace"

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Config is an admin (system:masters) client configuration over TLS; the apiserver's
	// self-signed certificate is not verified.
	Config *rest.Config
	Client kubernetes.Interface
	// Kubeconfig is a kubeconfig file holding Config.
	Kubeconfig string
	// Server is the apiserver's URL.
	Server string

	t       testing.TB
	dir     string
	bins    map[string]string
	apiArgs []string
	procs   map[string]*realtest.Process
	peaks   map[string]int64 // peak RSS of processes already stopped and replaced
}

// Start runs the control plane and waits until it serves: /readyz answers, the
// controller-manager has created the default ServiceAccount, and the scheduler and kwok
// are up.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	began := time.Now()
	c := &ControlPlane{t: t, dir: t.TempDir(), bins: map[string]string{}, procs: map[string]*realtest.Process{}, peaks: map[string]int64{}}
	for _, b := range Binaries {
		c.bins[b] = realtest.Tool(t, b)
	}
	stages := filepath.Join(filepath.Dir(c.bins["kwok"]), StagesFile)
	published, err := os.ReadFile(stages)
	if err != nil {
		realtest.Missing(t, "kwok's stages are not at %s", stages)
	}
	stagesFile := c.write("kwok-stages.yaml", string(published)+"\n---\n"+ignoresSIGTERM)
	saKey, saPub := c.serviceAccountKeys()
	token := randomHex(t, 16)
	tokens := c.write("tokens.csv", token+",admin,admin,system:masters\n")

	kinePort := realtest.FreePort(t)
	c.procs["kine"] = realtest.Start(t, exec.Command(c.bins["kine"],
		"--listen-address", "127.0.0.1:"+strconv.Itoa(kinePort), "--metrics-bind-address", "0",
		"--endpoint", "sqlite://"+filepath.Join(c.dir, "state.db")+"?_journal=WAL&cache=shared"))
	waitTCP(t, "kine", "127.0.0.1:"+strconv.Itoa(kinePort), 30*time.Second)

	apiPort := realtest.FreePort(t)
	c.Server = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.apiArgs = []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(kinePort),
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort), "--advertise-address=127.0.0.1",
		"--cert-dir=" + filepath.Join(c.dir, "certs"), "--token-auth-file=" + tokens,
		"--authorization-mode=RBAC", "--allow-privileged=true",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file=" + saPub,
		"--service-account-signing-key-file=" + saKey, "--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false", "--profiling=false",
		// v1.37 refuses a loopback advertise address for the kubernetes Service endpoints.
		"--endpoint-reconciler-type=none",
	}
	c.Config = &rest.Config{Host: c.Server, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS: 200, Burst: 400, Timeout: 20 * time.Second}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		t.Fatal(err)
	}
	c.StartAPIServer()
	c.Kubeconfig = c.WriteKubeconfig("admin.kubeconfig", token)

	c.procs["kube-controller-manager"] = realtest.Start(t, exec.Command(c.bins["kube-controller-manager"],
		"--kubeconfig="+c.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(realtest.FreePort(t)),
		"--controllers="+controllers, "--service-account-private-key-file="+saKey,
		"--leader-elect=false",
		"--node-monitor-period=1s", "--profiling=false"))
	c.procs["kube-scheduler"] = realtest.Start(t, exec.Command(c.bins["kube-scheduler"],
		"--kubeconfig="+c.Kubeconfig, "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(realtest.FreePort(t)),
		"--leader-elect=false", "--profiling=false"))
	c.procs["kwok"] = realtest.Start(t, exec.Command(c.bins["kwok"],
		"--kubeconfig="+c.Kubeconfig, "--manage-nodes-with-label-selector=!"+LabelNoKubelet,
		"--server-address=127.0.0.1:"+strconv.Itoa(realtest.FreePort(t)), "--config="+stagesFile))

	c.Eventually("the default ServiceAccount (the controller-manager is up)", time.Minute, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	t.Logf("control plane %s ready in %v", c.Server, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		t.Logf("control plane peak RSS: %s", c.PeakRSS())
		// Killed, not stopped: their graceful shutdowns (the apiserver's takes over 5 s)
		// would only cost the test time. Clients first, storage last.
		for i := len(Binaries) - 1; i >= 0; i-- {
			c.procs[Binaries[i]].Kill()
		}
	})
	return c
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer: same port, same
// storage) and waits for /readyz.
func (c *ControlPlane) StartAPIServer() {
	c.t.Helper()
	if p := c.procs["kube-apiserver"]; p != nil && !p.Exited() {
		c.t.Fatal("kube-apiserver is already running")
	}
	c.procs["kube-apiserver"] = realtest.Start(c.t, exec.Command(c.bins["kube-apiserver"], c.apiArgs...))
	c.Eventually("kube-apiserver /readyz", time.Minute, func(ctx context.Context) (bool, error) {
		if c.procs["kube-apiserver"].Exited() {
			return false, fmt.Errorf("kube-apiserver exited:\n%s", tail(c.procs["kube-apiserver"].Output()))
		}
		body, err := c.Client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

// StopAPIServer kills kube-apiserver, as a crash or a lost master would (the other
// processes keep running and retry).
func (c *ControlPlane) StopAPIServer() {
	p := c.procs["kube-apiserver"]
	p.Kill()
	c.peaks["kube-apiserver"] = max(c.peaks["kube-apiserver"], p.PeakRSS())
}

// FreezeAPIServer stops kube-apiserver's process (SIGSTOP) until ThawAPIServer: it accepts
// connections and answers nothing, like an apiserver too slow to answer.
func (c *ControlPlane) FreezeAPIServer() {
	c.t.Helper()
	if err := c.procs["kube-apiserver"].Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatal(err)
	}
}

// ThawAPIServer resumes a frozen kube-apiserver (SIGCONT).
func (c *ControlPlane) ThawAPIServer() {
	c.t.Helper()
	if err := c.procs["kube-apiserver"].Signal(syscall.SIGCONT); err != nil {
		c.t.Fatal(err)
	}
}

// Process returns one of the running processes by binary name.
func (c *ControlPlane) Process(name string) *realtest.Process { return c.procs[name] }

// PeakRSS sums the processes' peak resident set sizes, with each one's share.
func (c *ControlPlane) PeakRSS() string {
	var total int64
	parts := []string{}
	for _, b := range Binaries {
		rss := max(c.peaks[b], c.procs[b].PeakRSS())
		total += rss
		parts = append(parts, fmt.Sprintf("%s %d MiB", b, rss>>20))
	}
	return fmt.Sprintf("%d MiB (%s)", total>>20, strings.Join(parts, ", "))
}

// WriteKubeconfig writes a kubeconfig for the apiserver with a bearer token into the
// test's dir and returns its path.
func (c *ControlPlane) WriteKubeconfig(name, token string) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := clientcmd.WriteToFile(Kubeconfig(c.Server, token), path); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// Kubeconfig is a kubeconfig for server with a bearer token (certificate not verified).
func Kubeconfig(server, token string) clientcmdapi.Config {
	return clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"test": {Server: server, InsecureSkipTLSVerify: true}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"test": {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{"test": {Cluster: "test", AuthInfo: "test"}},
		CurrentContext: "test",
	}
}

// Eventually polls cond every 50 ms until it reports true, fails the test when it returns
// an error or within passes.
func (c *ControlPlane) Eventually(what string, within time.Duration, cond func(ctx context.Context) (bool, error)) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := cond(cctx)
		ccancel()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("%s: not after %v", what, within)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *ControlPlane) write(name, content string) string {
	c.t.Helper()
	path := filepath.Join(c.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// serviceAccountKeys writes the key pair that signs and verifies ServiceAccount tokens.
func (c *ControlPlane) serviceAccountKeys() (key, pub string) {
	c.t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		c.t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		c.t.Fatal(err)
	}
	key = c.write("sa.key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})))
	pub = c.write("sa.pub", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	return key, pub
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func waitTCP(t testing.TB, what, addr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after %v: %v", what, addr, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// nodeReady reports whether the node is Ready and free of the taints that keep pods off a
// new or unreachable node.
func nodeReady(n *corev1.Node) bool {
	for _, taint := range n.Spec.Taints {
		if taint.Key == corev1.TaintNodeNotReady || taint.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
