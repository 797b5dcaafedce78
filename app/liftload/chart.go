package liftload

import (
	"fmt"
	"image/color"
	"io"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var kindColors = [numKinds]color.RGBA{
	KindPost: {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	KindGet7: {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	KindGet2: {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	KindGet3: {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// WriteChart draws the requests of recs completed per second since start
// (Unix nanoseconds), one line per request type, as a PNG to w.
func WriteChart(w io.Writer, recs []Record, start int64, title string) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "seconds since start"
	p.Y.Label.Text = "requests completed per second"
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	series := perSecond(recs, start)
	for k, counts := range series {
		if len(counts) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(counts))
		for i, c := range counts {
			xys[i] = plotter.XY{X: float64(i), Y: c}
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("liftload: chart: %w", err)
		}
		line.Color = kindColors[k]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(Kind(k).String(), line)
	}
	p.Y.Min = 0
	wt, err := p.WriterTo(10*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("liftload: chart: %w", err)
	}
	if _, err := wt.WriteTo(w); err != nil {
		return fmt.Errorf("liftload: chart: %w", err)
	}
	return nil
}

// writeChartFile writes the chart to a new file at path.
func writeChartFile(path string, recs []Record, start int64, title string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("liftload: chart: %w", err)
	}
	if err := WriteChart(f, recs, start, title); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("liftload: chart %s: %w", path, err)
	}
	return nil
}
