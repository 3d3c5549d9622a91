package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// RangeAPI is the part of the Prometheus HTTP API a recording is fetched through.
type RangeAPI interface {
	QueryRange(ctx context.Context, query string, r v1.Range, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

var _ RangeAPI = (v1.API)(nil)

// FetchConfig is one recording to fetch.
type FetchConfig struct {
	From, To time.Time
	Step     time.Duration // the query_range step: use the scrape interval (15s)
	// Chunk bounds the range of one request. Default 6h; never more than 10,000 steps
	// (Prometheus refuses more than 11,000 points per series).
	Chunk time.Duration
	// Selectors to fetch; default: every metric in Metrics().
	Selectors []string
	// Progress, when set, is called after each request with the requests done and in all.
	Progress func(done, total int)
}

// Requests returns how many query_range requests Fetch makes.
func (c FetchConfig) Requests() int {
	return len(c.selectors()) * len(c.chunks())
}

func (c FetchConfig) selectors() []string {
	if len(c.Selectors) > 0 {
		return c.Selectors
	}
	return Metrics()
}

// chunks splits [From, To] into ranges of at most Chunk, each starting one Step after the
// previous one ended, so no evaluation time is asked twice.
func (c FetchConfig) chunks() [][2]time.Time {
	chunk := c.Chunk
	if chunk <= 0 {
		chunk = 6 * time.Hour
	}
	chunk = min(max(chunk, c.Step), maxPoints*c.Step)
	var out [][2]time.Time
	for start := c.From; !start.After(c.To); {
		end := start.Add(chunk - c.Step)
		if end.After(c.To) {
			end = c.To
		}
		out = append(out, [2]time.Time{start, end})
		start = end.Add(c.Step)
	}
	return out
}

func (c FetchConfig) validate() error {
	var errs []error
	if c.Step <= 0 {
		errs = append(errs, fmt.Errorf("step must be positive, got %v", c.Step))
	}
	if c.From.IsZero() || c.To.IsZero() {
		errs = append(errs, errors.New("from and to are required"))
	} else if !c.To.After(c.From) {
		errs = append(errs, fmt.Errorf("to (%s) must be after from (%s)", c.To.Format(time.RFC3339), c.From.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// maxPoints bounds the steps of one request, under Prometheus' 11,000 points per series.
const maxPoints = 10000

// Fetch asks Prometheus for the raw series the engine reads: query_range of each selector
// over [From, To] at Step, chunk by chunk, joined into one recording. Series with
// unknown metric names (a selector that matches more) are an error, as in a file.
func Fetch(ctx context.Context, api RangeAPI, cfg FetchConfig) (*Recording, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := newBuilder()
	total, done := cfg.Requests(), 0
	for _, sel := range cfg.selectors() {
		for ci, ch := range cfg.chunks() {
			val, warnings, _, err := api.QueryRange(ctx, sel, v1.Range{Start: ch[0], End: ch[1], Step: cfg.Step})
			if err != nil {
				return nil, fmt.Errorf("query_range %s from %s to %s: %w", sel, ch[0].Format(time.RFC3339), ch[1].Format(time.RFC3339), err)
			}
			if len(warnings) > 0 {
				return nil, fmt.Errorf("query_range %s from %s: partial answer: %s", sel, ch[0].Format(time.RFC3339), strings.Join(warnings, "; "))
			}
			m, ok := val.(model.Matrix)
			if !ok {
				return nil, fmt.Errorf("query_range %s: want a matrix, got %s", sel, val.Type())
			}
			for _, ss := range m {
				lb := labels.NewScratchBuilder(len(ss.Metric))
				for k, v := range ss.Metric {
					lb.Add(string(k), string(v))
				}
				lb.Sort()
				lset := lb.Labels()
				if len(ss.Histograms) > 0 {
					return nil, fmt.Errorf("series %s: native histograms are not supported", SeriesName(lset))
				}
				if err := checkLabels(lset); err != nil {
					return nil, fmt.Errorf("query_range %s: %w", sel, err)
				}
				for _, sp := range ss.Values {
					if err := b.add(lset, ci+1, int64(sp.Timestamp), float64(sp.Value)); err != nil {
						return nil, err
					}
				}
			}
			done++
			if cfg.Progress != nil {
				cfg.Progress(done, total)
			}
		}
	}
	return b.recording(), nil
}
