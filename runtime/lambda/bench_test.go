package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/smartscale/smartscale/runtime/config"
)

func benchEnv(b *testing.B) map[string]string {
	kc := filepath.Join(b.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: k3s, cluster: {server: "https://10.0.1.10:6443", insecure-skip-tls-verify: true}}]
users: [{name: smartscale, user: {token: test}}]
contexts: [{name: k3s, context: {cluster: k3s, user: smartscale}}]
current-context: k3s
`), 0o600); err != nil {
		b.Fatal(err)
	}
	return map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
		"SMARTSCALE_CLUSTER_ID": "demo", "SMARTSCALE_TABLE": "smartscale", "SMARTSCALE_LAUNCH_TEMPLATE": "lt-0abc",
		"SMARTSCALE_SUBNETS": "subnet-a=us-east-1a,subnet-b=us-east-1b", "SMARTSCALE_SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:s",
		"PROMETHEUS_URL": "http://10.0.1.10:30090", "SLACK_WEBHOOK_SECRET_ARN": "arn:slack", "KUBECONFIG": kc,
		"POLICY_JSON": `{"max_workers": 8}`,
	}
}

// BenchmarkColdStartInit is the handler's init in a fresh execution environment: read and
// validate the configuration, load the AWS configuration, build every client, and build
// the tick's step (Kubernetes client from a kubeconfig file). No network.
func BenchmarkColdStartInit(b *testing.B) {
	env := benchEnv(b)
	for k, v := range env {
		b.Setenv(k, v)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := config.FromEnv(os.Getenv)
		if err != nil {
			b.Fatal(err)
		}
		h, err := newHandler(ctx, cfg, io.Discard, io.Discard, slog.LevelInfo)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.BuildStep(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessStart execs the built bootstrap (-h): the Go runtime and package
// initialisation a Lambda cold start pays before the handler's own init.
func BenchmarkProcessStart(b *testing.B) {
	bin := buildBootstrap(b)
	for b.Loop() {
		if err := exec.Command(bin, "-h").Run(); err != nil {
			b.Fatal(err)
		}
	}
	if fi, err := os.Stat(bin); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB-unstripped")
	}
}
