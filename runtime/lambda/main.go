// Command bootstrap is SmartScale's AWS Lambda (provided.al2023) and its local operator
// modes. In Lambda it serves EventBridge scheduled events (one autoscaler tick) and SNS
// events (the Slack forwarder); locally, -explain shows what the policy would decide against
// a live Prometheus at any moment, and -once runs one tick (-dry-run: AWS reads, no writes).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/dynamo"
	"github.com/smartscale/smartscale/runtime/handler"
	"github.com/smartscale/smartscale/runtime/prom"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usageHead = `SmartScale autoscaler: AWS Lambda bootstrap and local operator modes.

In AWS Lambda (AWS_LAMBDA_RUNTIME_API set, no mode flag) it serves:
  EventBridge "Scheduled Event"  -> one autoscaler tick (flight record logged as JSON)
  SNS records                    -> Slack forwarder (webhook URL from Secrets Manager)

Local modes:
  bootstrap -explain [-prometheus URL] [-at TIME] [-workers N] [-state]
      observe + decide against a live Prometheus, print {"observation": ..., "decision": ...}
      as JSON; never touches AWS unless -state. Exit 0 whenever a decision was made,
      1 when nothing could be observed, 2 on bad flags or configuration.
  bootstrap -once [-dry-run]
      one whole tick from the environment's configuration; -dry-run reads AWS, Prometheus
      and Kubernetes but writes nothing. Prints the flight record.

Flags:
`

func usage(fs *flag.FlagSet, w io.Writer) func() {
	return func() {
		fmt.Fprint(w, usageHead)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fmt.Fprintf(w, "\nEnvironment variables (name, default, meaning):\n%s", config.Usage())
		fmt.Fprint(w, "\nSee docs/runtime.md (modes, IAM) and docs/flight-record.md (log format).\n")
	}
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	explain := fs.Bool("explain", false, "observe + decide against Prometheus and print the JSON explanation")
	once := fs.Bool("once", false, "run one tick from the environment's configuration and print its flight record")
	dryRun := fs.Bool("dry-run", false, "with -once: AWS reads only, no writes (also SMARTSCALE_DRY_RUN)")
	promURL := fs.String("prometheus", "", "with -explain: Prometheus base URL (default $PROMETHEUS_URL)")
	at := fs.String("at", "", "with -explain: evaluation time, RFC 3339 or Unix seconds (default now)")
	workers := fs.Int("workers", -1, "with -explain: worker count to assume (default count(kube_node_info) minus control plane)")
	withState := fs.Bool("state", false, "with -explain: read cooldowns from the DynamoDB state (SMARTSCALE_TABLE, SMARTSCALE_CLUSTER_ID, AWS credentials)")
	timeout := fs.Duration("timeout", 2*time.Minute, "with -explain or -once: bound on the whole run")
	fs.Usage = func() {} // printed below: -h to stdout, errors to stderr
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(fs, stdout)()
			return 0
		}
		fmt.Fprintf(stderr, "bootstrap: %v (see -h)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bootstrap: unexpected arguments %q (see -h)\n", fs.Args())
		return 2
	}
	switch {
	case *explain && *once:
		fmt.Fprintln(stderr, "bootstrap: -explain and -once exclude each other")
		return 2
	case *explain:
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return runExplain(ctx, stdout, stderr, getenv, *promURL, *at, *workers, *withState)
	case *once:
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		return runOnce(ctx, stdout, stderr, getenv, *dryRun)
	case getenv("AWS_LAMBDA_RUNTIME_API") != "":
		return runLambda(ctx, stdout, stderr, getenv)
	}
	usage(fs, stderr)()
	return 2
}

func runLambda(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string) int {
	log := slog.New(slog.NewJSONHandler(stdout, nil))
	cfg, err := config.FromEnv(getenv)
	if err == nil {
		var h *handler.Handler
		if h, err = newHandler(ctx, cfg, stdout, stdout, slog.LevelInfo); err == nil {
			lambda.StartWithOptions(h, lambda.WithContext(ctx))
			return 0
		}
	}
	// Logged once at init, and every invocation fails with the same text, so the problem
	// shows both in the logs and in the invocation's error.
	log.Error("invalid configuration", "cluster", cfg.ClusterID, "error", err.Error())
	failed := fmt.Errorf("invalid configuration: %w", err)
	lambda.StartWithOptions(func(context.Context, json.RawMessage) (any, error) { return nil, failed }, lambda.WithContext(ctx))
	return 1
}

func runOnce(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string, dryRun bool) int {
	env := func(k string) string {
		if k == "SMARTSCALE_HANDLES" {
			return string(config.RoleTick)
		}
		if k == "SMARTSCALE_DRY_RUN" && dryRun {
			return "true"
		}
		return getenv(k)
	}
	cfg, err := config.FromEnv(env)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: invalid configuration:\n%v\n", err)
		return 2
	}
	h, err := newHandler(ctx, cfg, stderr, io.Discard, slog.LevelInfo)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return 1
	}
	rec, err := h.Tick(ctx)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rec)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: tick: %v\n", err)
		return 1
	}
	return 0
}

func runExplain(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string, promURL, atText string, workers int, withState bool) int {
	env := func(k string) string {
		if k == "PROMETHEUS_URL" && promURL != "" {
			return promURL
		}
		return getenv(k)
	}
	cfg, perr := config.Parse(env)
	cfg.Roles = []config.Role{config.RoleExplain}
	if err := errors.Join(perr, cfg.Validate()); err != nil {
		fmt.Fprintf(stderr, "bootstrap: invalid configuration:\n%v\n", err)
		return 2
	}
	at := time.Now()
	if atText != "" {
		t, err := parseTime(atText)
		if err != nil {
			fmt.Fprintf(stderr, "bootstrap: -at: %v\n", err)
			return 2
		}
		at = t
	}
	pc, err := prom.New(cfg.PrometheusURL, cfg.PrometheusTimeout, nil)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return 2
	}
	opt := handler.ExplainOptions{Workers: workers}
	if withState {
		st, err := loadState(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "bootstrap: -state: %v\n", err)
			return 1
		}
		opt.State = &st
	}
	ex, err := handler.Explain(ctx, cfg.Policy, pc, at, opt)
	if err != nil {
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ex); err != nil {
		fmt.Fprintf(stderr, "bootstrap: %v\n", err)
		return 1
	}
	return 0
}

// parseTime reads RFC 3339 or Unix seconds (fractions allowed).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 (2026-03-01T12:00:00Z) nor Unix seconds", s)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func loadState(ctx context.Context, cfg config.Config) (engine.State, error) {
	if cfg.Table == "" || cfg.ClusterID == "" {
		return engine.State{}, errors.New("needs SMARTSCALE_TABLE and SMARTSCALE_CLUSTER_ID")
	}
	awsCfg, err := loadAWS(ctx)
	if err != nil {
		return engine.State{}, err
	}
	return dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.Table, cfg.ClusterID).Load(ctx)
}
