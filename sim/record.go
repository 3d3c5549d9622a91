package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/smartscale/smartscale/internal/progress"
	"github.com/smartscale/smartscale/sim/replay"
)

// record is an online tool: wall time is used for relative times ("now-24h"), HTTP timeouts
// and the progress bar, never in the simulation.

const recordUsage = `Usage: go run ./sim record -prometheus URL -from T1 -to T2 [-step 15s] -out FILE

Fetches the raw series SmartScale's queries read (node_cpu_seconds_total,
node_memory_MemAvailable_bytes, node_memory_MemTotal_bytes, kube_pod_status_phase,
kube_node_info) through the Prometheus HTTP API: a query_range of each, chunk by chunk, into
a recording that ` + "`go run ./sim -replay FILE`" + ` replays (see docs/replay.md).

Times are RFC 3339 (2026-01-06T00:00:00Z), Unix seconds, "now" or "now-24h".
Use the scrape interval as -step, so every recorded sample is a scraped one.

Examples:
  go run ./sim record -prometheus http://10.0.1.5:30090 -from now-24h -to now -out tuesday.json
  go run ./sim record -prometheus http://127.0.0.1:9090 -from 2026-01-06T00:00:00Z \
      -to 2026-01-07T00:00:00Z -step 15s -format openmetrics -out tuesday.om

Flags:
`

type recordOptions struct {
	prometheus string
	from, to   string
	step       time.Duration
	chunk      time.Duration
	timeout    time.Duration
	out        string
	format     string
	quiet      bool
}

func parseRecordFlags(args []string, stderr io.Writer) (recordOptions, error) {
	var o recordOptions
	fs := flag.NewFlagSet("sim record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, recordUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.prometheus, "prometheus", "", "Prometheus base `URL` (e.g. http://10.0.1.5:30090)")
	fs.StringVar(&o.from, "from", "", "start `TIME` (RFC 3339, Unix seconds, now, now-24h)")
	fs.StringVar(&o.to, "to", "now", "end `TIME`")
	fs.DurationVar(&o.step, "step", 15*time.Second, "query_range `step`: the scrape interval")
	fs.DurationVar(&o.chunk, "chunk", 6*time.Hour, "longest range of one request")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "timeout of one request")
	fs.StringVar(&o.out, "out", "", "output `FILE` (required)")
	fs.StringVar(&o.format, "format", "json", "file `format`: json (query_range response, the default) or openmetrics")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if o.prometheus == "" {
		errs = append(errs, errors.New("-prometheus URL is required"))
	}
	if o.from == "" {
		errs = append(errs, errors.New("-from TIME is required"))
	}
	if o.out == "" {
		errs = append(errs, errors.New("-out FILE is required"))
	}
	if o.format != string(replay.FormatJSON) && o.format != string(replay.FormatOpenMetrics) {
		errs = append(errs, fmt.Errorf("-format must be json or openmetrics, got %q", o.format))
	}
	return o, errors.Join(errs...)
}

// parseTime reads RFC 3339, Unix seconds, "now" or "now-DURATION".
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(s, "now-"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: want now-DURATION, e.g. now-24h", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.UnixMilli(int64(f * 1000)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, Unix seconds, now or now-24h)", s)
}

func runRecord(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseRecordFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sim record: %v\n", err)
		return 2
	}
	if err := record(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "sim record:", err)
		return 1
	}
	return 0
}

func record(ctx context.Context, o recordOptions, stdout, stderr io.Writer) error {
	now := time.Now().UTC().Truncate(time.Second)
	from, err := parseTime(o.from, now)
	if err != nil {
		return fmt.Errorf("-from: %w", err)
	}
	to, err := parseTime(o.to, now)
	if err != nil {
		return fmt.Errorf("-to: %w", err)
	}
	client, err := api.NewClient(api.Config{Address: o.prometheus, Client: &http.Client{Timeout: o.timeout}})
	if err != nil {
		return fmt.Errorf("prometheus client for %q: %w", o.prometheus, err)
	}
	cfg := replay.FetchConfig{From: from, To: to, Step: o.step, Chunk: o.chunk}
	var bar *progress.Bar                                   // nil: silent
	if !o.quiet && cfg.Requests() > len(replay.Metrics()) { // ranges longer than one chunk
		bar = progress.New(stderr, fmt.Sprintf("recording %v (query_range requests)", to.Sub(from)), int64(cfg.Requests()))
		last := 0
		cfg.Progress = func(done, _ int) {
			bar.Add(int64(done - last))
			last = done
		}
	}
	rec, err := replay.Fetch(ctx, v1.NewAPI(client), cfg)
	bar.Finish()
	if err != nil {
		return err
	}
	if len(rec.Series) == 0 {
		return fmt.Errorf("no series between %s and %s: is %s the cluster's Prometheus?",
			from.Format(time.RFC3339), to.Format(time.RFC3339), o.prometheus)
	}
	var buf bytes.Buffer
	if o.format == string(replay.FormatOpenMetrics) {
		err = rec.WriteOpenMetrics(&buf)
	} else {
		err = rec.WriteJSON(&buf)
	}
	if err != nil {
		return err
	}
	if dir := filepath.Dir(o.out); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(o.out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing recording: %w", err)
	}
	if !o.quiet {
		first, last, _ := rec.Bounds()
		fmt.Fprintf(stdout, "recorded %d series, %d samples, %s .. %s into %s (%s)\n", len(rec.Series), rec.NumSamples(),
			first.Format(time.RFC3339), last.Format(time.RFC3339), o.out, o.format)
	}
	return nil
}
