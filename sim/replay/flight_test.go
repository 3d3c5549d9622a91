package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/world"
)

func readShippedFlight(t *testing.T) ([]byte, []FlightRecord) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(flightDir, flightFile))
	if err != nil {
		t.Fatal(err)
	}
	recs, skipped, err := ReadFlight(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if skipped == 0 {
		t.Error("the sample export's START/REPORT lines were not skipped")
	}
	return data, recs
}

// TestFlightReproducesEveryDecision is the flight recorder's promise (a): the engine
// re-decides every production tick of the sample export byte for byte.
func TestFlightReproducesEveryDecision(t *testing.T) {
	_, recs := readShippedFlight(t)
	rep := VerifyFlight(recs, engine.DefaultPolicy(), nil)
	if rep.Checked < 40 || rep.Checked != rep.Records {
		t.Fatalf("re-decided %d of %d records (skipped %v)", rep.Checked, rep.Records, rep.Skipped)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("tick %s (line %d):\nproduction %s\nreplayed   %s", m.Time, m.Line, m.Production, m.Replayed)
	}
	// The sample holds the cases Redecide rebuilds: scale-ups, scale-downs, busy ticks.
	seen := map[engine.Action]int{}
	for _, r := range recs {
		seen[r.Record.Decision.Action]++
	}
	for _, a := range []engine.Action{engine.ActionScaleUp, engine.ActionScaleDown, engine.ActionBusy, engine.ActionCooldown} {
		if seen[a] == 0 {
			t.Errorf("the sample export has no %s tick: %v", a, seen)
		}
	}
}

// TestFlightGeneratorIsDeterministic: the sample export regenerates byte for byte (the
// shipped file may be older than the engine: like a real export, it must still re-decide).
func TestFlightGeneratorIsDeterministic(t *testing.T) {
	a, b := generateFlight(t), generateFlight(t)
	if !bytes.Equal(a, b) {
		t.Error("two generations of the flight sample differ")
	}
	recs, _, err := ReadFlight(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if rep := VerifyFlight(recs, engine.DefaultPolicy(), nil); len(rep.Mismatches) > 0 || rep.Checked == 0 {
		t.Errorf("a fresh export: %d re-decided, %d mismatches", rep.Checked, len(rep.Mismatches))
	}
}

// TestFlightReportsTampering: a production decision that the engine would not take (here,
// a record whose decision was edited, and one whose observation was) is reported with its
// tick and both decisions.
func TestFlightReportsTampering(t *testing.T) {
	data, recs := readShippedFlight(t)
	lines := strings.Split(string(data), "\n")
	// Tamper with the first scale-up.
	var target FlightRecord
	for _, r := range recs {
		if r.Record.Decision.Action == engine.ActionScaleUp {
			target = r
			break
		}
	}
	if target.Line == 0 {
		t.Fatal("no scale-up in the sample")
	}
	// claim it added 7 more workers than it did
	line := lines[target.Line-1]
	orig, fake := target.Record.Decision.Delta, target.Record.Decision.Delta+7
	tampered := strings.Replace(line, fmt.Sprintf(`\"action\":\"scale_up\",\"delta\":%d`, orig), fmt.Sprintf(`\"action\":\"scale_up\",\"delta\":%d`, fake), 1)
	if tampered == line {
		tampered = strings.Replace(line, fmt.Sprintf(`"action":"scale_up","delta":%d`, orig), fmt.Sprintf(`"action":"scale_up","delta":%d`, fake), 1)
	}
	if tampered == line {
		t.Fatalf("could not tamper with line %d", target.Line)
	}
	lines[target.Line-1] = tampered
	recs2, _, err := ReadFlight(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	rep := VerifyFlight(recs2, engine.DefaultPolicy(), nil)
	if len(rep.Mismatches) != 1 {
		t.Fatalf("%d mismatches, want exactly the tampered tick", len(rep.Mismatches))
	}
	m := rep.Mismatches[0]
	if m.Line != target.Line || !m.Time.Equal(target.Record.Time) {
		t.Errorf("mismatch at line %d %s, want line %d %s", m.Line, m.Time, target.Line, target.Record.Time)
	}
	if !strings.Contains(m.Production, fmt.Sprintf(`"delta":%d`, fake)) || !strings.Contains(m.Replayed, fmt.Sprintf(`"delta":%d`, orig)) {
		t.Errorf("mismatch shows production %s, replayed %s", m.Production, m.Replayed)
	}
	var out bytes.Buffer
	WriteFlightReport(&out, rep, "")
	for _, w := range []string{"MISMATCH: 1 of", "tick " + m.Time.Format("2006-01-02T15:04:05Z"), "production:", "replayed:"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}

	// A changed observation (CPU far lower) no longer explains the logged scale-up either.
	rec := target.Record
	rec.Observation.Readings.CPUHighMin.Value = 10
	rec.Observation.Readings.PendingMin.Value = 0
	rec.Observation.Readings.Memory.Value = 20
	rep = VerifyFlight([]FlightRecord{{Line: 1, Record: rec, Decision: target.Decision}}, engine.DefaultPolicy(), nil)
	if len(rep.Mismatches) != 1 {
		t.Errorf("a tampered observation was not reported: %+v", rep)
	}
}

// TestFlightOtherPolicy is promise (b): another policy on the same observations shows the
// ticks where it decides otherwise; the production policy itself shows none.
func TestFlightOtherPolicy(t *testing.T) {
	_, recs := readShippedFlight(t)
	prod := engine.DefaultPolicy()
	same := VerifyFlight(recs, prod, &prod)
	if len(same.Differences) != 0 {
		t.Errorf("the production policy differs from itself at %d ticks", len(same.Differences))
	}
	eager, err := engine.ParsePolicy(strings.NewReader(`{"scale_up_cpu_percent": 50, "scale_up_sustain": "1m", "scale_up_cooldown": "2m"}`), prod)
	if err != nil {
		t.Fatal(err)
	}
	rep := VerifyFlight(recs, prod, &eager)
	if len(rep.Differences) == 0 {
		t.Fatal("an eager policy decides like production everywhere")
	}
	for _, d := range rep.Differences {
		if d.Production.Action == d.Other.Action && d.Production.Delta == d.Other.Delta && d.Production.Node == d.Other.Node {
			t.Errorf("tick %s listed as different but both decide %s %+d", d.Time, d.Other.Action, d.Other.Delta)
		}
	}
	var out bytes.Buffer
	WriteFlightReport(&out, rep, "eager.json")
	if !strings.Contains(out.String(), "policy eager.json decides differently at") {
		t.Errorf("report:\n%s", out.String())
	}
}

// TestFlightLineShapes: every accepted line shape yields the same record; other log lines
// are skipped; a broken record line is an error naming the line.
func TestFlightLineShapes(t *testing.T) {
	recJSON := `{"time":"2026-01-05T00:02:05Z","lock":"acquired","observation":{"time":"2026-01-05T00:02:05Z","readings":{},"registered_workers":2,"launching":0,"workers_known":true},"state":{"workers":2,"seq":0},"decision":{"action":"none","delta":0,"reason":"steady","workers":2,"target":2},"acted":[]}`
	logLine := `{"time":"2026-01-05T00:02:05.1Z","level":"INFO","msg":"tick","record":` + recJSON + `}`
	wrapped, _ := json.Marshal(map[string]any{"timestamp": 1767571325100, "message": logLine})
	input := strings.Join([]string{
		recJSON,
		logLine,
		string(wrapped),
		"2026-01-05T00:02:05.100Z " + logLine,
		`{"timestamp":1,"message":"START RequestId: 1 Version: $LATEST"}`,
		`{"time":"2026-01-05T00:02:05Z","level":"WARN","msg":"slack webhook failed"}`,
		"",
	}, "\n")
	recs, skipped, err := ReadFlight(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || skipped != 2 {
		t.Fatalf("%d records, %d skipped; want 4, 2", len(recs), skipped)
	}
	for _, r := range recs {
		if string(r.Decision) != `{"action":"none","delta":0,"reason":"steady","workers":2,"target":2}` {
			t.Errorf("line %d: decision %s", r.Line, r.Decision)
		}
	}
	_, _, err = ReadFlight(strings.NewReader(recJSON + "\n" + `{"observation":{},"decision":{"action":`))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("broken record: error %v, want one naming line 2", err)
	}
}

// TestFlightOnSimulatorRuns widens (a) beyond the sample: every tick of other simulator runs
// (scale-ups joining, drains, cooldowns, at-max) is reproduced.
func TestFlightOnSimulatorRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates several scenarios")
	}
	for _, c := range []struct {
		scenario string
		seed     uint64
	}{{"flash-sale", 1}, {"flash-sale", 7}, {"ramp", 2}, {"diurnal", 4}} {
		sc, err := scenarios.Load(c.scenario)
		if err != nil {
			t.Fatal(err)
		}
		pol := engine.DefaultPolicy()
		if c.seed == 7 {
			pol.MaxWorkers = 4 // at_max ticks
		}
		w, err := world.New(world.Config{Scenario: sc, Seed: c.seed, Policy: pol, InitialWorkers: -1})
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := world.WriteDecisions(&buf, res.Records); err != nil {
			t.Fatal(err)
		}
		recs, _, err := ReadFlight(&buf)
		if err != nil {
			t.Fatal(err)
		}
		// with the state Decide saw (records since decide_state), and rebuilt from the acts
		// (older records without it)
		legacy := make([]FlightRecord, len(recs))
		for i, r := range recs {
			if r.Record.DecideState == nil {
				t.Fatalf("%s seed %d tick %s: no decide_state in the record", c.scenario, c.seed, r.Record.Time)
			}
			legacy[i] = r
			legacy[i].Record.DecideState, legacy[i].Record.BusyOperation = nil, ""
		}
		for name, rs := range map[string][]FlightRecord{"decide_state": recs, "rebuilt": legacy} {
			rep := VerifyFlight(rs, pol, nil)
			if rep.Checked != len(res.Records) {
				t.Errorf("%s seed %d (%s): re-decided %d of %d (skipped %v)", c.scenario, c.seed, name, rep.Checked, len(res.Records), rep.Skipped)
			}
			for _, m := range rep.Mismatches {
				t.Errorf("%s seed %d (%s) tick %s:\nproduction %s\nreplayed   %s", c.scenario, c.seed, name, m.Time, m.Production, m.Replayed)
			}
		}
	}
}

// TestRedecideSkips: ticks where Decide did not run are skipped, with the reason.
func TestRedecideSkips(t *testing.T) {
	noData := engine.Decision{Action: engine.ActionNoData, Reason: "could not build clients"}
	for _, c := range []struct {
		rec  engine.Record
		want string
	}{
		{engine.Record{Lock: engine.LockHeld, Decision: engine.Decision{Action: engine.ActionBusy}}, "lock held"},
		{engine.Record{Lock: engine.LockNotAcquired, Error: "listing nodes: timeout", Decision: noData}, `lock "not_acquired": listing nodes: timeout`},
		{engine.Record{Error: "kubeconfig secret unreadable", Decision: noData}, `lock "": kubeconfig secret unreadable`},
		{engine.Record{Lock: engine.LockAcquired, Error: "saving state: fenced"}, "no decision recorded"},
	} {
		_, ok, why := Redecide(engine.DefaultPolicy(), c.rec)
		if ok || !strings.Contains(why, c.want) {
			t.Errorf("%+v: ok %v, why %q; want skipped with %q", c.rec, ok, why, c.want)
		}
	}
}
