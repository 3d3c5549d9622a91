package engine

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func spotPolicy(pct, base int) Policy {
	p := DefaultPolicy()
	p.SpotPercent, p.OnDemandBase = pct, base
	return p
}

func TestSpotWorkers(t *testing.T) {
	for _, c := range []struct {
		pct, base, total, want int
	}{
		{0, 0, 10, 0},    // on-demand only
		{70, 0, 2, 1},    // 1.4 -> 1
		{70, 0, 3, 2},    // 2.1 -> 2
		{70, 0, 5, 4},    // 3.5 -> 4: a half goes to spot
		{70, 2, 2, 0},    // all within the base
		{70, 2, 5, 2},    // 2.1 of the 3 above the base
		{100, 1, 4, 3},   // everything above the base
		{50, 3, 1, 0},    // fewer workers than the base
		{100, 0, 10, 10}, // all spot
		{30, 0, 10, 3},
	} {
		if got := spotPolicy(c.pct, c.base).SpotWorkers(c.total); got != c.want {
			t.Errorf("spot %d%%, base %d, %d workers: %d spot, want %d", c.pct, c.base, c.total, got, c.want)
		}
	}
}

func TestPlanLaunchMixAndZones(t *testing.T) {
	zones := []string{"a", "b", "c"}
	for _, c := range []struct {
		name   string
		p      Policy
		m      fleetMix
		k      int
		want   []LaunchPart
		spread bool
	}{
		{"on-demand only, no zones", DefaultPolicy(), fleetMix{OnDemand: 2}, 2,
			[]LaunchPart{{CapacityType: CapacityOnDemand, Count: 2}}, false},
		{"base first, then the share", spotPolicy(50, 2), fleetMix{}, 4,
			[]LaunchPart{{CapacityType: CapacityOnDemand, Count: 3}, {CapacityType: CapacitySpot, Count: 1}}, false},
		{"70% from 1 od + 1 spot", spotPolicy(70, 0), fleetMix{OnDemand: 1, Spot: 1}, 3,
			[]LaunchPart{{CapacityType: CapacitySpot, Count: 3}}, false},
		{"drifted to on-demand: all new ones spot", spotPolicy(70, 0), fleetMix{OnDemand: 5}, 2,
			[]LaunchPart{{CapacityType: CapacitySpot, Count: 2}}, false},
		{"zone spread: least-used zone first", spotPolicy(0, 0), fleetMix{OnDemand: 3, Zones: map[string]int{"a": 2, "b": 1}}, 3,
			[]LaunchPart{{CapacityType: CapacityOnDemand, Zone: "c", Count: 2}, {CapacityType: CapacityOnDemand, Zone: "b", Count: 1}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.p.ZoneSpread = c.spread
			if c.m.Zones == nil {
				c.m.Zones = map[string]int{}
			}
			before := fmt.Sprint(c.m.Zones)
			got := planLaunch(c.p, zones, c.m, c.k)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("plan %+v, want %+v", got, c.want)
			}
			if fmt.Sprint(c.m.Zones) != before {
				t.Errorf("planLaunch changed the caller's zone counts: %v", c.m.Zones)
			}
		})
	}
}

// spareNodes never lets a scale-down take the on-demand base, and takes the capacity type
// the mix has too much of.
func TestSpareNodesKeepsTheBaseAndTheMix(t *testing.T) {
	fleet := func(od, spot int) ([]Node, Observation) {
		var nodes []Node
		var obs Observation
		for i := range od + spot {
			id := fmt.Sprintf("i-%d", i)
			off := Offering{InstanceType: "t3.medium"}
			if i >= od {
				off.CapacityType = CapacitySpot
			}
			obs.Instances = append(obs.Instances, Instance{ID: id, State: InstanceRunning, Offering: off})
			nodes = append(nodes, Node{Name: fmt.Sprintf("n%d", i), InstanceID: id, Ready: true, Pods: 10 - i})
		}
		obs.Nodes = nodes
		return nodes, obs
	}
	kinds := func(obs Observation, nodes []Node) string {
		spot := map[string]bool{}
		for _, in := range obs.Instances {
			spot[in.ID] = in.Offering.Spot()
		}
		var out []string
		for _, n := range nodes {
			if spot[n.InstanceID] {
				out = append(out, "spot")
			} else {
				out = append(out, "od")
			}
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name     string
		p        Policy
		od, spot int
		want     string
	}{
		{"no spot: unchanged", DefaultPolicy(), 3, 0, "od,od,od"},
		{"spot over its share: spot goes", spotPolicy(70, 0), 1, 3, "spot,spot,spot"},
		{"on-demand over its share: on-demand goes", spotPolicy(70, 0), 2, 1, "od,od"},
		{"the base stays even when spot is short", spotPolicy(30, 2), 2, 1, "spot"},
		{"multi-node: at most the on-demand above the base", spotPolicy(10, 1), 4, 0, "od,od,od"},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes, obs := fleet(c.od, c.spot)
			if got := kinds(obs, spareNodes(c.p, obs, nodes)); got != c.want {
				t.Errorf("candidates %s, want %s", got, c.want)
			}
		})
	}
}

func TestBaseShort(t *testing.T) {
	p := spotPolicy(70, 2)
	obs := Observation{RegisteredWorkers: 3, WorkersKnown: true, Instances: []Instance{
		{ID: "a", State: InstanceRunning},
		{ID: "b", State: InstanceRunning, Offering: Offering{CapacityType: CapacitySpot}},
		{ID: "c", State: InstanceRunning, Offering: Offering{CapacityType: CapacitySpot}},
	}}
	if k, why := baseShort(p, obs, State{}); k != 1 || !strings.Contains(why, "below on_demand_base 2") {
		t.Errorf("short %d (%q), want 1", k, why)
	}
	// an on-demand instance DescribeInstances does not list yet counts, a spot one does not
	st := State{Operation: &Operation{ID: "op", Kind: OpScaleUp, Instances: []string{"x"}}}
	if k, _ := baseShort(p, obs, st); k != 0 {
		t.Errorf("short %d with an unlisted on-demand launch, want 0", k)
	}
	st.Operation.SpotInstances = []string{"x"}
	if k, _ := baseShort(p, obs, st); k != 1 {
		t.Errorf("short %d with an unlisted spot launch, want 1", k)
	}
	// a leaving on-demand instance does not count
	st = State{Operation: &Operation{ID: "d", Kind: OpScaleDown, Instance: "a"}}
	obs.Instances[1].Offering.CapacityType = ""
	if k, _ := baseShort(p, obs, st); k != 1 {
		t.Errorf("short %d with an on-demand worker leaving, want 1", k)
	}
	if k, _ := baseShort(DefaultPolicy(), obs, State{}); k != 0 {
		t.Errorf("the brief has no base: short %d", k)
	}
}

func TestCapacityPolicyKeys(t *testing.T) {
	p, err := ParsePolicy(strings.NewReader(`{"preset":"responsive","spot_percent":70,"on_demand_base":1,
		"instance_types":["t3.medium","t3a.medium"],"zone_spread":true,"spot_allocation":"lowest-price"}`), DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if p.SpotPercent != 70 || p.OnDemandBase != 1 || !p.ZoneSpread || p.SpotAllocation != AllocLowestPrice ||
		!reflect.DeepEqual(p.InstanceTypes, []string{"t3.medium", "t3a.medium"}) || !p.UsesSpot() || !p.PlansCapacity() {
		t.Fatalf("parsed %+v", p.Rules)
	}
	b, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"spot_percent":70`, `"on_demand_base":1`, `"instance_types":["t3.medium","t3a.medium"]`,
		`"zone_spread":true`, `"spot_allocation":"lowest-price"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not hold %s", b, want)
		}
	}
	again, err := ParsePolicy(strings.NewReader(string(b)), DefaultPolicy())
	if err != nil || !reflect.DeepEqual(again.Rules, p.Rules) {
		t.Errorf("round trip: %v\n%+v\n%+v", err, again.Rules, p.Rules)
	}
	// the brief writes none of them
	b, _ = DefaultPolicy().MarshalJSON()
	for _, key := range []string{"spot", "on_demand_base", "instance_types", "zone_spread"} {
		if strings.Contains(string(b), key) {
			t.Errorf("the brief's policy file writes %s: %s", key, b)
		}
	}
	if DefaultPolicy().PlansCapacity() || ResponsivePolicy().PlansCapacity() {
		t.Error("a preset plans capacity: both presets keep spot, types and zone spread off")
	}
}

func TestCapacityPolicyBadInput(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"spot_percent": 101}`, "spot_percent must be in [0, 100]"},
		{`{"spot_percent": -1}`, "spot_percent must be in [0, 100]"},
		{`{"on_demand_base": 11}`, "on_demand_base must be in [0, max_workers (10)]"},
		{`{"on_demand_base": -2}`, "on_demand_base must be in [0, max_workers (10)]"},
		{`{"spot_allocation": "cheapest"}`, `spot_allocation must be "price-capacity-optimized", "lowest-price" or "prioritized", got "cheapest"`},
		{`{"instance_types": ["t3.medium", "T3 large"]}`, `instance_types: "T3 large" is not an EC2 instance type`},
		{`{"instance_types": ["t3.medium", "t3.medium"]}`, `instance_types: "t3.medium" is listed twice`},
		{`{"spot_percent": "70"}`, `spot_percent": want int, got JSON string`},
	} {
		_, err := ParsePolicy(strings.NewReader(c.in), DefaultPolicy())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
	if err := CheckCapacityType("reserved"); err == nil || !strings.Contains(err.Error(), `unknown capacity type "reserved"`) {
		t.Errorf("CheckCapacityType: %v", err)
	}
	for _, ok := range []string{"", CapacityOnDemand, CapacitySpot} {
		if err := CheckCapacityType(ok); err != nil {
			t.Errorf("CheckCapacityType(%q): %v", ok, err)
		}
	}
}

func TestOfferingKeys(t *testing.T) {
	od := Offering{InstanceType: "t3.medium", Zone: "us-east-1a", Subnet: "subnet-a"}
	spot := od
	spot.CapacityType = CapacitySpot
	if od.Key() != "t3.medium/us-east-1a/subnet-a" || spot.Key() != "t3.medium/us-east-1a/subnet-a/spot" {
		t.Errorf("keys %q %q", od.Key(), spot.Key())
	}
	od.CapacityType = CapacityOnDemand
	if od.Key() != "t3.medium/us-east-1a/subnet-a" {
		t.Errorf("an explicit on-demand offering keys as the brief's: %q", od.Key())
	}
}

func TestBaseOfferingsCrossTypesWithZones(t *testing.T) {
	p := DefaultPolicy()
	conf := []Offering{{InstanceType: "t3.medium", Zone: "a", Subnet: "sa"}, {InstanceType: "t3.medium", Zone: "b", Subnet: "sb"}}
	if got := baseOfferings(p, conf); !reflect.DeepEqual(got, conf) {
		t.Errorf("no instance_types: %v", got)
	}
	p.InstanceTypes = []string{"t3a.medium", "t3.large"}
	want := []Offering{{"t3a.medium", "a", "sa", ""}, {"t3a.medium", "b", "sb", ""}, {"t3.large", "a", "sa", ""}, {"t3.large", "b", "sb", ""}}
	if got := baseOfferings(p, conf); !reflect.DeepEqual(got, want) {
		t.Errorf("instance_types: %v, want %v", got, want)
	}
	if got := zonesOf(want); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("zones %v", got)
	}
}

func TestSpotTroubleIsForgotten(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tk := &tick{now: now, s: &Step{}}
	off := Offering{InstanceType: "t3.medium", Zone: "a", CapacityType: CapacitySpot}
	tk.st.SpotTrouble = map[string]time.Time{"old/spot": now.Add(-2 * time.Hour)}
	tk.noteTrouble(off)
	tk.noteTrouble(Offering{InstanceType: "t3.medium", Zone: "b"}) // on-demand: not noted
	if len(tk.st.SpotTrouble) != 1 || !tk.st.SpotTrouble[off.Key()].Equal(now) {
		t.Errorf("trouble %v", tk.st.SpotTrouble)
	}
}
