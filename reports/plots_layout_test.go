package reports

import (
	"context"
	"image"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/baseline"
)

// TestLegendsSitOutsideThePlottingArea: on every chart of a run with spikes (flash-sale, every
// policy) the legend is laid out in its own column, clear of the plotting area and inside
// the image; it is drawn there; both axes name their unit.
func TestLegendsSitOutsideThePlottingArea(t *testing.T) {
	sc, err := scenarios.Load("flash-sale")
	if err != nil {
		t.Fatal(err)
	}
	var jobs []baseline.Job
	for _, b := range baseline.All() {
		jobs = append(jobs, baseline.Job{Scenario: sc, Baseline: b})
	}
	results, err := baseline.RunMany(context.Background(), jobs, 1, engine.DefaultPolicy(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	dur := sc.Duration()
	charts := map[string]func() (*plot.Plot, error){
		"workers":         func() (*plot.Plot, error) { return WorkersChart(results[0], dur) },
		"cpu-memory":      func() (*plot.Plot, error) { return UsageChart(results[0], dur, engine.DefaultPolicy()) },
		"pending-pods":    func() (*plot.Plot, error) { return PendingChart(results, dur) },
		"p95-latency":     func() (*plot.Plot, error) { return LatencyChart(results, dur, sc.Sim.SLO.P95Ms) },
		"cumulative-cost": func() (*plot.Plot, error) { return CostChart(results, dur) },
		"pareto":          func() (*plot.Plot, error) { return ParetoChart(Compare(results), sc.Name) },
	}
	for name, mk := range charts {
		t.Run(name, func(t *testing.T) {
			p, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range []string{p.X.Label.Text, p.Y.Label.Text} {
				if !strings.Contains(l, "(") {
					t.Errorf("axis label %q gives no unit", l)
				}
			}
			img := vgimg.New(plotW, plotH)
			c := draw.New(img)
			plotC, legendC := layout(p, c)
			if legendC.Canvas == nil {
				t.Fatal("no legend column")
			}
			data := p.DataCanvas(plotC).Rectangle
			leg := p.Legend
			leg.Top, leg.Left = true, true
			lr := leg.Rectangle(legendC)
			// Rectangle places a Left legend right-aligned: where Draw puts it is the column's left edge.
			lr = vg.Rectangle{Min: vg.Point{X: legendC.Min.X, Y: lr.Min.Y}, Max: vg.Point{X: legendC.Min.X + lr.Size().X, Y: lr.Max.Y}}
			if lr.Min.X < data.Max.X {
				t.Errorf("legend %v overlaps the plotting area %v", lr, data)
			}
			if lr.Max.X > c.Max.X || lr.Min.Y < c.Min.Y {
				t.Errorf("legend %v is cut off by the image %v", lr, c.Rectangle)
			}
			drawChart(p, c)
			if !inked(img.Image(), c, lr) {
				t.Error("nothing drawn where the legend goes")
			}
		})
	}
}

// inked reports whether any pixel of r (in canvas units of c) is not white.
func inked(im image.Image, c draw.Canvas, r vg.Rectangle) bool {
	b := im.Bounds()
	sx := float64(b.Dx()) / float64(c.Max.X-c.Min.X)
	sy := float64(b.Dy()) / float64(c.Max.Y-c.Min.Y)
	for y := int(float64(c.Max.Y-r.Max.Y) * sy); y < int(float64(c.Max.Y-r.Min.Y)*sy); y++ {
		for x := int(float64(r.Min.X) * sx); x < int(float64(r.Max.X)*sx); x++ {
			if rr, g, bb, _ := im.At(x, y).RGBA(); rr < 0xf000 || g < 0xf000 || bb < 0xf000 {
				return true
			}
		}
	}
	return false
}
