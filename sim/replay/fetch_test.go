package replay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// fakeRange answers query_range from a recording, as Prometheus would at raw sample times,
// and records the requests.
type fakeRange struct {
	rec   *Recording
	calls []v1.Range
	fail  error
}

func (f *fakeRange) QueryRange(_ context.Context, q string, r v1.Range, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	f.calls = append(f.calls, r)
	if f.fail != nil {
		return nil, nil, nil, f.fail
	}
	var m model.Matrix
	for _, s := range f.rec.Window(r.Start, r.End).Series {
		if s.Labels.Get("__name__") != q {
			continue
		}
		ss := &model.SampleStream{Metric: model.Metric{}}
		s.Labels.Range(func(l labels.Label) { ss.Metric[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
		for _, smp := range s.Samples {
			ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(smp.T), Value: model.SampleValue(smp.V)})
		}
		m = append(m, ss)
	}
	return m, nil, nil, nil
}

func TestFetchChunks(t *testing.T) {
	day := shipped(t, "diurnal-day")
	from := time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)
	to := from.Add(3 * time.Hour)
	want := day.Window(from, to)
	f := &fakeRange{rec: day}
	var progress []int
	got, err := Fetch(context.Background(), f, FetchConfig{From: from, To: to, Step: 30 * time.Second, Chunk: time.Hour,
		Progress: func(done, total int) { progress = append(progress, done*100+total) }})
	if err != nil {
		t.Fatal(err)
	}
	if d := want.Diff(got); d != "" {
		t.Errorf("fetched recording differs: %s", d)
	}
	// 3 h in 1 h chunks, bounds inclusive: 4 chunks per metric, none asking a time twice.
	if len(f.calls) != 5*4 {
		t.Fatalf("%d requests, want 20", len(f.calls))
	}
	for i := 1; i < 4; i++ {
		prev, cur := f.calls[i-1], f.calls[i]
		if cur.Start != prev.End.Add(30*time.Second) {
			t.Errorf("chunk %d starts at %s, previous ended at %s", i, cur.Start, prev.End)
		}
	}
	if last := progress[len(progress)-1]; last != 20*100+20 {
		t.Errorf("last progress %d/%d", last/100, last%100)
	}
	// A step of 1s never asks more than 10,000 points at once.
	f2 := &fakeRange{rec: day}
	if _, err := Fetch(context.Background(), f2, FetchConfig{From: from, To: to, Step: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, c := range f2.calls {
		if n := c.End.Sub(c.Start) / time.Second; n >= 11000 {
			t.Errorf("request of %d points", n)
		}
	}
}

func TestFetchErrors(t *testing.T) {
	from := time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC)
	_, err := Fetch(context.Background(), &fakeRange{rec: &Recording{}}, FetchConfig{From: from, To: from.Add(-time.Hour), Step: 0})
	if err == nil || !strings.Contains(err.Error(), "step must be positive") || !strings.Contains(err.Error(), "must be after from") {
		t.Errorf("bad config: %v", err)
	}
	_, err = Fetch(context.Background(), &fakeRange{fail: errors.New("connection refused")}, FetchConfig{From: from, To: from.Add(time.Hour), Step: 15 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "query_range node_cpu_seconds_total from 2026-01-05T06:00:00Z") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("failing server: %v", err)
	}
}
