// Package cloud is the simulator's EC2: instances launched from requests, launch-to-running
// and join-to-Ready latencies drawn from log-normal distributions, per-second billing with a
// 60-second minimum from running to terminated, an instance quota, ClientToken idempotency,
// and hooks through which the chaos harness injects API errors and lag.
package cloud

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/scenarios"
	"github.com/smartscale/smartscale/sim/event"
)

//go:embed prices.json
var pricesJSON []byte

// Price returns the hourly on-demand price of an instance type in us-east-1.
func Price(instanceType string) (float64, error) {
	var table map[string]json.RawMessage
	if err := json.Unmarshal(pricesJSON, &table); err != nil {
		return 0, err
	}
	var region map[string]float64
	if err := json.Unmarshal(table["us-east-1"], &region); err != nil {
		return 0, err
	}
	p, ok := region[instanceType]
	if !ok {
		return 0, fmt.Errorf("no price for instance type %q in sim/cloud/prices.json", instanceType)
	}
	return p, nil
}

// Instance is one simulated EC2 instance.
type Instance struct {
	engine.Instance
	Price        float64 // USD per hour
	RunningAt    time.Time
	TerminatedAt time.Time // billing end (zero while billed)
	Managed      bool
}

// Cloud is the simulated EC2 API, implementing engine.Cloud.
type Cloud struct {
	loop   *event.Loop
	rng    *rand.Rand
	cfg    scenarios.Cloud
	price  float64
	typ    string
	insts  []*Instance
	byID   map[string]*Instance
	tokens map[string][]string
	nextID int

	// OnRunning is called when an instance reaches running (the cluster starts its join).
	OnRunning func(in *Instance)
	// OnTerminate is called when an instance is terminated (its node dies).
	OnTerminate func(in *Instance)

	// LaunchFault, when set, may fail a RunInstances call. With launched=true the
	// instances are created but the error is still returned (failure after launch).
	LaunchFault func(req engine.LaunchRequest) (err error, launched bool)
	// TerminateFault, when set, may fail a TerminateInstances call.
	TerminateFault func(ids []string) error
	// ListFault, when set, may fail or filter DescribeInstances (lag).
	ListFault func(list []engine.Instance) ([]engine.Instance, error)
	// BootDelay, when set, overrides the drawn boot delay (slow boot, never Ready).
	BootDelay func(in *Instance, drawn time.Duration) time.Duration

	// Launches counts RunInstances calls that created instances.
	Launches int

	// The spot market (spot.go), nil unless EnableSpot was called.
	spot *spotMarket
	// OnNotice is called with every interruption warning and rebalance recommendation.
	OnNotice func(n engine.Notice)
	// Notices counts the notices sent; Interruptions the spot instances reclaimed.
	Notices, Interruptions int
}

var _ engine.Cloud = (*Cloud)(nil)

// New returns a cloud launching instanceType at the given price (0: from the price table).
func New(loop *event.Loop, rng *rand.Rand, cfg scenarios.Cloud, instanceType string, price float64) (*Cloud, error) {
	if price == 0 {
		p, err := Price(instanceType)
		if err != nil {
			return nil, err
		}
		price = p
	}
	return &Cloud{loop: loop, rng: rng, cfg: cfg, price: price, typ: instanceType,
		byID: map[string]*Instance{}, tokens: map[string][]string{}}, nil
}

// PricePerHour is the worker price.
func (c *Cloud) PricePerHour() float64 { return c.price }

func (c *Cloud) active() int {
	n := 0
	for _, in := range c.insts {
		if in.Managed && (in.State == engine.InstancePending || in.State == engine.InstanceRunning) {
			n++
		}
	}
	return n
}

// Launch implements engine.Cloud.
func (c *Cloud) Launch(_ context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	if ids, ok := c.tokens[req.Token]; ok && req.Token != "" {
		return c.list(ids), nil // idempotent retry
	}
	if req.Count < 1 {
		return nil, &engine.CloudError{Kind: engine.KindOther, Code: "InvalidParameterValue", Err: fmt.Errorf("count %d", req.Count)}
	}
	var fault error
	if c.LaunchFault != nil {
		var launched bool
		if fault, launched = c.LaunchFault(req); fault != nil && !launched {
			return nil, fault
		}
	}
	if c.cfg.MaxInstances > 0 && c.active()+req.Count > c.cfg.MaxInstances {
		return nil, &engine.CloudError{Kind: engine.KindQuota, Code: "InstanceLimitExceeded", Offering: req.Offering,
			Err: fmt.Errorf("%d running + %d asked > limit %d", c.active(), req.Count, c.cfg.MaxInstances)}
	}
	off := req.Offering
	if off.InstanceType == "" {
		off.InstanceType = c.typ
	}
	if _, err := c.priceOf(off); err != nil {
		return nil, err
	}
	if err := c.checkSpot(off); err != nil {
		return nil, err
	}
	var ids []string
	for range req.Count {
		in := c.Start(off, req.OperationID, true)
		ids = append(ids, in.ID)
	}
	if req.Token != "" {
		c.tokens[req.Token] = ids
	}
	c.Launches++
	if fault != nil {
		return nil, fault
	}
	return c.list(ids), nil
}

// Start creates one instance now and schedules its boot. Static fleets and the initial
// workers use it directly.
func (c *Cloud) Start(off engine.Offering, opID string, managed bool) *Instance {
	c.nextID++
	price, err := c.priceOf(off)
	if err != nil {
		price = c.price
	}
	in := &Instance{Instance: engine.Instance{
		ID: fmt.Sprintf("i-%017x", c.nextID), State: engine.InstancePending, LaunchedAt: c.loop.Now(),
		OperationID: opID, Offering: off}, Price: price, Managed: managed}
	c.insts = append(c.insts, in)
	c.byID[in.ID] = in
	if off.Spot() && c.spot != nil {
		c.spotStarted(in)
	}
	boot := event.Seconds(event.LogNormal(c.rng, c.cfg.BootMedianS, c.cfg.BootP90S))
	if c.BootDelay != nil {
		boot = c.BootDelay(in, boot)
	}
	c.loop.After(boot, func() {
		if in.State != engine.InstancePending {
			return
		}
		in.State, in.RunningAt = engine.InstanceRunning, c.loop.Now()
		if c.OnRunning != nil {
			c.OnRunning(in)
		}
	})
	return in
}

// StartRunning creates an instance that is already running (the initial fleet at t=0).
func (c *Cloud) StartRunning(off engine.Offering, managed bool) *Instance {
	c.nextID++
	now := c.loop.Now()
	if off.InstanceType == "" {
		off.InstanceType = c.typ
	}
	price, err := c.priceOf(off)
	if err != nil {
		price = c.price
	}
	in := &Instance{Instance: engine.Instance{ID: fmt.Sprintf("i-%017x", c.nextID), State: engine.InstanceRunning,
		LaunchedAt: now, Offering: off}, Price: price, RunningAt: now, Managed: managed}
	c.insts = append(c.insts, in)
	c.byID[in.ID] = in
	if off.Spot() && c.spot != nil {
		c.spotStarted(in)
	}
	return in
}

// JoinDelay draws the running -> node registered delay.
func (c *Cloud) JoinDelay() time.Duration {
	return event.Seconds(event.LogNormal(c.rng, c.cfg.JoinMedianS, c.cfg.JoinP90S))
}

func (c *Cloud) list(ids []string) []engine.Instance {
	out := make([]engine.Instance, 0, len(ids))
	for _, id := range ids {
		if in, ok := c.byID[id]; ok {
			out = append(out, in.Instance)
		}
	}
	return out
}

// Instances implements engine.Cloud: the managed instances, and, as EC2's DescribeInstances
// does, those terminated within the last hour (so a terminated instance is told apart from
// one not listed yet).
func (c *Cloud) Instances(context.Context) ([]engine.Instance, error) {
	var out []engine.Instance
	for _, in := range c.insts {
		if in.Managed && (in.State != engine.InstanceTerminated || c.loop.Now().Sub(in.TerminatedAt) < time.Hour) {
			out = append(out, in.Instance)
		}
	}
	if c.ListFault != nil {
		return c.ListFault(out)
	}
	return out, nil
}

// Terminate implements engine.Cloud. Unknown IDs are NotFound; unmanaged ones are refused.
func (c *Cloud) Terminate(_ context.Context, ids []string) error {
	if c.TerminateFault != nil {
		if err := c.TerminateFault(ids); err != nil {
			return err
		}
	}
	for _, id := range ids {
		in, ok := c.byID[id]
		if !ok || in.State == engine.InstanceTerminated {
			return &engine.CloudError{Kind: engine.KindNotFound, Code: "InvalidInstanceID.NotFound", Err: fmt.Errorf("instance %s", id)}
		}
		if !in.Managed {
			return &engine.CloudError{Kind: engine.KindOther, Code: "UnauthorizedOperation", Err: fmt.Errorf("instance %s is not a managed worker", id)}
		}
	}
	for _, id := range ids {
		c.kill(c.byID[id])
	}
	return nil
}

// kill terminates an instance now: billing stops after the shutdown delay.
func (c *Cloud) kill(in *Instance) {
	if in.State == engine.InstanceTerminated || in.State == engine.InstanceStopping {
		return
	}
	wasRunning := in.State == engine.InstanceRunning
	in.State = engine.InstanceStopping
	end := c.loop.Now()
	if wasRunning {
		end = end.Add(event.Seconds(c.cfg.ShutdownS))
	} else {
		in.RunningAt = time.Time{} // never ran: never billed
	}
	in.TerminatedAt = end
	c.closeRequest(in.ID, "instance-terminated-by-user")
	if c.OnTerminate != nil {
		c.OnTerminate(in)
	}
	c.loop.At(end, func() { in.State = engine.InstanceTerminated })
}

// Interrupt terminates an instance from the provider's side (spot interruption, failure).
func (c *Cloud) Interrupt(id string) {
	if in, ok := c.byID[id]; ok {
		c.closeRequest(id, "instance-terminated-by-service")
		c.kill(in)
	}
}

// All returns every instance ever started, in launch order.
func (c *Cloud) All() []*Instance { return slices.Clone(c.insts) }

// Get returns an instance by ID.
func (c *Cloud) Get(id string) (*Instance, bool) { in, ok := c.byID[id]; return in, ok }

// BilledSeconds is an instance's billed time at now: running to terminated with the 60 s
// minimum once terminated; running to now while it runs.
func (in *Instance) BilledSeconds(now time.Time) float64 {
	if in.RunningAt.IsZero() || now.Before(in.RunningAt) {
		return 0
	}
	if !in.TerminatedAt.IsZero() && !now.Before(in.TerminatedAt) {
		return max(60, in.TerminatedAt.Sub(in.RunningAt).Seconds())
	}
	end := now
	if !in.TerminatedAt.IsZero() && in.TerminatedAt.Before(end) {
		end = in.TerminatedAt
	}
	return end.Sub(in.RunningAt).Seconds()
}

// Cost is the managed workers' cost at now in USD.
func (c *Cloud) Cost(now time.Time) float64 {
	total := 0.0
	for _, in := range c.insts {
		total += in.Price * in.BilledSeconds(now) / 3600
	}
	return total
}

// NodeSeconds is the managed workers' billed seconds at now.
func (c *Cloud) NodeSeconds(now time.Time) float64 {
	total := 0.0
	for _, in := range c.insts {
		total += in.BilledSeconds(now)
	}
	return total
}
