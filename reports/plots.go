package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// Plot size of every chart: a plotting area about 7 inches wide, then the legend column.
const (
	plotW = 10 * vg.Inch
	plotH = 4 * vg.Inch
	// legendW is the legend column's width (wider when a legend needs it), the same on every
	// chart so that the right ends of a report's time axes line up.
	legendW = 2.4 * vg.Inch
)

// Chart is one rendered plot.
type Chart struct {
	Name  string // file name without extension
	Title string
	PNG   []byte
	SVG   []byte // standalone, fonts embedded
	// Inline is the SVG for inlining in HTML: no XML prolog, no namespaces, fonts left to the
	// page's @font-face rules.
	Inline []byte
}

// palette gives each policy a fixed colour, so every chart shows it the same way.
var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0x7f, 0x7f, 0x7f, 0xff}, // grey
	{0x8c, 0x56, 0x4b, 0xff}, // brown
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0x94, 0x67, 0xbd, 0xff}, // purple
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x17, 0xbe, 0xcf, 0xff}, // cyan
}

var (
	red   = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	green = color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
	black = color.RGBA{0, 0, 0, 0xff}
	dash  = []vg.Length{vg.Points(4), vg.Points(3)}
)

// timeAxis picks minutes or hours for the x axis.
type timeAxis struct {
	unit  time.Duration
	label string
	end   float64 // the run's length in units
}

func axisFor(d time.Duration) timeAxis {
	if d <= 3*time.Hour {
		return timeAxis{time.Minute, "time since start (minutes)", d.Minutes()}
	}
	return timeAxis{time.Hour, "time since start (hours)", d.Hours()}
}

// ticks are round marks from 0 to the end: at most about 12 labelled ones.
func (a timeAxis) ticks() plot.ConstantTicks {
	step := 1.0
	for _, s := range []float64{1, 2, 5, 10, 15, 20, 30, 60, 120, 240, 480, 720} {
		step = s
		if a.end/s <= 12 {
			break
		}
	}
	var ts plot.ConstantTicks
	for i := 0; float64(i)*step <= a.end+1e-9; i++ {
		v := float64(i) * step
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		if step >= 2 && float64(i)*step+step/2 <= a.end {
			ts = append(ts, plot.Tick{Value: v + step/2}) // minor
		}
	}
	return ts
}

func (a timeAxis) x(t time.Time) float64 { return float64(t.Sub(world.Epoch)) / float64(a.unit) }

func newPlot(title, ylabel string, ax timeAxis) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = ax.label
	p.X.Min, p.X.Max = 0, ax.end
	p.X.Tick.Marker = ax.ticks()
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Padding = vg.Points(2)
	return p
}

func line(p *plot.Plot, name string, xys plotter.XYs, c color.Color, width vg.Length, dashes []vg.Length, step bool) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l.Color, l.Width, l.Dashes = c, width, dashes
	if step {
		l.StepStyle = plotter.PostStep
	}
	p.Add(l)
	if name != "" {
		p.Legend.Add(name, l)
	}
	return nil
}

// hline draws a horizontal threshold over the run.
func hline(p *plot.Plot, name string, y, x0, x1 float64, c color.Color) error {
	return line(p, name, plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}}, c, vg.Points(1), dash, false)
}

func series(rows []world.Row, ax timeAxis, f func(world.Row) float64) plotter.XYs {
	xys := make(plotter.XYs, len(rows))
	for i, r := range rows {
		xys[i] = plotter.XY{X: ax.x(r.Time), Y: f(r)}
	}
	return xys
}

// WorkersChart: ready workers and all workers (ready, launching, draining) against the demand
// in nodes, with the scaling events marked (up: green triangle, down: red triangle) at the
// capacity they left.
func WorkersChart(res *world.Result, dur time.Duration) (*plot.Plot, error) {
	ax := axisFor(dur)
	p := newPlot(fmt.Sprintf("Workers against demand: %s on %s", res.Summary.Policy, res.Summary.Scenario), "workers (nodes)", ax)
	rows := res.Timeline
	if err := line(p, "demand (nodes)", series(rows, ax, func(r world.Row) float64 { return float64(r.DemandNodes) }), black, vg.Points(1.5), dash, true); err != nil {
		return nil, err
	}
	if err := line(p, "ready + launching + draining", series(rows, ax, func(r world.Row) float64 { return float64(r.ReadyWorkers + r.LaunchingWorkers + r.DrainingWorkers) }), palette[3], vg.Points(1), nil, true); err != nil {
		return nil, err
	}
	if err := line(p, "ready", series(rows, ax, func(r world.Row) float64 { return float64(r.ReadyWorkers) }), palette[0], vg.Points(2), nil, true); err != nil {
		return nil, err
	}
	var ups, downs plotter.XYs
	for _, ev := range res.Events {
		pt := plotter.XY{X: ax.x(ev.Time), Y: capacityAfter(rows, ev.Time)}
		switch ev.Kind {
		case engine.EventScaleUp:
			ups = append(ups, pt)
		case engine.EventScaleDown:
			downs = append(downs, pt)
		}
	}
	for _, m := range []struct {
		name  string
		xys   plotter.XYs
		shape draw.GlyphDrawer
		c     color.Color
	}{{"scale-up", ups, draw.TriangleGlyph{}, green}, {"scale-down", downs, invertedTriangle{}, red}} {
		if len(m.xys) == 0 {
			continue
		}
		s, err := plotter.NewScatter(m.xys)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle = draw.GlyphStyle{Color: m.c, Radius: vg.Points(4), Shape: m.shape}
		p.Add(s)
		p.Legend.Add(m.name, s)
	}
	p.Y.Min = 0
	p.Y.Max = math.Ceil(p.Y.Max) + 1 // headroom for the scale-up marks
	return p, nil
}

// capacityAfter is the workers (ready, launching, draining) of the first timeline minute
// at or after t: where a scaling event left the fleet.
func capacityAfter(rows []world.Row, t time.Time) float64 {
	for _, r := range rows {
		if !r.Time.Before(t) {
			return float64(r.ReadyWorkers + r.LaunchingWorkers + r.DrainingWorkers)
		}
	}
	if len(rows) == 0 {
		return 0
	}
	r := rows[len(rows)-1]
	return float64(r.ReadyWorkers + r.LaunchingWorkers + r.DrainingWorkers)
}

// invertedTriangle is a downward triangle glyph.
type invertedTriangle struct{}

func (invertedTriangle) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(0.5)})
	r := sty.Radius + (sty.Radius-sty.Radius*vg.Length(math.Sin(math.Pi/6)))/2
	var path vg.Path
	path.Move(vg.Point{X: pt.X, Y: pt.Y - r})
	path.Line(vg.Point{X: pt.X - r*vg.Length(math.Cos(math.Pi/6)), Y: pt.Y + r*vg.Length(math.Sin(math.Pi/6))})
	path.Line(vg.Point{X: pt.X + r*vg.Length(math.Cos(math.Pi/6)), Y: pt.Y + r*vg.Length(math.Sin(math.Pi/6))})
	path.Close()
	c.SetColor(sty.Color)
	c.Fill(path)
}

// UsageChart: cluster CPU and memory % with the policy's scale-up and scale-down thresholds.
func UsageChart(res *world.Result, dur time.Duration, pol engine.Policy) (*plot.Plot, error) {
	ax := axisFor(dur)
	p := newPlot(fmt.Sprintf("CPU and memory: %s on %s", res.Summary.Policy, res.Summary.Scenario), "used (% of the nodes' CPU / memory)", ax)
	rows := res.Timeline
	if err := line(p, "CPU %", series(rows, ax, func(r world.Row) float64 { return r.CPUPercent }), palette[0], vg.Points(1.5), nil, false); err != nil {
		return nil, err
	}
	if err := line(p, "memory %", series(rows, ax, func(r world.Row) float64 { return r.MemoryPercent }), palette[5], vg.Points(1.5), nil, false); err != nil {
		return nil, err
	}
	x1 := float64(dur) / float64(ax.unit)
	for _, th := range []struct {
		name string
		v    float64
		c    color.Color
	}{
		{fmt.Sprintf("CPU scale-up %g%%", pol.ScaleUpCPUPercent), pol.ScaleUpCPUPercent, red},
		{fmt.Sprintf("CPU scale-down %g%%", pol.ScaleDownCPUPercent), pol.ScaleDownCPUPercent, green},
		{fmt.Sprintf("memory scale-up %g%%", pol.ScaleUpMemoryPercent), pol.ScaleUpMemoryPercent, palette[6]},
		{fmt.Sprintf("memory scale-down %g%%", pol.ScaleDownMemoryPercent), pol.ScaleDownMemoryPercent, palette[4]},
	} {
		if err := hline(p, th.name, th.v, 0, x1, th.c); err != nil {
			return nil, err
		}
	}
	p.Y.Min, p.Y.Max = 0, 100
	var ticks plot.ConstantTicks
	for v := 0; v <= 100; v += 10 {
		t := plot.Tick{Value: float64(v)}
		if v%20 == 0 {
			t.Label = strconv.Itoa(v)
		}
		ticks = append(ticks, t)
	}
	p.Y.Tick.Marker = ticks
	return p, nil
}

// overlay draws one series per policy.
func overlay(title, ylabel string, results []*world.Result, dur time.Duration, f func(world.Row) float64, step bool) (*plot.Plot, timeAxis, error) {
	ax := axisFor(dur)
	p := newPlot(title, ylabel, ax)
	for i, r := range results {
		if err := line(p, r.Summary.Policy, series(r.Timeline, ax, f), palette[i%len(palette)], vg.Points(1.2), nil, step); err != nil {
			return nil, ax, err
		}
	}
	return p, ax, nil
}

// PendingChart: unschedulable pods per policy.
func PendingChart(results []*world.Result, dur time.Duration) (*plot.Plot, error) {
	p, _, err := overlay("Pending (unschedulable) pods: "+results[0].Summary.Scenario, "pending pods (count)", results, dur,
		func(r world.Row) float64 { return float64(r.PendingPods) }, true)
	if err != nil {
		return nil, err
	}
	p.Y.Min = 0
	p.Y.Max = max(1, math.Ceil(p.Y.Max*1.05))
	return p, nil
}

// LatencyChart: p95 latency per policy (log scale) against the SLO. The y axis is linear in
// log10(ms) with decade labels (gonum's LogScale mis-sizes the axis label and leaves a gap).
func LatencyChart(results []*world.Result, dur time.Duration, sloMs float64) (*plot.Plot, error) {
	p, ax, err := overlay("p95 latency against the SLO: "+results[0].Summary.Scenario, "p95 latency (ms, log scale)", results, dur,
		func(r world.Row) float64 { return math.Log10(max(1, r.P95Ms)) }, false)
	if err != nil {
		return nil, err
	}
	if err := hline(p, fmt.Sprintf("SLO %g ms", sloMs), math.Log10(sloMs), 0, float64(dur)/float64(ax.unit), red); err != nil {
		return nil, err
	}
	p.Y.Min = 1                                                            // 10 ms
	p.Y.Max = math.Ceil(max(p.Y.Max, math.Log10(sloMs)) + math.Log10(1.2)) // a labelled decade on top
	var ticks plot.ConstantTicks
	for d := p.Y.Min; d <= p.Y.Max; d++ {
		ticks = append(ticks, plot.Tick{Value: d, Label: strconv.FormatFloat(math.Pow(10, d), 'f', -1, 64)})
		for k := 2.0; k < 10 && d < p.Y.Max; k++ {
			ticks = append(ticks, plot.Tick{Value: d + math.Log10(k)})
		}
	}
	p.Y.Tick.Marker = ticks
	return p, nil
}

// CostChart: cumulative cost per policy.
func CostChart(results []*world.Result, dur time.Duration) (*plot.Plot, error) {
	p, _, err := overlay("Cumulative cost (workers + master): "+results[0].Summary.Scenario, "cumulative cost (USD)", results, dur,
		func(r world.Row) float64 { return r.CostUSD }, false)
	if err != nil {
		return nil, err
	}
	p.Y.Min = 0
	p.Y.Max *= 1.05
	return p, nil
}

// ParetoChart: cost against SLO-violation minutes, one point per policy, with the Pareto
// front (no other policy is both cheaper and better on the SLO) joined by a dashed line.
func ParetoChart(rows []Row, scenario string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Cost against SLO-violation minutes: " + scenario
	p.X.Label.Text = "SLO violation (minutes)"
	p.Y.Label.Text = "cost (USD)"
	p.Add(plotter.NewGrid())
	p.Legend.Padding = vg.Points(3)
	var front plotter.XYs
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b Row) int {
		if a.SLOViolationMinutes != b.SLOViolationMinutes {
			return a.SLOViolationMinutes - b.SLOViolationMinutes
		}
		switch {
		case a.CostUSD < b.CostUSD:
			return -1
		case a.CostUSD > b.CostUSD:
			return 1
		}
		return 0
	})
	best := math.Inf(1)
	for _, r := range sorted {
		if r.CostUSD < best {
			best = r.CostUSD
			front = append(front, plotter.XY{X: float64(r.SLOViolationMinutes), Y: r.CostUSD})
		}
	}
	if len(front) > 1 {
		if err := line(p, "Pareto front", front, black, vg.Points(1), dash, false); err != nil {
			return nil, err
		}
	}
	// Colour and shape per policy (named in the legend column, not over the points): policies
	// on the same spot stay distinguishable.
	// Filled shapes first; the hollow ring is drawn larger, around whatever shares its spot.
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, invertedTriangle{},
		draw.RingGlyph{}, draw.CrossGlyph{}, draw.PlusGlyph{}, draw.SquareGlyph{}}
	for i, r := range rows {
		s, err := plotter.NewScatter(plotter.XYs{{X: float64(r.SLOViolationMinutes), Y: r.CostUSD}})
		if err != nil {
			return nil, err
		}
		radius := vg.Points(4.5)
		if i%len(shapes) == 4 {
			radius = vg.Points(7)
		}
		s.GlyphStyle = draw.GlyphStyle{Color: palette[i%len(palette)], Radius: radius, Shape: shapes[i%len(shapes)]}
		p.Add(s)
		p.Legend.Add(r.Policy, s)
	}
	p.X.Min, p.Y.Min = 0, 0
	p.X.Max = max(math.Ceil(p.X.Max*1.05), 5)
	p.X.Tick.Marker = timeAxis{end: p.X.Max}.ticks() // whole minutes
	p.Y.Max *= 1.1
	return p, nil
}

// layout splits c into the plot's canvas and, right of its plotting area, a column for its
// legend as tall as the plotting area: the legend never sits over data. With no legend
// entries the plot has all of c.
func layout(p *plot.Plot, c draw.Canvas) (plotC, legendC draw.Canvas) {
	w := p.Legend.Rectangle(c).Size().X
	if w == 0 {
		return c, draw.Canvas{}
	}
	w = max(w, legendW)
	plotC = draw.Crop(c, 0, -(w + vg.Points(12)), 0, 0)
	data := p.DataCanvas(plotC)
	legendC = c
	legendC.Min = vg.Point{X: c.Max.X - w, Y: data.Min.Y}
	legendC.Max.Y = data.Max.Y
	return plotC, legendC
}

// drawChart draws p on c with its legend in its own column (layout), the same for PNG and SVG.
func drawChart(p *plot.Plot, c draw.Canvas) {
	plotC, legendC := layout(p, c)
	leg := p.Legend
	p.Legend = plot.NewLegend() // none inside the plot
	p.Draw(plotC)
	p.Legend = leg
	if legendC.Canvas != nil {
		leg.Top, leg.Left = true, true
		leg.Draw(legendC)
	}
}

// Render draws a plot as PNG, standalone SVG (fonts embedded) and inline SVG.
func Render(name string, p *plot.Plot) (Chart, error) {
	ch := Chart{Name: name, Title: p.Title.Text}
	img := vgimg.New(plotW, plotH)
	drawChart(p, draw.New(img))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return ch, fmt.Errorf("%s.png: %w", name, err)
	}
	ch.PNG = slices.Clone(buf.Bytes())
	svg := func(embed bool) ([]byte, error) {
		c := vgsvg.NewWith(vgsvg.UseWH(plotW, plotH), vgsvg.EmbedFonts(embed))
		drawChart(p, draw.New(c))
		var b bytes.Buffer
		if _, err := c.WriteTo(&b); err != nil {
			return nil, fmt.Errorf("%s.svg: %w", name, err)
		}
		return b.Bytes(), nil
	}
	var err error
	if ch.SVG, err = svg(true); err != nil {
		return ch, err
	}
	raw, err := svg(false)
	if err != nil {
		return ch, err
	}
	ch.Inline = inlineSVG(raw)
	return ch, nil
}

var (
	svgProlog  = regexp.MustCompile(`(?s)^<\?xml[^>]*\?>\s*(<!--.*?-->\s*)?`)
	svgXMLNS   = regexp.MustCompile(`\s+xmlns(:\w+)?="[^"]*"`)
	svgPtUnits = regexp.MustCompile(`^<svg width="[^"]*" height="[^"]*"`)
)

// inlineSVG makes an SVG document fit for inlining in HTML5: no prolog or comment, no
// namespace declarations (HTML parsers supply them), scalable to the page's width.
func inlineSVG(b []byte) []byte {
	b = svgProlog.ReplaceAll(b, nil)
	b = svgXMLNS.ReplaceAll(b, nil)
	b = svgPtUnits.ReplaceAll(b, []byte(`<svg class="chart"`))
	return b
}

// fontFaces returns the @font-face rules of the fonts the charts use (as vgsvg embeds them),
// for one <style> block of the HTML page.
func fontFaces(p *plot.Plot) (string, error) {
	c := vgsvg.NewWith(vgsvg.UseWH(plotW, plotH), vgsvg.EmbedFonts(true))
	drawChart(p, draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindSubmatch(b.Bytes())
	if m == nil {
		return "", nil
	}
	return string(m[1]), nil
}
