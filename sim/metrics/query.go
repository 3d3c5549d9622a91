package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/smartscale/smartscale/engine"
)

// Querier evaluates PromQL on a storage.Queryable with the real engine. It implements
// engine.Metrics: a query must reduce to one scalar or a one-element vector; an empty vector
// is engine.ProblemEmpty, never zero.
type Querier struct {
	q    storage.Queryable
	eng  *promql.Engine
	subq *subqueries // on a Store: the subqueries' steps kept between queries
}

var _ engine.Metrics = (*Querier)(nil)

// NewQuerier returns a Querier over q with Prometheus' defaults (5 m lookback). It parses
// each distinct query once (see parseCache) and, on a Store, evaluates a subquery's steps
// once (see subqueries).
func NewQuerier(q storage.Queryable) *Querier {
	pc := newParseCache()
	m := &Querier{q: q, eng: promql.NewEngine(promql.EngineOpts{
		Parser:               pc,
		MaxSamples:           50_000_000,
		Timeout:              time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		// a subquery without a step ([5m:]) steps at the evaluation interval, 15 s in the
		// shipped Prometheus (k3s/monitoring/prometheus-config.yml); unset, PromQL panics
		NoStepSubqueryIntervalFn: func(int64) int64 { return (15 * time.Second).Milliseconds() },
	})}
	if s, ok := q.(*Store); ok {
		m.subq = newSubqueries(s, pc, m.eng)
	}
	return m
}

// Query implements engine.Metrics.
func (m *Querier) Query(ctx context.Context, q string, at time.Time) (engine.Sample, error) {
	if m.subq != nil {
		m.subq.mu.Lock()
		defer m.subq.mu.Unlock()
		if m.subq.prepare(ctx, q, at) {
			defer m.subq.parse.unsubstitute()
		}
	}
	qry, err := m.eng.NewInstantQuery(ctx, m.q, nil, q, at)
	if err != nil {
		return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemError, Query: q, Err: err}
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemError, Query: q, Err: res.Err}
	}
	var warnings []string
	for _, w := range res.Warnings {
		warnings = append(warnings, w.Error())
	}
	switch v := res.Value.(type) {
	case promql.Scalar:
		return engine.Sample{Value: v.V, Time: time.UnixMilli(v.T).UTC(), Warnings: warnings}, nil
	case promql.Vector:
		switch len(v) {
		case 0:
			return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemEmpty, Query: q,
				Err: fmt.Errorf("empty vector: no series in the lookback")}
		case 1:
			return engine.Sample{Value: v[0].F, Time: time.UnixMilli(v[0].T).UTC(), Warnings: warnings}, nil
		}
		return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemMultiple, Query: q,
			Err: fmt.Errorf("%d series where one was expected", len(v))}
	}
	return engine.Sample{}, &engine.MetricError{Problem: engine.ProblemError, Query: q,
		Err: fmt.Errorf("unsupported result type %s", res.Value.Type())}
}

// Validate parses q and reports a syntax error naming the query.
func Validate(q string) error {
	_, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	return err
}
