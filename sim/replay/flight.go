package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// FlightRecord is one production tick read from an export of the Lambda's logs.
type FlightRecord struct {
	Line     int             // line of the export
	Record   engine.Record   // the tick's flight record
	Decision json.RawMessage // the decision exactly as logged
}

// maxLine bounds one line of an export (a record with a large fleet is tens of KB).
const maxLine = 16 << 20

// ReadFlight reads an export of flight records, one JSON object per line. Each line may be
//   - the Lambda's log line: a JSON object with the engine.Record under "record";
//   - a record itself (an object with "observation" and "decision", as decisions.jsonl holds);
//   - a CloudWatch Logs export wrapping either in a string: {"timestamp":...,"message":"..."};
//   - "TIMESTAMP <json>" text as `aws logs` prints it.
//
// Lines that are not flight records (START/END/REPORT, other log lines) are counted in
// skipped. A line that looks like a record but does not parse is an error naming the line.
func ReadFlight(r io.Reader) (recs []FlightRecord, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		raw, ok, err := recordOf(line, 0)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", n, err)
		}
		if !ok {
			skipped++
			continue
		}
		var fr FlightRecord
		fr.Line = n
		if err := json.Unmarshal(raw, &fr.Record); err != nil {
			return nil, 0, fmt.Errorf("line %d: flight record: %w", n, err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, 0, fmt.Errorf("line %d: flight record: %w", n, err)
		}
		fr.Decision = fields["decision"]
		if fr.Record.Time.IsZero() {
			return nil, 0, fmt.Errorf("line %d: flight record has no time", n)
		}
		recs = append(recs, fr)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("line %d: %w", n+1, err)
	}
	return recs, skipped, nil
}

// recordOf finds the flight record in one line, unwrapping export wrappers.
func recordOf(line []byte, depth int) (json.RawMessage, bool, error) {
	if depth > 3 {
		return nil, false, nil
	}
	if len(line) == 0 || line[0] != '{' {
		// "2026-01-05T00:02:05.000Z {...}" or a plain text log line.
		i := bytes.IndexByte(line, '{')
		if i < 0 {
			return nil, false, nil
		}
		line = line[i:]
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		if depth == 0 && line[0] == '{' && bytes.Contains(line, []byte(`"decision"`)) {
			return nil, false, fmt.Errorf("malformed JSON: %v", err)
		}
		return nil, false, nil
	}
	if _, ok := fields["decision"]; ok {
		if _, ok := fields["observation"]; ok {
			return line, true, nil
		}
	}
	if rec, ok := fields["record"]; ok && len(rec) > 0 && rec[0] == '{' {
		return recordOf(rec, depth+1)
	}
	if msg, ok := fields["message"]; ok {
		var s string
		if err := json.Unmarshal(msg, &s); err == nil {
			return recordOf([]byte(strings.TrimSpace(s)), depth+1)
		}
		if len(msg) > 0 && msg[0] == '{' {
			return recordOf(msg, depth+1)
		}
	}
	return nil, false, nil
}

// Redecide re-runs engine.Decide on a flight record the way engine.Step ran it. Records
// carry the state Decide saw (decide_state) and the operation that made the tick busy; older
// records keep only the state as read at the start of the tick, and as Step reconciled an
// unfinished operation before deciding, the state Decide saw is rebuilt from their acts:
//   - a scale-up that was launching was retried: a "launch" act of that operation that
//     succeeded starts the scale-up cooldown now, none drops the operation; the tick is busy;
//   - a scale-up that was joining drops the instances that joined or were terminated this
//     tick, and the operation when none is left; the tick is not busy;
//   - a scale-down in progress makes the tick busy; its operation ends when this tick
//     terminated the instance, gave the node back (uncordon) or found the node gone.
//
// A busy tick turns any decision but a scale-up into "busy", as Step does. Dry-run ticks are
// decided on the recorded state as is. ok is false, with the reason, for ticks where Decide
// did not run (lock held by another invocation, observation or lock failures).
func Redecide(p engine.Policy, rec engine.Record) (d engine.Decision, ok bool, why string) {
	switch {
	case rec.Decision.Action == "":
		return d, false, "no decision recorded (the tick failed before deciding: " + rec.Error + ")"
	case rec.Lock == engine.LockHeld:
		return d, false, "lock held by another invocation"
	case rec.Lock != engine.LockAcquired && rec.Lock != engine.LockDryRun:
		// Not acquired (observing or locking failed) or no tick at all (the Lambda could not
		// build its clients): Decide did not run.
		return d, false, fmt.Sprintf("lock %q: %s", rec.Lock, rec.Error)
	}
	if rec.Notice != nil && rec.DecideState != nil { // a cloud notice: DecideNotice decided it
		return engine.DecideNotice(rec.Time, p, rec.Observation, *rec.DecideState, *rec.Notice).Decision, true, ""
	}
	if rec.DecideState != nil {
		// records since the engine logs what Decide saw: no reconstruction needed
		d = engine.Decide(rec.Time, p, rec.Observation, *rec.DecideState)
		if rec.BusyOperation != "" && d.Action != engine.ActionScaleUp {
			d = engine.Decision{Action: engine.ActionBusy, Reason: "finishing operation " + rec.BusyOperation,
				Workers: d.Workers, Target: d.Workers, Triggers: d.Triggers}
		}
		return d, true, ""
	}
	// Older records: rebuild the state Decide saw from the state read and the acts.
	st := rec.State.Clone()
	busy, busyOp := false, ""
	if op := st.Operation; op != nil && rec.Lock != engine.LockDryRun {
		busyOp = op.ID
		switch {
		case op.Kind == engine.OpScaleUp && op.Phase == engine.PhaseLaunching:
			// The retry either launched (the operation goes on joining) or gave up (dropped).
			busy = true
			launched := false
			for _, a := range rec.Acted {
				if a.Kind == "launch" && a.Operation == op.ID && a.Result == "ok" {
					st.LastScaleUp = rec.Time
					op.Phase, launched = engine.PhaseJoining, true
				}
			}
			if !launched {
				st.Operation = nil
			}
		case op.Kind == engine.OpScaleUp:
			gone := map[string]bool{}
			for _, a := range rec.Acted {
				if a.Operation == op.ID && (a.Kind == "joined" || a.Kind == "gone" || a.Kind == "terminate") {
					for _, id := range a.Instances {
						gone[id] = true
					}
				}
			}
			var waiting []string
			for _, id := range op.Instances {
				if !gone[id] {
					waiting = append(waiting, id)
				}
			}
			if len(waiting) == 0 {
				st.Operation = nil
			} else {
				op.Instances = waiting
			}
		case op.Kind == engine.OpScaleDown:
			// Terminated, abandoned (uncordon) or the node already gone: the operation ends.
			busy = true
			for _, a := range rec.Acted {
				if a.Operation == op.ID && (a.Kind == "terminate" && a.Result == "ok" || a.Kind == "uncordon" ||
					a.Kind == "cordon" && a.ErrorKind == string(engine.KindNotFound)) {
					st.Operation = nil
				}
			}
		}
	}
	d = engine.Decide(rec.Time, p, rec.Observation, st)
	if busy && d.Action != engine.ActionScaleUp {
		d = engine.Decision{Action: engine.ActionBusy, Reason: "finishing operation " + busyOp,
			Workers: d.Workers, Target: d.Workers, Triggers: d.Triggers}
	}
	return d, true, ""
}

// Mismatch is a production decision the engine does not reproduce.
type Mismatch struct {
	Time       time.Time
	Line       int
	Production string // the decision as logged
	Replayed   string // the decision Decide gives now
}

// Difference is a tick where another policy decides otherwise.
type Difference struct {
	Time       time.Time
	Line       int
	Production engine.Decision
	Other      engine.Decision
}

// FlightReport is the outcome of replaying flight records.
type FlightReport struct {
	Records     int      // flight records read
	Checked     int      // records re-decided
	Skipped     []string // records not re-decidable, with the reason
	Mismatches  []Mismatch
	Differences []Difference // filled when another policy was given
}

// VerifyFlight re-decides every record with the production policy and compares the result
// with the logged decision byte for byte. With other non-nil, it also decides each record
// with that policy and lists the ticks where its action, delta or node differ.
func VerifyFlight(recs []FlightRecord, production engine.Policy, other *engine.Policy) FlightReport {
	rep := FlightReport{Records: len(recs)}
	for _, fr := range recs {
		d, ok, why := Redecide(production, fr.Record)
		if !ok {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("line %d (%s): %s", fr.Line, fr.Record.Time.UTC().Format(time.RFC3339), why))
			continue
		}
		rep.Checked++
		got, want := encodeDecision(d, false), compact(fr.Decision)
		if got != want && encodeDecision(d, true) != want {
			rep.Mismatches = append(rep.Mismatches, Mismatch{Time: fr.Record.Time.UTC(), Line: fr.Line, Production: want, Replayed: got})
		}
		if other != nil {
			od, ok, _ := Redecide(*other, fr.Record)
			pd := fr.Record.Decision
			if ok && (od.Action != pd.Action || od.Delta != pd.Delta || od.Node != pd.Node) {
				rep.Differences = append(rep.Differences, Difference{Time: fr.Record.Time.UTC(), Line: fr.Line, Production: pd, Other: od})
			}
		}
	}
	return rep
}

func encodeDecision(d engine.Decision, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(d); err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// WriteFlightReport prints the report for people.
func WriteFlightReport(w io.Writer, rep FlightReport, otherName string) {
	fmt.Fprintf(w, "flight records: %d read, %d re-decided, %d skipped\n", rep.Records, rep.Checked, len(rep.Skipped))
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "  skipped %s\n", s)
	}
	if len(rep.Mismatches) == 0 {
		fmt.Fprintf(w, "reproduced: all %d production decisions, byte for byte\n", rep.Checked)
	} else {
		fmt.Fprintf(w, "MISMATCH: %d of %d production decisions not reproduced\n", len(rep.Mismatches), rep.Checked)
		for _, m := range rep.Mismatches {
			fmt.Fprintf(w, "  tick %s (line %d)\n    production: %s\n    replayed:   %s\n",
				m.Time.Format(time.RFC3339), m.Line, m.Production, m.Replayed)
		}
	}
	if otherName == "" {
		return
	}
	fmt.Fprintf(w, "policy %s decides differently at %d of %d ticks\n", otherName, len(rep.Differences), rep.Checked)
	for _, d := range rep.Differences {
		fmt.Fprintf(w, "  tick %s: production %s -> %s %s\n", d.Time.Format(time.RFC3339), describe(d.Production), otherName, describe(d.Other))
	}
}

func describe(d engine.Decision) string {
	s := string(d.Action)
	switch {
	case d.Delta > 0:
		s += fmt.Sprintf(" +%d", d.Delta)
	case d.Delta < 0:
		s += fmt.Sprintf(" %d", d.Delta)
	}
	if d.Node != "" {
		s += " " + d.Node
	}
	return s + " (" + d.Reason + ")"
}
