package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Format is a recording's file format.
type Format string

const (
	FormatJSON        Format = "json"        // Prometheus query_range response(s)
	FormatOpenMetrics Format = "openmetrics" // promtool tsdb dump-openmetrics
)

// ParseError is a malformed recording: where (line) and what.
type ParseError struct {
	Line int // 1-based; 0 when the problem is not tied to one line
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// ReadFile parses the recording at path, detecting its format.
func ReadFile(path string) (*Recording, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading recording: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Detect returns the format of a recording: JSON when its first non-blank byte is '{',
// else OpenMetrics.
func Detect(data []byte) Format {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return FormatJSON
	}
	return FormatOpenMetrics
}

// Parse parses a recording in either format.
func Parse(data []byte) (*Recording, error) {
	if Detect(data) == FormatJSON {
		return ParseJSON(data)
	}
	return ParseOpenMetrics(data)
}

// ---- query_range JSON ----

type jsonSeries struct {
	Metric     map[string]string   `json:"metric"`
	Values     [][]json.RawMessage `json:"values"`
	Histograms json.RawMessage     `json:"histograms"`
}

// ParseJSON parses one or more Prometheus query_range (or range-vector query) responses,
// one after the other: {"status":"success","data":{"resultType":"matrix","result":[...]}}.
// A series split over several responses (chunks) is joined.
func ParseJSON(data []byte) (*Recording, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	b := newBuilder()
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n")) }
	fail := func(off int64, err error) error { return &ParseError{Line: lineAt(off), Err: err} }
	docs := 0
	for {
		// Skip to the next document or the end.
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, jsonFail(data, dec, err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return nil, fail(dec.InputOffset(), fmt.Errorf("want a JSON object (a query_range response), got %v", tok))
		}
		docs++
		var status, errText string
		sawData := false
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				return nil, jsonFail(data, dec, err)
			}
			switch key {
			case "status":
				if err := dec.Decode(&status); err != nil {
					return nil, jsonFail(data, dec, err)
				}
			case "error", "errorType":
				var s string
				if err := dec.Decode(&s); err != nil {
					return nil, jsonFail(data, dec, err)
				}
				errText = strings.TrimSpace(errText + " " + s)
			case "data":
				sawData = true
				if err := parseJSONData(dec, b, docs, fail, data); err != nil {
					return nil, err
				}
			default: // warnings, infos, stats: not needed
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, jsonFail(data, dec, err)
				}
			}
		}
		if _, err := dec.Token(); err != nil { // closing '}'
			return nil, jsonFail(data, dec, err)
		}
		if status != "success" {
			return nil, fail(dec.InputOffset(), fmt.Errorf("response %d: status is %q, not \"success\" %s", docs, status, errText))
		}
		if !sawData {
			return nil, fail(dec.InputOffset(), fmt.Errorf("response %d has no \"data\"", docs))
		}
	}
	if docs == 0 {
		return nil, &ParseError{Err: errors.New("empty file: no query_range response")}
	}
	return b.recording(), nil
}

func parseJSONData(dec *json.Decoder, b *builder, doc int, fail func(int64, error) error, data []byte) error {
	if tok, err := dec.Token(); err != nil {
		return jsonFail(data, dec, err)
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fail(dec.InputOffset(), errors.New(`"data" must be an object`))
	}
	resultType := ""
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return jsonFail(data, dec, err)
		}
		switch key {
		case "resultType":
			if err := dec.Decode(&resultType); err != nil {
				return jsonFail(data, dec, err)
			}
			if resultType != "matrix" {
				return fail(dec.InputOffset(), fmt.Errorf("resultType is %q: a recording needs a \"matrix\" (query_range of a selector)", resultType))
			}
		case "result":
			if tok, err := dec.Token(); err != nil {
				return jsonFail(data, dec, err)
			} else if d, ok := tok.(json.Delim); !ok || d != '[' {
				return fail(dec.InputOffset(), errors.New(`"result" must be a list of series`))
			}
			for dec.More() {
				start := dec.InputOffset()
				// InputOffset points at the separator before the value: move to the value.
				for start < int64(len(data)) && strings.ContainsRune(", \t\r\n", rune(data[start])) {
					start++
				}
				var s jsonSeries
				if err := dec.Decode(&s); err != nil {
					return jsonFail(data, dec, err)
				}
				if err := addJSONSeries(b, doc, s); err != nil {
					return fail(start, err)
				}
			}
			if _, err := dec.Token(); err != nil {
				return jsonFail(data, dec, err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return jsonFail(data, dec, err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return jsonFail(data, dec, err)
	}
	if resultType == "" {
		return fail(dec.InputOffset(), errors.New(`"data" has no "resultType"`))
	}
	return nil
}

func addJSONSeries(b *builder, doc int, s jsonSeries) error {
	lset := dropEmpty(labels.FromMap(s.Metric))
	if len(s.Histograms) > 0 && string(s.Histograms) != "null" {
		return fmt.Errorf("series %s: native histograms are not supported", SeriesName(lset))
	}
	if err := checkLabels(lset); err != nil {
		return err
	}
	for i, pair := range s.Values {
		if len(pair) != 2 {
			return fmt.Errorf("series %s: value %d: want [timestamp, \"value\"], got %d elements", SeriesName(lset), i, len(pair))
		}
		t, err := parseSeconds(strings.TrimSpace(string(pair[0])))
		if err != nil {
			return fmt.Errorf("series %s: value %d: timestamp %s: %w", SeriesName(lset), i, pair[0], err)
		}
		var vs string
		if err := json.Unmarshal(pair[1], &vs); err != nil {
			return fmt.Errorf("series %s: value %d: want the value as a JSON string, got %s", SeriesName(lset), i, pair[1])
		}
		v, err := parseValue(vs)
		if err != nil {
			return fmt.Errorf("series %s: value %d: %w", SeriesName(lset), i, err)
		}
		if err := b.add(lset, doc, t, v); err != nil {
			return err
		}
	}
	return nil
}

func jsonFail(data []byte, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		off := dec.InputOffset()
		if se != nil {
			off = se.Offset
		}
		line := 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return &ParseError{Line: line, Err: errors.New("unexpected end of file: the JSON is truncated")}
		}
		return &ParseError{Line: line, Err: fmt.Errorf("malformed JSON: %v", err)}
	}
	return &ParseError{Line: 1 + bytes.Count(data[:min(int(dec.InputOffset()), len(data))], []byte("\n")), Err: err}
}

// ---- OpenMetrics text ----

// ParseOpenMetrics parses OpenMetrics text as `promtool tsdb dump-openmetrics` writes it:
// `name{label="value",...} value timestamp` lines, timestamps in seconds, ending with
// "# EOF". # TYPE, # HELP and # UNIT lines are accepted and ignored; exemplars are ignored.
func ParseOpenMetrics(data []byte) (*Recording, error) {
	b := newBuilder()
	lines := strings.Split(string(data), "\n")
	eof := 0
	for i, line := range lines {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if eof > 0 {
			if strings.TrimSpace(line) != "" {
				return nil, &ParseError{Line: n, Err: fmt.Errorf("content after \"# EOF\" (line %d)", eof)}
			}
			continue
		}
		switch {
		case strings.TrimSpace(line) == "":
			continue
		case line == "# EOF":
			eof = n
			continue
		case strings.HasPrefix(line, "#"):
			f := strings.Fields(line)
			if len(f) >= 3 && (f[1] == "TYPE" || f[1] == "HELP" || f[1] == "UNIT") {
				continue
			}
			return nil, &ParseError{Line: n, Err: fmt.Errorf("unexpected comment %q (only # TYPE, # HELP, # UNIT and # EOF)", clip(line))}
		}
		lset, t, v, err := parseSampleLine(line)
		if err != nil {
			return nil, &ParseError{Line: n, Err: err}
		}
		if err := checkLabels(lset); err != nil {
			return nil, &ParseError{Line: n, Err: err}
		}
		if err := b.add(lset, 1, t, v); err != nil {
			return nil, &ParseError{Line: n, Err: err}
		}
	}
	if eof == 0 {
		return nil, &ParseError{Line: len(lines), Err: errors.New(`missing "# EOF": the OpenMetrics text is truncated`)}
	}
	return b.recording(), nil
}

// parseSampleLine parses `name{a="b",c="d"} value timestamp [# exemplar]`.
func parseSampleLine(line string) (labels.Labels, int64, float64, error) {
	i := 0
	for i < len(line) && (line[i] == '_' || line[i] == ':' || line[i] >= 'a' && line[i] <= 'z' ||
		line[i] >= 'A' && line[i] <= 'Z' || i > 0 && line[i] >= '0' && line[i] <= '9') {
		i++
	}
	if i == 0 {
		return labels.EmptyLabels(), 0, 0, fmt.Errorf("want a metric name at the start of %q", clip(line))
	}
	lb := labels.NewScratchBuilder(8)
	lb.Add(labels.MetricName, line[:i])
	names := map[string]bool{}
	if i < len(line) && line[i] == '{' {
		i++
		for {
			for i < len(line) && (line[i] == ' ' || line[i] == ',') {
				i++
			}
			if i < len(line) && line[i] == '}' {
				i++
				break
			}
			j := i
			for j < len(line) && line[j] != '=' && line[j] != '}' && line[j] != ',' {
				j++
			}
			name := strings.TrimSpace(line[i:j])
			if j >= len(line) || line[j] != '=' {
				return labels.EmptyLabels(), 0, 0, fmt.Errorf("label %q has no value in %q", name, clip(line))
			}
			if !validLabelName(name) {
				return labels.EmptyLabels(), 0, 0, fmt.Errorf("invalid label name %q", name)
			}
			if names[name] {
				return labels.EmptyLabels(), 0, 0, fmt.Errorf("label %q appears twice", name)
			}
			names[name] = true
			j++
			if j >= len(line) || line[j] != '"' {
				return labels.EmptyLabels(), 0, 0, fmt.Errorf("value of label %q must be a quoted string", name)
			}
			k := j + 1
			for k < len(line) && line[k] != '"' {
				if line[k] == '\\' {
					k++
				}
				k++
			}
			if k >= len(line) {
				return labels.EmptyLabels(), 0, 0, fmt.Errorf("value of label %q is not closed", name)
			}
			val, err := strconv.Unquote(line[j : k+1])
			if err != nil {
				return labels.EmptyLabels(), 0, 0, fmt.Errorf("value of label %q: bad escape in %s", name, line[j:k+1])
			}
			if val != "" { // an empty value is an absent label
				lb.Add(name, val)
			}
			i = k + 1
		}
	}
	rest := line[i:]
	if h := strings.Index(rest, " # "); h >= 0 { // exemplar
		rest = rest[:h]
	}
	f := strings.Fields(rest)
	switch {
	case len(f) == 0:
		return labels.EmptyLabels(), 0, 0, fmt.Errorf("sample has no value: %q", clip(line))
	case len(f) == 1:
		return labels.EmptyLabels(), 0, 0, fmt.Errorf("sample has no timestamp (a recording needs one): %q", clip(line))
	case len(f) > 2:
		return labels.EmptyLabels(), 0, 0, fmt.Errorf("want `series value timestamp`, got %d fields after the series: %q", len(f), clip(line))
	}
	v, err := parseValue(f[0])
	if err != nil {
		return labels.EmptyLabels(), 0, 0, err
	}
	t, err := parseSeconds(f[1])
	if err != nil {
		return labels.EmptyLabels(), 0, 0, fmt.Errorf("timestamp %q: %w", f[1], err)
	}
	lb.Sort()
	return lb.Labels(), t, v, nil
}

// maxSeconds rejects timestamps in milliseconds passed as seconds (year 5138 onwards).
const maxSeconds = 1e11

// parseSeconds reads a timestamp in seconds (decimal, up to millisecond precision) and
// returns milliseconds, exactly for plain decimals.
func parseSeconds(s string) (int64, error) {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	plain := intPart != "" && strings.Trim(intPart, "0123456789") == "" &&
		(!hasFrac || frac != "" && strings.Trim(frac, "0123456789") == "")
	var ms int64
	if plain {
		sec, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil || sec > maxSeconds {
			return 0, fmt.Errorf("%s is not a timestamp in seconds (milliseconds? OpenMetrics and the HTTP API use seconds)", s)
		}
		if len(frac) > 3 && strings.Trim(frac[3:], "0") != "" {
			return 0, fmt.Errorf("%s has sub-millisecond precision", s)
		}
		f, _ := strconv.ParseInt((frac + "000")[:3], 10, 64)
		ms = sec*1000 + f
	} else {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, fmt.Errorf("%s is not a timestamp in seconds", s)
		}
		if f > maxSeconds {
			return 0, fmt.Errorf("%s is not a timestamp in seconds (milliseconds? OpenMetrics and the HTTP API use seconds)", s)
		}
		ms = int64(math.Round(f * 1000))
	}
	return ms, nil
}

func parseValue(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q is not a number", s)
	}
	return v, nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:117] + "..."
	}
	return s
}
