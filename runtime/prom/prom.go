// Package prom is the engine.Metrics adapter for the Prometheus HTTP API.
//
// Every answer that is not exactly one finite value becomes a *engine.MetricError with the
// problem that stands in its way: an empty vector, more than one series, NaN or Inf, a
// partial answer (warnings), an HTTP 4xx/5xx or malformed answer, a timeout. No problem is
// ever read as zero.
package prom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/smartscale/smartscale/engine"
)

// DefaultTimeout bounds one query (HTTP round trip included).
const DefaultTimeout = 10 * time.Second

// API is the part of the Prometheus HTTP API the adapter uses.
type API interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
}

// Client evaluates instant queries.
type Client struct {
	api     API
	timeout time.Duration
}

var _ engine.Metrics = (*Client)(nil)

// New returns a client for the Prometheus at address (e.g. http://10.0.1.5:30090). Each query
// is bounded by timeout (DefaultTimeout when zero), both on the client and as the query's
// server-side timeout. rt may be nil.
func New(address string, timeout time.Duration, rt http.RoundTripper) (*Client, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if rt == nil {
		rt = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
			MaxIdleConns:          4,
			IdleConnTimeout:       60 * time.Second,
		}
	}
	c, err := api.NewClient(api.Config{Address: address, Client: &http.Client{Transport: rt, Timeout: timeout + time.Second}})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", address, err)
	}
	return &Client{api: v1.NewAPI(c), timeout: timeout}, nil
}

// NewWithAPI wraps an API (tests, other transports).
func NewWithAPI(a API, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{api: a, timeout: timeout}
}

// Query evaluates query at the instant at. A scalar or a one-element vector is a value;
// anything else is a *engine.MetricError. A value with warnings is returned together with a
// ProblemPartial error: the engine must not trust it.
func (c *Client) Query(ctx context.Context, query string, at time.Time) (engine.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	val, warnings, _, err := c.api.Query(ctx, query, at, v1.WithTimeout(serverTimeout(c.timeout)))
	if err != nil {
		return engine.Sample{}, &engine.MetricError{Problem: classify(ctx, err), Query: query, Err: err}
	}
	s, err := single(val)
	if err != nil {
		var me *engine.MetricError
		if errors.As(err, &me) {
			me.Query = query
		}
		return engine.Sample{}, err
	}
	s.Warnings = warnings
	switch {
	case math.IsNaN(s.Value):
		return s, &engine.MetricError{Problem: engine.ProblemNaN, Query: query, Err: errors.New("query returned NaN")}
	case math.IsInf(s.Value, 0):
		return s, &engine.MetricError{Problem: engine.ProblemInf, Query: query, Err: fmt.Errorf("query returned %v", s.Value)}
	case len(warnings) > 0:
		return s, &engine.MetricError{Problem: engine.ProblemPartial, Query: query, Err: fmt.Errorf("partial answer, warnings: %q", []string(warnings))}
	}
	return s, nil
}

// single reduces a query result to one sample.
func single(val model.Value) (engine.Sample, error) {
	switch v := val.(type) {
	case *model.Scalar:
		return engine.Sample{Value: float64(v.Value), Time: v.Timestamp.Time().UTC()}, nil
	case model.Vector:
		switch len(v) {
		case 0:
			return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemEmpty, Err: errors.New("empty vector: no series in the lookback")}
		case 1:
			return engine.Sample{Value: float64(v[0].Value), Time: v[0].Timestamp.Time().UTC()}, nil
		}
		return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemMultiple, Err: fmt.Errorf("%d series where one was expected (first: %s)", len(v), v[0].Metric)}
	case nil:
		return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemHTTP, Err: errors.New("no result in the answer")}
	}
	return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemHTTP, Err: fmt.Errorf("unexpected result type %s", val.Type())}
}

// classify maps a client error to the engine's problem.
func classify(ctx context.Context, err error) engine.MetricProblem {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return engine.ProblemTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return engine.ProblemTimeout
	}
	var ae *v1.Error
	if errors.As(err, &ae) {
		if ae.Type == v1.ErrServer && isServerTimeout(ae.Detail) {
			// Prometheus answers a query timeout with 503 and errorType "timeout"; the client
			// keeps that body only as Detail.
			return engine.ProblemTimeout
		}
		switch ae.Type {
		case v1.ErrTimeout, v1.ErrCanceled:
			return engine.ProblemTimeout
		case v1.ErrClient, v1.ErrServer, v1.ErrBadResponse, v1.ErrBadData, v1.ErrExec:
			return engine.ProblemHTTP
		}
	}
	return engine.ProblemError
}

// serverTimeout is the query's server-side timeout: whole seconds, at least one. The client
// sends Go's duration text, and Prometheus rejects fractions such as "1.5s" (400 bad_data).
func serverTimeout(d time.Duration) time.Duration {
	return max(time.Second, d.Truncate(time.Second))
}

// isServerTimeout reports whether an error body is Prometheus's query-timeout answer.
func isServerTimeout(body string) bool {
	var b struct {
		ErrorType string `json:"errorType"`
	}
	return json.Unmarshal([]byte(body), &b) == nil && b.ErrorType == string(v1.ErrTimeout)
}
