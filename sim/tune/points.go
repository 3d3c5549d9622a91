package tune

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"

	"github.com/smartscale/smartscale/engine"
)

// Point is one policy of a sweep: its overrides of the base policy, a JSON object with the
// space's keys in the space's order.
type Point struct {
	Index  int
	Doc    json.RawMessage
	Values []json.RawMessage // per key of the space
}

// Sampling modes.
const (
	ModeGrid = "grid"
	ModeLHS  = "latin-hypercube"
)

// GridSize is the number of points of the full grid (ok false past maxInt).
func (sp Space) GridSize() (n int, ok bool) {
	n = 1
	for _, d := range sp.Dims {
		hi, lo := bits.Mul64(uint64(n), uint64(d.Count()))
		if hi != 0 || lo > 1<<62 {
			return 0, false
		}
		n = int(lo)
	}
	return n, true
}

// Points returns the sweep's points: the full grid when it has at most budget points,
// else a Latin-hypercube sample of budget points drawn with seed (points that coincide on
// keys with few values are kept once).
func (sp Space) Points(budget int, seed uint64) ([]Point, string) {
	if n, ok := sp.GridSize(); ok && n <= budget {
		pts := make([]Point, n)
		idx := make([]int, len(sp.Dims))
		for i := range n {
			pts[i] = sp.point(i, idx)
			for d := len(idx) - 1; d >= 0; d-- { // odometer: the last key turns fastest
				if idx[d]++; idx[d] < sp.Dims[d].Count() {
					break
				}
				idx[d] = 0
			}
		}
		return pts, ModeGrid
	}
	return sp.latinHypercube(budget, seed), ModeLHS
}

// latinHypercube: each key's range of values is cut into budget equal strata, each stratum
// used by exactly one point, strata paired across keys by independent permutations and a
// value drawn within each stratum. The random source is PCG read through its Uint64 only, so
// the sample is the same on every Go version.
func (sp Space) latinHypercube(budget int, seed uint64) []Point {
	src := rand.NewPCG(seed, 0x74756e65) // "tune"
	uniform := func() float64 { return float64(src.Uint64()>>11) / (1 << 53) }
	below := func(n int) int { hi, _ := bits.Mul64(src.Uint64(), uint64(n)); return int(hi) }
	perms := make([][]int, len(sp.Dims))
	for d := range sp.Dims {
		p := make([]int, budget)
		for i := range p {
			p[i] = i
		}
		for i := budget - 1; i > 0; i-- { // Fisher-Yates
			j := below(i + 1)
			p[i], p[j] = p[j], p[i]
		}
		perms[d] = p
	}
	var pts []Point
	seen := map[string]bool{}
	idx := make([]int, len(sp.Dims))
	for i := range budget {
		for d, dim := range sp.Dims {
			u := (float64(perms[d][i]) + uniform()) / float64(budget)
			idx[d] = min(int(u*float64(dim.Count())), dim.Count()-1)
		}
		pt := sp.point(len(pts), idx)
		if seen[string(pt.Doc)] {
			continue
		}
		seen[string(pt.Doc)] = true
		pts = append(pts, pt)
	}
	return pts
}

// point is the point of the values idx picks: a JSON object in the space's key order.
func (sp Space) point(i int, idx []int) Point {
	pt := Point{Index: i}
	var b bytes.Buffer
	b.WriteByte('{')
	for d, dim := range sp.Dims {
		if d > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(dim.Key)
		v := dim.Value(idx[d])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
		pt.Values = append(pt.Values, v)
	}
	b.WriteByte('}')
	pt.Doc = b.Bytes()
	return pt
}

// Policies turns every point into a policy over base, through the engine's own policy
// parser, so the space is whatever a policy file accepts (presets included). Every problem
// is reported before any simulation: a key the policy does not know, and the points the
// policy rejects, grouped by problem, each group naming its points.
func Policies(sp Space, pts []Point, base engine.Policy) ([]engine.Policy, error) {
	var unknown []string
	for _, d := range sp.Dims {
		probe := fmt.Sprintf("{%q:%s}", d.Key, d.Value(0))
		if _, err := engine.ParsePolicy(strings.NewReader(probe), base); err != nil && strings.Contains(err.Error(), "unknown key") {
			unknown = append(unknown, fmt.Sprintf("space: key %q: %v", d.Key, err))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(unknown, "\n"))
	}
	pols := make([]engine.Policy, len(pts))
	bad := map[string][]int{}
	var order []string
	for i, pt := range pts {
		p, err := engine.ParsePolicy(bytes.NewReader(pt.Doc), base)
		if err != nil {
			msg := err.Error()
			if bad[msg] == nil {
				order = append(order, msg)
			}
			bad[msg] = append(bad[msg], i)
			continue
		}
		pols[i] = p
	}
	if len(order) == 0 {
		return pols, nil
	}
	var b strings.Builder
	n := 0
	for _, m := range order {
		n += len(bad[m])
	}
	fmt.Fprintf(&b, "%d of %d points are policies the engine rejects (narrow the space so every combination is valid):", n, len(pts))
	for _, m := range order {
		ids := bad[m]
		ex := pts[ids[0]]
		fmt.Fprintf(&b, "\n  point %d %s", ex.Index, ex.Doc)
		if len(ids) > 1 {
			more := []string{}
			for _, i := range ids[1:min(len(ids), 6)] {
				more = append(more, fmt.Sprint(pts[i].Index))
			}
			if len(ids) > 6 {
				more = append(more, fmt.Sprintf("... %d more", len(ids)-6))
			}
			fmt.Fprintf(&b, " (and points %s)", strings.Join(more, ", "))
		}
		fmt.Fprintf(&b, ":\n    %s", strings.ReplaceAll(m, "\n", "\n    "))
	}
	return nil, fmt.Errorf("%s", b.String())
}
