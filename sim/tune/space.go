// Package tune sweeps policies over scenarios: a space of policy keys (lists of values or
// ranges), every point of it (a full grid, or a seeded Latin-hypercube sample when the grid
// is larger than the budget) run on every scenario and seed beside the baselines and the
// oracle, the cost/SLO Pareto frontier of the points, and the cheapest point within an SLO
// budget as a policy file. Runs are independent worlds, so a sweep runs in parallel, in
// shards on several machines (merged afterwards) and resumes after an interruption, with the
// same bytes however it is split. docs/tune.md describes the round trip.
package tune

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Space is a parsed space file: policy keys in the file's order, each with the values the
// sweep gives it.
type Space struct {
	Dims []Dim
}

// Dim is one key of the space and its values.
type Dim struct {
	Key  string
	list []json.RawMessage // a list (or one value): the values as given, compact
	rng  *valueRange       // or a range
}

// valueRange is {"min": A, "max": B, "step": S}: integers (step 1 by default), decimals (step
// required) or durations (step "1s" by default).
type valueRange struct {
	kind     rangeKind
	min, stp float64 // integers and decimals; durations in nanoseconds
	n        int
	decimals int // digits after the point of min and step, for decimals
}

type rangeKind int

const (
	rangeInt rangeKind = iota
	rangeDecimal
	rangeDuration
)

// maxValues bounds one key's values (a range with a tiny step is a mistake, not a sweep).
const maxValues = 1_000_000

// Count is how many values the key takes.
func (d Dim) Count() int {
	if d.rng != nil {
		return d.rng.n
	}
	return len(d.list)
}

// Value returns the key's i-th value as compact JSON.
func (d Dim) Value(i int) json.RawMessage {
	if d.rng == nil {
		return d.list[i]
	}
	r := d.rng
	v := r.min + float64(i)*r.stp
	switch r.kind {
	case rangeInt:
		return json.RawMessage(strconv.FormatInt(int64(v), 10))
	case rangeDecimal:
		return json.RawMessage(strconv.FormatFloat(v, 'f', r.decimals, 64))
	}
	b, _ := json.Marshal(durationText(time.Duration(int64(r.min) + int64(i)*int64(r.stp))))
	return b
}

// durationText writes a duration as a policy file would: "5m", "1h30m", "90s" ("5m0s" is
// Go's form).
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Describe says what the key takes, for reports: "1m, 2m, 3m" or "2 .. 8 step 1 (7 values)".
func (d Dim) Describe() string {
	if d.rng == nil {
		var vs []string
		for _, v := range d.list {
			vs = append(vs, string(v))
		}
		return strings.Join(vs, ", ")
	}
	return fmt.Sprintf("%s .. %s (%d values)", d.Value(0), d.Value(d.Count()-1), d.Count())
}

// ParseSpace reads a space file: a JSON object whose keys are policy keys and whose values
// are a list of values, a range {"min", "max", "step"}, or one fixed value. Keys are kept in
// the file's order. Errors name the key.
func ParseSpace(data []byte) (Space, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Space{}, fmt.Errorf("space: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Space{}, errors.New("space: want a JSON object of policy keys, e.g. {\"scale_up_sustain\": [\"1m\", \"2m\"]}")
	}
	var sp Space
	seen := map[string]bool{}
	var errs []error
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Space{}, fmt.Errorf("space: %w", err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Space{}, fmt.Errorf("space: key %q: %w", key, err)
		}
		if seen[key] {
			errs = append(errs, fmt.Errorf("space: key %q is given twice", key))
			continue
		}
		seen[key] = true
		d, err := parseDim(key, raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("space: key %q: %w", key, err))
			continue
		}
		sp.Dims = append(sp.Dims, d)
	}
	if _, err := dec.Token(); err != nil {
		return Space{}, fmt.Errorf("space: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Space{}, errors.New("space: trailing data after the object")
	}
	if err := errors.Join(errs...); err != nil {
		return Space{}, err
	}
	if len(sp.Dims) == 0 {
		return Space{}, errors.New("space: no keys, so zero points: name at least one policy key with its values")
	}
	return sp, nil
}

func parseDim(key string, raw json.RawMessage) (Dim, error) {
	raw = bytes.TrimSpace(raw)
	switch raw[0] {
	case '[':
		var vs []json.RawMessage
		if err := json.Unmarshal(raw, &vs); err != nil {
			return Dim{}, err
		}
		if len(vs) == 0 {
			return Dim{}, errors.New("empty list: zero values, so zero points")
		}
		d := Dim{Key: key}
		seen := map[string]bool{}
		for _, v := range vs {
			c, err := compact(v)
			if err != nil {
				return Dim{}, err
			}
			if seen[string(c)] {
				return Dim{}, fmt.Errorf("value %s is listed twice", c)
			}
			seen[string(c)] = true
			d.list = append(d.list, c)
		}
		return d, nil
	case '{':
		r, err := parseRange(raw)
		if err != nil {
			return Dim{}, err
		}
		return Dim{Key: key, rng: r}, nil
	}
	c, err := compact(raw)
	if err != nil {
		return Dim{}, err
	}
	return Dim{Key: key, list: []json.RawMessage{c}}, nil
}

func compact(v json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func parseRange(raw json.RawMessage) (*valueRange, error) {
	var f struct {
		Min  json.RawMessage `json:"min"`
		Max  json.RawMessage `json:"max"`
		Step json.RawMessage `json:"step"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("a range is {\"min\": A, \"max\": B, \"step\": S} (to give a value that is an object, put it in a list): %w", err)
	}
	if f.Min == nil || f.Max == nil {
		return nil, errors.New("a range needs \"min\" and \"max\"")
	}
	if f.Min[0] == '"' {
		return durationRange(f.Min, f.Max, f.Step)
	}
	lo, loDec, err := number(f.Min)
	if err != nil {
		return nil, fmt.Errorf("min: %w", err)
	}
	hi, hiDec, err := number(f.Max)
	if err != nil {
		return nil, fmt.Errorf("max: %w", err)
	}
	r := &valueRange{kind: rangeInt, min: lo, stp: 1, decimals: max(loDec, hiDec)}
	if f.Step != nil {
		st, stDec, err := number(f.Step)
		if err != nil {
			return nil, fmt.Errorf("step: %w", err)
		}
		r.stp, r.decimals = st, max(r.decimals, stDec)
	}
	if r.decimals > 0 {
		r.kind = rangeDecimal
		if f.Step == nil {
			return nil, fmt.Errorf("a range of decimals (%s .. %s) needs a \"step\"", f.Min, f.Max)
		}
	}
	return r, r.count(hi, string(f.Min), string(f.Max))
}

func (r *valueRange) count(hi float64, lo, hiText string) error {
	if r.stp <= 0 || math.IsNaN(r.stp) {
		return fmt.Errorf("step must be > 0")
	}
	if hi < r.min {
		return fmt.Errorf("empty range: max %s is below min %s", hiText, lo)
	}
	n := math.Floor((hi-r.min)/r.stp+1e-9) + 1
	if n > maxValues {
		return fmt.Errorf("%.0f values: at most %d per key (a larger step?)", n, maxValues)
	}
	r.n = int(n)
	return nil
}

// number parses a JSON number and counts its digits after the point.
func number(raw json.RawMessage) (float64, int, error) {
	s := string(raw)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || strings.ContainsAny(s, "eE") {
		return 0, 0, fmt.Errorf("want a plain number, got %s", s)
	}
	dec := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		dec = len(s) - i - 1
	}
	return v, dec, nil
}

func durationRange(minRaw, maxRaw, stepRaw json.RawMessage) (*valueRange, error) {
	d := func(name string, raw json.RawMessage) (time.Duration, error) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("%s: want a duration string like \"90s\", got %s", name, raw)
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration (use e.g. \"90s\", \"5m\")", name, s)
		}
		return v, nil
	}
	lo, err := d("min", minRaw)
	if err != nil {
		return nil, err
	}
	hi, err := d("max", maxRaw)
	if err != nil {
		return nil, err
	}
	step := time.Second
	if stepRaw != nil {
		if step, err = d("step", stepRaw); err != nil {
			return nil, err
		}
	}
	r := &valueRange{kind: rangeDuration, min: float64(lo), stp: float64(step)}
	return r, r.count(float64(hi), lo.String(), hi.String())
}
