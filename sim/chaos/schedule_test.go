package chaos

import (
	"reflect"
	"testing"
	"time"
)

func TestScheduleRoundTrip(t *testing.T) {
	s := Draw(7, Names(), 100*time.Minute)
	if len(s) != 2*len(Names()) {
		t.Fatalf("%d faults for %d kinds", len(s), len(Names()))
	}
	back, err := ParseSchedule(s.String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, back) {
		t.Errorf("round trip changed the schedule:\n%s\n%s", s, back)
	}
}

func TestDrawIsSeeded(t *testing.T) {
	a, b := Draw(7, Names(), time.Hour), Draw(7, Names(), time.Hour)
	if a.String() != b.String() {
		t.Error("same seed, different schedules")
	}
	if c := Draw(8, Names(), time.Hour); c.String() == a.String() {
		t.Error("different seeds, same schedule")
	}
	for _, f := range Draw(3, Names(), 30*time.Minute) {
		if f.At < 4*time.Minute || f.End() > 30*time.Minute {
			t.Errorf("%s outside the run", f)
		}
	}
}

func TestParseKinds(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		bad  bool
	}{
		{"all", Names(), false},
		{"prom-nan,ec2-capacity", []string{EC2Capacity, PromNaN}, false},
		{"ec2-capacity, ec2-capacity", []string{EC2Capacity}, false},
		{"nope", nil, true},
		{" , ", nil, true},
	}
	for _, c := range cases {
		got, err := ParseKinds(c.in)
		if (err != nil) != c.bad || (!c.bad && !reflect.DeepEqual(got, c.want)) {
			t.Errorf("ParseKinds(%q) = %v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"nope@1m+1m", "ec2-quota@1m", "ec2-quota@-1m+1m", "ec2-quota@1m+0s", "ec2-quota@1m+1m#x"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q): no error", bad)
		}
	}
}
