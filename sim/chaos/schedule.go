package chaos

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/smartscale/smartscale/sim/event"
)

// Fault is one scheduled fault: a kind active from At to At+For (offsets from the start of
// the run). Param picks kind-specific details (which offering, which queries, how long a
// lag) so a schedule alone reproduces a run.
type Fault struct {
	Kind  string
	At    time.Duration
	For   time.Duration
	Param uint32
}

// Active reports whether the fault is active at offset off.
func (f Fault) Active(off time.Duration) bool { return off >= f.At && off < f.At+f.For }

// End is the offset at which the fault stops.
func (f Fault) End() time.Duration { return f.At + f.For }

// String writes the fault as kind@start+length#param, e.g. "ec2-capacity@10m+5m#3".
func (f Fault) String() string {
	return fmt.Sprintf("%s@%s+%s#%d", f.Kind, shortDur(f.At), shortDur(f.For), f.Param)
}

func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Schedule is a list of faults, the reproducible input of a chaos run.
type Schedule []Fault

// String writes the schedule in the form ParseSchedule reads (comma-separated faults).
func (s Schedule) String() string {
	parts := make([]string, len(s))
	for i, f := range s {
		parts[i] = f.String()
	}
	return strings.Join(parts, ",")
}

// Kinds lists the distinct kinds of the schedule, in catalogue order.
func (s Schedule) Kinds() []string {
	has := map[string]bool{}
	for _, f := range s {
		has[f.Kind] = true
	}
	var out []string
	for _, n := range Names() {
		if has[n] {
			out = append(out, n)
		}
	}
	return out
}

// Without returns the schedule less every fault of kind.
func (s Schedule) Without(kind string) Schedule {
	var out Schedule
	for _, f := range s {
		if f.Kind != kind {
			out = append(out, f)
		}
	}
	return out
}

// IsSchedule reports whether spec is an explicit schedule (kind@start+length...) rather
// than a list of kinds.
func IsSchedule(spec string) bool { return strings.Contains(spec, "@") }

// ParseSchedule reads what Schedule.String writes.
func ParseSchedule(spec string) (Schedule, error) {
	var s Schedule
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, rest, ok := strings.Cut(part, "@")
		if !ok || !Known(kind) {
			return nil, fmt.Errorf("fault %q: want KIND@START+LENGTH[#PARAM] with a known kind (see -chaos list)", part)
		}
		rest, param, hasParam := strings.Cut(rest, "#")
		start, length, ok := strings.Cut(rest, "+")
		if !ok {
			return nil, fmt.Errorf("fault %q: want KIND@START+LENGTH", part)
		}
		f := Fault{Kind: kind}
		var err error
		if f.At, err = time.ParseDuration(start); err != nil || f.At < 0 {
			return nil, fmt.Errorf("fault %q: bad start %q", part, start)
		}
		if f.For, err = time.ParseDuration(length); err != nil || f.For <= 0 {
			return nil, fmt.Errorf("fault %q: bad length %q", part, length)
		}
		if hasParam {
			p, err := strconv.ParseUint(param, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("fault %q: bad param %q", part, param)
			}
			f.Param = uint32(p)
		}
		s = append(s, f)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("empty schedule %q", spec)
	}
	return s, nil
}

// Draw draws a schedule for the given kinds over a run of length dur from the seed's own
// "chaos" stream: one window per kind (two for runs of an hour or more), 3-10 minutes long
// (a spot interruption's window is its 2 minutes' notice), never in the first 4 minutes.
func Draw(seed uint64, kinds []string, dur time.Duration) Schedule {
	rng := event.Stream(seed, "chaos")
	var s Schedule
	for _, k := range kinds {
		n := 1
		if dur >= time.Hour {
			n = 2
		}
		for range n {
			length := time.Duration(3+rng.IntN(8)) * time.Minute
			if k == SpotInterruption {
				length = 2 * time.Minute
			}
			first := 4 * time.Minute
			last := dur - length - 2*time.Minute
			at := first
			if last > first {
				at = first + time.Duration(rng.Int64N(int64((last-first)/time.Second)))*time.Second
			}
			s = append(s, Fault{Kind: k, At: at, For: length, Param: rng.Uint32()})
		}
	}
	return s
}
