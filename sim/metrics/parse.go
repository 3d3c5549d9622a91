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
	// pending is the next parse of one query's subqueries replaced by their windows
	// (subquery.go), consumed by that parse
	pending *substitution
}

type substitution struct {
	input string
	mats  []*parser.MatrixSelector // in sitesOf order
}

func newParseCache() *parseCache {
	return &parseCache{Parser: parser.NewParser(parser.Options{}), trees: map[string]parser.Expr{}}
}

// ParseExpr implements parser.Parser.
func (c *parseCache) ParseExpr(input string) (parser.Expr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.parse(input)
	if p := c.pending; p != nil && p.input == input && err == nil {
		c.pending = nil
		if sites := sitesOf(e, false, nil); len(sites) == len(p.mats) {
			for i, s := range sites {
				s.call.Args[s.arg] = p.mats[i]
			}
		}
	}
	return e, err
}

// register makes key parse to a copy of e; false when e cannot be copied.
func (c *parseCache) register(key string, e parser.Expr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	pristine, ok := cloneExpr(e)
	if ok {
		c.trees[key] = pristine
	}
	return ok
}

// substitute makes the next parse of input put mats in place of its subqueries; unsubstitute
// forgets it when that parse did not happen.
func (c *parseCache) substitute(input string, mats []*parser.MatrixSelector) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = &substitution{input: input, mats: mats}
}

func (c *parseCache) unsubstitute() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = nil
}

func (c *parseCache) parse(input string) (parser.Expr, error) {
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
