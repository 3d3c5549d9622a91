package tune

import (
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	grey  = color.RGBA{0x9a, 0x9a, 0x9a, 0xff}
	blue  = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	red   = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	black = color.RGBA{0, 0, 0, 0xff}
)

// refStyle gives each reference a glyph of its own.
var refStyle = map[string]draw.GlyphStyle{
	RefBase:       {Color: color.RGBA{0xff, 0x7f, 0x0e, 0xff}, Radius: vg.Points(5), Shape: draw.PyramidGlyph{}},
	"static-max":  {Color: color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, Radius: vg.Points(5), Shape: draw.BoxGlyph{}},
	"static-5":    {Color: color.RGBA{0x8c, 0x56, 0x4b, 0xff}, Radius: vg.Points(5), Shape: draw.BoxGlyph{}},
	"ca-like":     {Color: color.RGBA{0x94, 0x67, 0xbd, 0xff}, Radius: vg.Points(5), Shape: draw.CrossGlyph{}},
	"oracle":      {Color: color.RGBA{0x2c, 0xa0, 0x2c, 0xff}, Radius: vg.Points(5), Shape: draw.PlusGlyph{}},
	"oracle-tick": {Color: color.RGBA{0x17, 0xbe, 0xcf, 0xff}, Radius: vg.Points(5), Shape: draw.PlusGlyph{}},
}

// ParetoPlot draws every point's total cost against its total SLO minutes, the frontier
// joined, the references as labelled marks and the recommended point circled.
func ParetoPlot(sum *Summary) *plot.Plot {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Sweep: total cost against total SLO-violation minutes (%d points, %d scenarios x %d seeds)",
		len(sum.Points), len(sum.Plan.Spec.Scenarios), len(sum.Plan.Spec.Seeds))
	p.X.Label.Text = "SLO-violation minutes (sum over the scenarios of the mean per run)"
	p.Y.Label.Text = "cost USD (sum over the scenarios of the mean per run)"
	p.Add(plotter.NewGrid())
	xy := func(l Line) plotter.XY { return plotter.XY{X: l.Total.SLOMinutes, Y: l.Total.CostUSD} }
	scatter := func(xys plotter.XYs, sty draw.GlyphStyle, legend string) {
		s, err := plotter.NewScatter(xys)
		if err != nil {
			return // no points: nothing to draw
		}
		s.GlyphStyle = sty
		p.Add(s)
		if legend != "" {
			p.Legend.Add(legend, s)
		}
	}
	var all plotter.XYs
	for _, l := range sum.Points {
		all = append(all, xy(l))
	}
	scatter(all, draw.GlyphStyle{Color: grey, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}, fmt.Sprintf("points (%d)", len(all)))
	var front plotter.XYs
	for _, i := range sum.Frontier {
		front = append(front, xy(sum.Points[i]))
	}
	sort.SliceStable(front, func(a, b int) bool { return front[a].X < front[b].X })
	if len(front) > 1 {
		if l, err := plotter.NewLine(front); err == nil {
			l.Color, l.Width = blue, vg.Points(1.2)
			p.Add(l)
		}
	}
	scatter(front, draw.GlyphStyle{Color: blue, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}, fmt.Sprintf("frontier (%d)", len(front)))
	labels := plotter.XYLabels{}
	for _, r := range sum.References {
		scatter(plotter.XYs{xy(r)}, refStyle[r.Reference], "")
		labels.XYs = append(labels.XYs, xy(r))
		labels.Labels = append(labels.Labels, "  "+r.Reference)
	}
	if l, ok := sum.BestLine(); ok {
		scatter(plotter.XYs{xy(l)}, draw.GlyphStyle{Color: red, Radius: vg.Points(7), Shape: draw.RingGlyph{}},
			fmt.Sprintf("recommended (point %d)", *l.Point))
		labels.XYs = append(labels.XYs, xy(l))
		labels.Labels = append(labels.Labels, fmt.Sprintf("  point %d", *l.Point))
	}
	if l, err := plotter.NewLabels(labels); err == nil {
		for i := range l.TextStyle {
			l.TextStyle[i].Color = black
		}
		p.Add(l)
	}
	p.X.Min, p.Y.Min = 0, 0
	p.X.Max = max(p.X.Max*1.12, 5)
	p.Y.Max *= 1.08
	p.Legend.Top = true
	return p
}
