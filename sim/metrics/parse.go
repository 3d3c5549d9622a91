package metrics

import (
	"slices"
	"sync"

	"github.com/prometheus/prometheus/promql/parser"
)

// parseCache is the engine's PromQL parser with memory: each distinct query string is
// parsed once per Querier, and every later query gets a fresh copy of that tree, because
// the engine writes into the tree it evaluates (selected series, offsets, step-invariant
// wrappers). Only the node types below are copied; a tree holding any other node is
// parsed anew every time, so a Prometheus upgrade can make it slower, never wrong.
type parseCache struct {
	parser.Parser
	mu    sync.Mutex
	trees map[string]parser.Expr // nil: not copyable, parse every time
}

func newParseCache() *parseCache {
	return &parseCache{Parser: parser.NewParser(parser.Options{}), trees: map[string]parser.Expr{}}
}

// ParseExpr implements parser.Parser.
func (c *parseCache) ParseExpr(input string) (parser.Expr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tree, ok := c.trees[input]; ok && tree != nil {
		if e, ok := cloneExpr(tree); ok {
			return e, nil
		}
	} else if ok {
		return c.Parser.ParseExpr(input)
	}
	tree, err := c.Parser.ParseExpr(input)
	if err != nil {
		return tree, err
	}
	pristine, ok := cloneExpr(tree)
	if !ok {
		pristine = nil
	}
	c.trees[input] = pristine
	return tree, nil
}

// cloneExpr deep-copies a parsed tree: every node and every pointer the engine may set or
// replace; label matchers (immutable once built) are shared.
func cloneExpr(e parser.Expr) (parser.Expr, bool) {
	if e == nil {
		return nil, true
	}
	ok := true
	sub := func(x parser.Expr) parser.Expr {
		c, k := cloneExpr(x)
		ok = ok && k
		return c
	}
	dur := func(d *parser.DurationExpr) *parser.DurationExpr {
		if d == nil {
			return nil
		}
		c := *d
		c.LHS, c.RHS = sub(d.LHS), sub(d.RHS)
		return &c
	}
	switch n := e.(type) {
	case *parser.AggregateExpr:
		c := *n
		c.Expr, c.Param, c.Grouping = sub(n.Expr), sub(n.Param), slices.Clone(n.Grouping)
		return &c, ok
	case *parser.BinaryExpr:
		c := *n
		c.LHS, c.RHS = sub(n.LHS), sub(n.RHS)
		if n.VectorMatching != nil {
			vm := *n.VectorMatching
			vm.MatchingLabels, vm.Include = slices.Clone(vm.MatchingLabels), slices.Clone(vm.Include)
			vm.FillValues.LHS, vm.FillValues.RHS = clonePtr(vm.FillValues.LHS), clonePtr(vm.FillValues.RHS)
			c.VectorMatching = &vm
		}
		return &c, ok
	case *parser.Call:
		c := *n
		c.Args = make(parser.Expressions, len(n.Args))
		for i, a := range n.Args {
			c.Args[i] = sub(a)
		}
		return &c, ok
	case *parser.MatrixSelector:
		c := *n
		c.VectorSelector, c.RangeExpr = sub(n.VectorSelector), dur(n.RangeExpr)
		return &c, ok
	case *parser.SubqueryExpr:
		c := *n
		c.Expr, c.RangeExpr, c.OriginalOffsetExpr, c.StepExpr = sub(n.Expr), dur(n.RangeExpr), dur(n.OriginalOffsetExpr), dur(n.StepExpr)
		c.Timestamp = clonePtr(n.Timestamp)
		return &c, ok
	case *parser.VectorSelector:
		if n.UnexpandedSeriesSet != nil || n.Series != nil {
			return nil, false // already evaluated: not a parser's tree
		}
		c := *n
		c.OriginalOffsetExpr, c.Timestamp = dur(n.OriginalOffsetExpr), clonePtr(n.Timestamp)
		c.LabelMatchers = slices.Clone(n.LabelMatchers)
		return &c, ok
	case *parser.DurationExpr:
		return dur(n), ok
	case *parser.NumberLiteral:
		c := *n
		return &c, true
	case *parser.StringLiteral:
		c := *n
		return &c, true
	case *parser.ParenExpr:
		c := *n
		c.Expr = sub(n.Expr)
		return &c, ok
	case *parser.UnaryExpr:
		c := *n
		c.Expr = sub(n.Expr)
		return &c, ok
	case *parser.StepInvariantExpr:
		c := *n
		c.Expr = sub(n.Expr)
		return &c, ok
	}
	return nil, false
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}
