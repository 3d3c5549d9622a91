package replay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// ParseOpenMetrics parses OpenMetrics text (promtool tsdb dump-openmetrics, or an exposition
// with timestamps) with Prometheus' own parser (model/textparse): every sample needs a
// timestamp, in seconds; the text ends with "# EOF"; # HELP, # TYPE and # UNIT are checked as
// the spec says and otherwise unused; exemplars are ignored, and so are the _created samples
// of counters, histograms and summaries (start times, not samples).
func ParseOpenMetrics(data []byte) (*Recording, error) {
	p := textparse.NewOpenMetricsParser(data, labels.NewSymbolTable())
	b := newBuilder()
	var (
		line       int // of the entry just read: textparse returns one entry per line
		mtype      model.MetricType
		family     string
		lastSeries []byte // the series of the line before: one series spans many lines
		lset       labels.Labels
	)
	for {
		entry, err := p.Next()
		if err == io.EOF {
			return b.recording(), nil
		}
		line++
		if err != nil {
			return nil, omError(data, line, err)
		}
		switch entry {
		case textparse.EntryType:
			name, t := p.Type()
			family, mtype = string(name), t
			continue
		case textparse.EntrySeries:
		default: // help, unit
			continue
		}
		series, ts, v := p.Series()
		if !bytes.Equal(series, lastSeries) {
			p.Labels(&lset)
			lset = dropEmpty(lset)
			lastSeries = append(lastSeries[:0], series...)
			if name, dup := lset.HasDuplicateLabelNames(); dup {
				return nil, &ParseError{Line: line, Err: fmt.Errorf("label %q appears twice in %s", name, series)}
			}
		}
		if isCreated(lset.Get(labels.MetricName), family, mtype) {
			continue
		}
		if err := checkLabels(lset); err != nil {
			return nil, &ParseError{Line: line, Err: err}
		}
		if ts == nil {
			return nil, &ParseError{Line: line, Err: fmt.Errorf("sample of %s has no timestamp (a recording needs one)", SeriesName(lset))}
		}
		if err := checkTime(*ts); err != nil {
			return nil, &ParseError{Line: line, Err: err}
		}
		if err := b.add(lset, 1, *ts, v); err != nil {
			return nil, &ParseError{Line: line, Err: err}
		}
	}
}

// isCreated reports whether name is the _created (start time) sample of the family just typed.
func isCreated(name, family string, t model.MetricType) bool {
	switch t {
	case model.MetricTypeCounter, model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary:
		return name == family+"_created"
	}
	return false
}

// omError turns textparse's error on line into a ParseError that names the line, with a hint
// for the usual causes.
func omError(data []byte, line int, err error) error {
	msg := err.Error()
	switch {
	case msg == "data does not end with # EOF":
		return &ParseError{Line: line, Err: errors.New(`missing "# EOF": the OpenMetrics text is truncated`)}
	case msg == "unexpected data after # EOF":
		return &ParseError{Line: line + 1, Err: fmt.Errorf("content after \"# EOF\" (line %d)", line)}
	}
	text := lineText(data, line)
	switch {
	case text == "" || text == "\r":
		err = fmt.Errorf("empty line (OpenMetrics has none): %w", err)
	case strings.HasSuffix(text, "\r"):
		err = fmt.Errorf("the line ends with \\r\\n (OpenMetrics lines end with \\n alone): %w", err)
	case strings.HasPrefix(text, "#"):
		err = fmt.Errorf("unexpected comment %q (OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF): %w", clip(text), err)
	}
	return &ParseError{Line: line, Err: err}
}

// lineText returns line n (1-based) of data without its newline.
func lineText(data []byte, n int) string {
	for ; n > 1; n-- {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return ""
		}
		data = data[i+1:]
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	return string(data)
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
