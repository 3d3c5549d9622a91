package cloud

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/event"
)

// The spot market of the simulated EC2: prices per instance type and zone, interruptions
// with EC2's 2-minute warning (and rebalance recommendations ahead of some), and zone-wide
// shortages, from sim/cloud/spot.json (where the figures come from is written there). Every
// draw comes from the spot streams EnableSpot is given, and only spot instances draw, so a
// run without spot draws exactly what it drew before spot existed.

//go:embed spot.json
var spotJSON []byte

//go:embed types.json
var typesJSON []byte

// SpotData is spot.json.
type SpotData struct {
	Region                 string             `json:"region"`
	Buckets                map[string]float64 `json:"buckets"`
	ShortageMeanHours      float64            `json:"shortage_mean_hours"`
	ShortageMedianMinutes  float64            `json:"shortage_median_minutes"`
	ShortageP90Minutes     float64            `json:"shortage_p90_minutes"`
	ShortageReclaimShare   float64            `json:"shortage_reclaim_share"`
	RebalanceAheadShare    float64            `json:"rebalance_ahead_share"`
	SpuriousRebalanceRatio float64            `json:"spurious_rebalance_ratio"`
	Types                  map[string]struct {
		Bucket string             `json:"bucket"`
		Zones  map[string]float64 `json:"zones"`
	} `json:"types"`
}

// LoadSpotData parses spot.json and checks it.
func LoadSpotData() (SpotData, error) {
	var d SpotData
	if err := json.Unmarshal(spotJSON, &d); err != nil {
		return d, fmt.Errorf("sim/cloud/spot.json: %w", err)
	}
	for typ, t := range d.Types {
		if _, ok := d.Buckets[t.Bucket]; !ok {
			return d, fmt.Errorf("sim/cloud/spot.json: %s: unknown interruption bucket %q", typ, t.Bucket)
		}
	}
	return d, nil
}

// SpotPrice returns the hourly spot price of an instance type in a zone.
func (d SpotData) SpotPrice(instanceType, zone string) (float64, bool) {
	t, ok := d.Types[instanceType]
	if !ok {
		return 0, false
	}
	p, ok := t.Zones[zone]
	return p, ok
}

// HourlyRate is the type's interruption hazard per instance-hour: -ln(1-p)/720 for its
// bucket's monthly probability p.
func (d SpotData) HourlyRate(instanceType string) float64 {
	t, ok := d.Types[instanceType]
	if !ok {
		return 0
	}
	return -math.Log(1-d.Buckets[t.Bucket]) / (30 * 24)
}

// Shape is what a node of an instance type offers.
type Shape struct {
	InstanceType string
	Cores        int
	MemTotalMiB  float64
	AllocCPUm    int
	AllocMemMiB  int
}

// ShapeOf returns the node shape of an instance type, given the scenario's worker type and
// shape (which it returns for that type): AWS's vCPU and memory of the type, less the
// scenario worker's reserve, with the same share of memory visible to the OS.
func ShapeOf(instanceType string, worker Shape, workerMemGiB float64) (Shape, error) {
	if instanceType == "" || instanceType == worker.InstanceType {
		return worker, nil
	}
	vcpu, gib, err := Published(instanceType)
	if err != nil {
		return Shape{}, err
	}
	visible := worker.MemTotalMiB / (workerMemGiB * 1024)
	mem := math.Round(gib * 1024 * visible)
	return Shape{InstanceType: instanceType, Cores: vcpu, MemTotalMiB: mem,
		AllocCPUm:   vcpu*1000 - (worker.Cores*1000 - worker.AllocCPUm),
		AllocMemMiB: int(mem) - (int(worker.MemTotalMiB) - worker.AllocMemMiB)}, nil
}

// Published returns AWS's vCPU and memory (GiB) of an instance type (sim/cloud/types.json).
func Published(instanceType string) (vcpu int, memGiB float64, err error) {
	var table map[string]json.RawMessage
	if err := json.Unmarshal(typesJSON, &table); err != nil {
		return 0, 0, err
	}
	raw, ok := table[instanceType]
	if !ok {
		return 0, 0, fmt.Errorf("no vCPU and memory figures for instance type %q in sim/cloud/types.json", instanceType)
	}
	var t struct {
		VCPU      int     `json:"vcpu"`
		MemoryGiB float64 `json:"memory_gib"`
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return 0, 0, fmt.Errorf("sim/cloud/types.json: %s: %w", instanceType, err)
	}
	return t.VCPU, t.MemoryGiB, nil
}

// SpotRequest is the one-time spot request behind a spot instance.
type SpotRequest struct {
	ID       string
	Instance string
	State    string // active while the instance lives, closed after
	Status   string // fulfilled, instance-terminated-by-user, instance-terminated-by-service
}

// spotMarket is the spot state of a Cloud.
type spotMarket struct {
	data       SpotData
	rng        *rand.Rand           // interruptions and rebalance recommendations, per instance
	shortRNG   *rand.Rand           // zone shortages
	scale      float64              // of the interruption and rebalance rates
	shortScale float64              // of the shortage rate
	shortage   map[string]time.Time // zone -> end of its shortage
	requests   []*SpotRequest
	noticed    map[string]bool // instances warned of an interruption
	zones      []string
	scheduled  bool
}

// EnableSpot turns the spot market on: rng draws each spot instance's interruption and
// rebalance recommendation, shortRNG the zones' shortages over zones until horizon; scale
// multiplies the interruption and rebalance rates, shortScale the shortages' (0: 1, the
// rates of spot.json).
func (c *Cloud) EnableSpot(rng, shortRNG *rand.Rand, scale, shortScale float64, zones []string, horizon time.Duration) error {
	d, err := LoadSpotData()
	if err != nil {
		return err
	}
	if scale <= 0 {
		scale = 1
	}
	if shortScale <= 0 {
		shortScale = 1
	}
	c.spot = &spotMarket{data: d, rng: rng, shortRNG: shortRNG, scale: scale, shortScale: shortScale, shortage: map[string]time.Time{},
		noticed: map[string]bool{}, zones: slices.Clone(zones)}
	c.scheduleShortages(horizon)
	return nil
}

// SpotEnabled reports whether the spot market is on.
func (c *Cloud) SpotEnabled() bool { return c.spot != nil }

func (c *Cloud) scheduleShortages(horizon time.Duration) {
	s := c.spot
	if s.data.ShortageMeanHours <= 0 {
		return
	}
	start := c.loop.Now()
	for _, zone := range s.zones {
		at := time.Duration(0)
		for {
			gap := s.shortRNG.ExpFloat64() * s.data.ShortageMeanHours / s.shortScale
			at += event.Seconds(gap * 3600)
			if at >= horizon {
				break
			}
			length := event.Seconds(60 * event.LogNormal(s.shortRNG, s.data.ShortageMedianMinutes, s.data.ShortageP90Minutes))
			reclaim := s.shortRNG.Uint64() // the draws of who is reclaimed, fixed now
			c.loop.At(start.Add(at), func() { c.startShortage(zone, length, reclaim) })
		}
	}
}

func (c *Cloud) startShortage(zone string, length time.Duration, seed uint64) {
	now := c.loop.Now()
	c.SetSpotShortage(zone, now.Add(length))
	r := rand.New(rand.NewPCG(seed, 0x5107))
	for _, in := range c.insts {
		if in.Offering.Spot() && in.Offering.Zone == zone && in.State == engine.InstanceRunning && r.Float64() < c.spot.data.ShortageReclaimShare {
			id := in.ID
			c.loop.After(event.Seconds(r.Float64()*600), func() { c.Warn(id, engine.NoticeInterruption) })
		}
	}
}

// SetSpotShortage makes the zone short of spot capacity until the given time: spot
// launches there fail with InsufficientInstanceCapacity.
func (c *Cloud) SetSpotShortage(zone string, until time.Time) {
	if c.spot == nil {
		return
	}
	if until.After(c.spot.shortage[zone]) {
		c.spot.shortage[zone] = until
	}
}

// SpotShort reports whether the zone is short of spot capacity now.
func (c *Cloud) SpotShort(zone string) bool {
	return c.spot != nil && c.loop.Now().Before(c.spot.shortage[zone])
}

// priceOf is the hourly price of one new instance of an offering.
func (c *Cloud) priceOf(off engine.Offering) (float64, error) {
	if off.Spot() {
		if c.spot == nil {
			return 0, &engine.CloudError{Kind: engine.KindUnsupported, Code: "Unsupported", Offering: off,
				Err: fmt.Errorf("spot capacity is not enabled in this simulation")}
		}
		p, ok := c.spot.data.SpotPrice(off.InstanceType, off.Zone)
		if !ok {
			return 0, &engine.CloudError{Kind: engine.KindUnsupported, Code: "Unsupported", Offering: off,
				Err: fmt.Errorf("no spot market for %s in %s (sim/cloud/spot.json)", off.InstanceType, off.Zone)}
		}
		return p, nil
	}
	if off.InstanceType == "" || off.InstanceType == c.typ {
		return c.price, nil
	}
	p, err := Price(off.InstanceType)
	if err != nil {
		return 0, &engine.CloudError{Kind: engine.KindUnsupported, Code: "Unsupported", Offering: off, Err: err}
	}
	return p, nil
}

// checkSpot refuses a spot launch in a zone short of capacity.
func (c *Cloud) checkSpot(off engine.Offering) error {
	if off.Spot() && c.SpotShort(off.Zone) {
		return &engine.CloudError{Kind: engine.KindCapacity, Code: "InsufficientInstanceCapacity", Offering: off,
			Err: fmt.Errorf("there is no Spot capacity available that matches your request in %s", off.Zone)}
	}
	return nil
}

// spotStarted opens the instance's spot request and draws its fate: the time to an
// interruption (from the type's hazard), a rebalance recommendation ahead of some, and
// spurious recommendations.
func (c *Cloud) spotStarted(in *Instance) {
	s := c.spot
	s.requests = append(s.requests, &SpotRequest{ID: fmt.Sprintf("sir-%08x", len(s.requests)+1), Instance: in.ID, State: "active", Status: "fulfilled"})
	rate := s.data.HourlyRate(in.Offering.InstanceType) * s.scale
	if rate <= 0 {
		return
	}
	hours := s.rng.ExpFloat64() / rate
	ahead := s.rng.Float64() < s.data.RebalanceAheadShare
	lead := event.Seconds(60 * (5 + 25*s.rng.Float64()))
	spurious := s.rng.ExpFloat64() / (rate * s.data.SpuriousRebalanceRatio)
	at := in.LaunchedAt.Add(event.Seconds(hours * 3600))
	id := in.ID
	c.loop.At(at, func() { c.Warn(id, engine.NoticeInterruption) })
	if ahead {
		c.loop.At(at.Add(-lead), func() { c.Warn(id, engine.NoticeRebalance) })
	}
	if s.data.SpuriousRebalanceRatio > 0 {
		c.loop.At(in.LaunchedAt.Add(event.Seconds(spurious*3600)), func() { c.Warn(id, engine.NoticeRebalance) })
	}
}

// Warn sends a notice about a live managed instance: an interruption warning reclaims it 2
// minutes later; a rebalance recommendation changes nothing by itself. Notices about
// instances no longer live are dropped (EC2 sends none); a second warning is too.
func (c *Cloud) Warn(id string, kind engine.NoticeKind) {
	in, ok := c.byID[id]
	if !ok || (in.State != engine.InstancePending && in.State != engine.InstanceRunning) {
		return
	}
	now := c.loop.Now()
	n := engine.Notice{Kind: kind, Instance: id, Time: now, Source: "sim"}
	if kind == engine.NoticeInterruption {
		if c.spot != nil && c.spot.noticed[id] {
			return
		}
		if c.spot != nil {
			c.spot.noticed[id] = true
		}
		n.Deadline, n.Action = now.Add(engine.InterruptionNotice), "terminate"
		c.loop.At(n.Deadline, func() { c.reclaim(id) })
	}
	c.Notices++
	if c.OnNotice != nil {
		c.OnNotice(n)
	}
}

// Warned reports whether the instance was warned of an interruption (it leaves within its
// notice).
func (c *Cloud) Warned(id string) bool { return c.spot != nil && c.spot.noticed[id] }

// reclaim terminates a warned instance from the provider's side.
func (c *Cloud) reclaim(id string) {
	in, ok := c.byID[id]
	if !ok || in.State == engine.InstanceTerminated || in.State == engine.InstanceStopping {
		return
	}
	c.Interruptions++
	c.closeRequest(id, "instance-terminated-by-service")
	c.kill(in)
}

func (c *Cloud) closeRequest(id, status string) {
	if c.spot == nil {
		return
	}
	for _, r := range c.spot.requests {
		if r.Instance == id && r.State == "active" {
			r.State, r.Status = "closed", status
		}
	}
}

// SpotRequests returns the spot requests so far.
func (c *Cloud) SpotRequests() []SpotRequest {
	if c.spot == nil {
		return nil
	}
	out := make([]SpotRequest, len(c.spot.requests))
	for i, r := range c.spot.requests {
		out[i] = *r
	}
	return out
}

var _ engine.Pricer = (*Cloud)(nil)

// Prices implements engine.Pricer: spot prices from spot.json, on-demand from prices.json.
func (c *Cloud) Prices(_ context.Context, offs []engine.Offering) (map[string]float64, error) {
	out := map[string]float64{}
	for _, o := range offs {
		if p, err := c.priceOf(o); err == nil {
			out[o.Key()] = p
		}
	}
	return out, nil
}

// CapacitySeconds is the billed seconds of the managed workers at now by capacity type.
func (c *Cloud) CapacitySeconds(now time.Time) (onDemand, spot float64) {
	for _, in := range c.insts {
		if in.Offering.Spot() {
			spot += in.BilledSeconds(now)
		} else {
			onDemand += in.BilledSeconds(now)
		}
	}
	return onDemand, spot
}
