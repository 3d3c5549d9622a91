package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Policy holds every threshold, window, step, bound and cooldown of the scaling rules.
// DefaultPolicy returns the product brief's values; every field can be overridden.
type Policy struct {
	MinWorkers        int // lower bound on workers (ready + launching)
	MaxWorkers        int // upper bound on workers (ready + launching)
	ControlPlaneNodes int // nodes in count(kube_node_info) that are not workers (the K3s master)

	ScaleUpCPUPercent      float64       // scale up when CPU stays above this ...
	ScaleUpSustain         time.Duration // ... for this long (also the pending-pods window)
	ScaleUpMemoryPercent   float64       // scale up when memory is above this
	ScaleDownCPUPercent    float64       // scale down only when CPU stays below this ...
	ScaleDownSustain       time.Duration // ... for this long
	ScaleDownMemoryPercent float64       // scale down only when memory is below this

	ScaleUpStep    int // workers added by an ordinary scale-up
	ScaleUpMaxStep int // workers added when one node clearly is not enough (see Decide)

	ScaleUpCooldown   time.Duration // no scaling of any kind this long after a scale-up
	ScaleDownCooldown time.Duration // no scale-down this long after a scale-down

	MaxMetricAge time.Duration // newest node-exporter sample older than this: data is stale

	NodeReadyTimeout time.Duration // a launched worker not Ready after this is terminated
	DrainTimeout     time.Duration // a drain not finished after this is abandoned (uncordon)

	Queries Queries

	// Preset names the preset the policy starts from ("brief", the default, or "responsive").
	Preset string
	// Rules are the rules beyond the brief's, all off in the brief preset (rules.go).
	Rules
}

// DefaultPolicy returns the product brief's policy: the brief preset.
func DefaultPolicy() Policy {
	return Policy{
		Preset:                 PresetBrief,
		MinWorkers:             2,
		MaxWorkers:             10,
		ControlPlaneNodes:      1,
		ScaleUpCPUPercent:      70,
		ScaleUpSustain:         3 * time.Minute,
		ScaleUpMemoryPercent:   75,
		ScaleDownCPUPercent:    30,
		ScaleDownSustain:       10 * time.Minute,
		ScaleDownMemoryPercent: 50,
		ScaleUpStep:            1,
		ScaleUpMaxStep:         2,
		ScaleUpCooldown:        5 * time.Minute,
		ScaleDownCooldown:      10 * time.Minute,
		MaxMetricAge:           2 * time.Minute,
		NodeReadyTimeout:       10 * time.Minute,
		DrainTimeout:           5 * time.Minute,
		Queries:                DefaultQueries(),
		Rules:                  briefRules(),
	}
}

// Validate reports every problem of the policy at once.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.MinWorkers < 0 {
		bad("min_workers must be >= 0, got %d", p.MinWorkers)
	}
	if p.MaxWorkers < 1 {
		bad("max_workers must be >= 1, got %d", p.MaxWorkers)
	}
	if p.MinWorkers > p.MaxWorkers {
		bad("min_workers (%d) must not exceed max_workers (%d)", p.MinWorkers, p.MaxWorkers)
	}
	if p.ControlPlaneNodes < 0 {
		bad("control_plane_nodes must be >= 0, got %d", p.ControlPlaneNodes)
	}
	pct := func(name string, v float64) {
		if math.IsNaN(v) || v <= 0 || v >= 100 {
			bad("%s must be in (0, 100), got %v", name, v)
		}
	}
	pct("scale_up_cpu_percent", p.ScaleUpCPUPercent)
	pct("scale_up_memory_percent", p.ScaleUpMemoryPercent)
	pct("scale_down_cpu_percent", p.ScaleDownCPUPercent)
	pct("scale_down_memory_percent", p.ScaleDownMemoryPercent)
	if p.ScaleDownCPUPercent >= p.ScaleUpCPUPercent {
		bad("scale_down_cpu_percent (%v) must be below scale_up_cpu_percent (%v), or the policy flaps", p.ScaleDownCPUPercent, p.ScaleUpCPUPercent)
	}
	if p.ScaleDownMemoryPercent >= p.ScaleUpMemoryPercent {
		bad("scale_down_memory_percent (%v) must be below scale_up_memory_percent (%v), or the policy flaps", p.ScaleDownMemoryPercent, p.ScaleUpMemoryPercent)
	}
	if p.ScaleUpStep < 1 {
		bad("scale_up_step must be >= 1, got %d", p.ScaleUpStep)
	}
	if p.ScaleUpMaxStep < p.ScaleUpStep {
		bad("scale_up_max_step (%d) must be >= scale_up_step (%d)", p.ScaleUpMaxStep, p.ScaleUpStep)
	}
	dur := func(name string, d time.Duration, min time.Duration) {
		if d < min {
			bad("%s must be >= %v, got %v", name, min, d)
		}
	}
	dur("scale_up_sustain", p.ScaleUpSustain, 30*time.Second)
	dur("scale_down_sustain", p.ScaleDownSustain, 30*time.Second)
	dur("scale_up_cooldown", p.ScaleUpCooldown, 0)
	dur("scale_down_cooldown", p.ScaleDownCooldown, 0)
	dur("max_metric_age", p.MaxMetricAge, 15*time.Second)
	dur("node_ready_timeout", p.NodeReadyTimeout, time.Minute)
	dur("drain_timeout", p.DrainTimeout, 30*time.Second)
	if err := p.Queries.validate(p.ReadingNames()); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, p.Rules.validate(p)...)
	return errors.Join(errs...)
}

// policyFile is the JSON form of a policy: snake_case keys, durations as Go duration
// strings ("5m", "90s"). Absent keys keep the base policy's value.
type policyFile struct {
	Preset                 *string         `json:"preset,omitempty"`
	MinWorkers             *int            `json:"min_workers"`
	MaxWorkers             *int            `json:"max_workers"`
	ControlPlaneNodes      *int            `json:"control_plane_nodes"`
	ScaleUpCPUPercent      *float64        `json:"scale_up_cpu_percent"`
	ScaleUpSustain         *string         `json:"scale_up_sustain"`
	ScaleUpMemoryPercent   *float64        `json:"scale_up_memory_percent"`
	ScaleDownCPUPercent    *float64        `json:"scale_down_cpu_percent"`
	ScaleDownSustain       *string         `json:"scale_down_sustain"`
	ScaleDownMemoryPercent *float64        `json:"scale_down_memory_percent"`
	ScaleUpStep            *int            `json:"scale_up_step"`
	ScaleUpMaxStep         *int            `json:"scale_up_max_step"`
	ScaleUpCooldown        *string         `json:"scale_up_cooldown"`
	ScaleDownCooldown      *string         `json:"scale_down_cooldown"`
	MaxMetricAge           *string         `json:"max_metric_age"`
	NodeReadyTimeout       *string         `json:"node_ready_timeout"`
	DrainTimeout           *string         `json:"drain_timeout"`
	Queries                *map[string]any `json:"queries"`
	rulesFile
}

// ParsePolicy reads JSON overrides on top of base. A "preset" key starts from that preset
// instead of base. Unknown keys, wrong types, bad durations and unknown presets are errors
// naming the key; the result is validated.
func ParsePolicy(r io.Reader, base Policy) (Policy, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return base, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f policyFile
	if err := dec.Decode(&f); err != nil {
		return base, fmt.Errorf("policy: %w", jsonError(data, err))
	}
	p := base
	if f.Preset != nil {
		pp, err := PresetPolicy(*f.Preset)
		if err != nil {
			return base, fmt.Errorf("policy: preset: %w", err)
		}
		p = pp
	}
	var errs []error
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setF := func(dst *float64, v *float64) {
		if v != nil {
			*dst = *v
		}
	}
	setD := func(name string, dst *time.Duration, v *string) {
		if v == nil {
			return
		}
		d, err := time.ParseDuration(*v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration (use e.g. \"90s\", \"5m\")", name, *v))
			return
		}
		*dst = d
	}
	setInt(&p.MinWorkers, f.MinWorkers)
	setInt(&p.MaxWorkers, f.MaxWorkers)
	setInt(&p.ControlPlaneNodes, f.ControlPlaneNodes)
	setF(&p.ScaleUpCPUPercent, f.ScaleUpCPUPercent)
	setD("scale_up_sustain", &p.ScaleUpSustain, f.ScaleUpSustain)
	setF(&p.ScaleUpMemoryPercent, f.ScaleUpMemoryPercent)
	setF(&p.ScaleDownCPUPercent, f.ScaleDownCPUPercent)
	setD("scale_down_sustain", &p.ScaleDownSustain, f.ScaleDownSustain)
	setF(&p.ScaleDownMemoryPercent, f.ScaleDownMemoryPercent)
	setInt(&p.ScaleUpStep, f.ScaleUpStep)
	setInt(&p.ScaleUpMaxStep, f.ScaleUpMaxStep)
	setD("scale_up_cooldown", &p.ScaleUpCooldown, f.ScaleUpCooldown)
	setD("scale_down_cooldown", &p.ScaleDownCooldown, f.ScaleDownCooldown)
	setD("max_metric_age", &p.MaxMetricAge, f.MaxMetricAge)
	setD("node_ready_timeout", &p.NodeReadyTimeout, f.NodeReadyTimeout)
	setD("drain_timeout", &p.DrainTimeout, f.DrainTimeout)
	if f.Queries != nil {
		for k, v := range *f.Queries {
			s, ok := v.(string)
			if !ok {
				errs = append(errs, fmt.Errorf("queries.%s: want a PromQL string, got %T", k, v))
				continue
			}
			if err := p.Queries.Set(k, s); err != nil {
				errs = append(errs, fmt.Errorf("queries.%s: %w", k, err))
			}
		}
	}
	errs = append(errs, f.rulesFile.apply(&p.Rules)...)
	if err := errors.Join(errs...); err != nil {
		return base, fmt.Errorf("policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return base, fmt.Errorf("policy: invalid:\n%w", err)
	}
	return p, nil
}

// MarshalJSON writes the policy in the same form ParsePolicy reads: every brief key, the
// preset when it is not the brief, and the rules' keys (and queries) that are on.
func (p Policy) MarshalJSON() ([]byte, error) {
	s := func(d time.Duration) *string { v := d.String(); return &v }
	q := map[string]any{}
	for _, n := range p.ReadingNames() {
		q[n] = p.Queries.Get(n)
	}
	def := DefaultQueries()
	for _, n := range RuleQueryNames() { // an override kept for a rule that is off
		if v := p.Queries.Get(n); v != def.Get(n) {
			q[n] = v
		}
	}
	var preset *string
	base := briefRules()
	if p.Preset != "" && p.Preset != PresetBrief {
		preset = &p.Preset
		if pp, err := PresetPolicy(p.Preset); err == nil {
			base = pp.Rules
		}
	}
	return json.Marshal(policyFile{
		Preset: preset, rulesFile: p.Rules.file(base),
		MinWorkers: &p.MinWorkers, MaxWorkers: &p.MaxWorkers, ControlPlaneNodes: &p.ControlPlaneNodes,
		ScaleUpCPUPercent: &p.ScaleUpCPUPercent, ScaleUpSustain: s(p.ScaleUpSustain),
		ScaleUpMemoryPercent: &p.ScaleUpMemoryPercent, ScaleDownCPUPercent: &p.ScaleDownCPUPercent,
		ScaleDownSustain: s(p.ScaleDownSustain), ScaleDownMemoryPercent: &p.ScaleDownMemoryPercent,
		ScaleUpStep: &p.ScaleUpStep, ScaleUpMaxStep: &p.ScaleUpMaxStep,
		ScaleUpCooldown: s(p.ScaleUpCooldown), ScaleDownCooldown: s(p.ScaleDownCooldown),
		MaxMetricAge: s(p.MaxMetricAge), NodeReadyTimeout: s(p.NodeReadyTimeout), DrainTimeout: s(p.DrainTimeout),
		Queries: &q,
	})
}

// jsonError adds line and column to a JSON syntax or type error.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
		if te.Field != "" {
			err = fmt.Errorf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("unexpected end of file after line %d: an object or list is not closed", bytes.Count(data, []byte("\n"))+1)
	}
	if strings.HasPrefix(err.Error(), "json: unknown field") {
		return fmt.Errorf("unknown key %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	if off < 0 {
		return err
	}
	line, col := 1, 1
	for _, b := range data[:min(int(off), len(data))] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// JSONError is jsonError for other packages that load JSON files (scenarios, records).
func JSONError(data []byte, err error) error { return jsonError(data, err) }
