// Package chaos is the simulator's chaos harness: a catalogue of named faults (invocation,
// state store, EC2, Kubernetes, Prometheus, notifier, spot interruptions), fault schedules
// drawn from the run's seed, their installation through the simulated world's hooks, and a
// checker of the reliability invariants of issue 5 that runs after every event and tick.
//
// Everything runs on the simulator's single thread. The one exception is a paused
// invocation, which runs as a coroutine: exactly one goroutine runs at any moment and the
// hand-off points are fixed, so a run stays deterministic.
package chaos

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is one named fault of the catalogue.
type Kind struct {
	Name    string
	Layer   string // invocation, store, ec2, kubernetes, prometheus, notifier, cloud
	Summary string // what is injected
	Expect  string // the correct behaviour a test shows
}

// Fault kind names.
const (
	InvokeDuplicate   = "invoke-duplicate"
	InvokeKill        = "invoke-kill"
	InvokePause       = "invoke-pause"
	LockHeld          = "lock-held"
	StoreThrottle     = "store-throttle"
	StoreLostResponse = "store-lost-response"
	EC2Capacity       = "ec2-capacity"
	EC2Quota          = "ec2-quota"
	EC2Throttle       = "ec2-throttle"
	EC2Unsupported    = "ec2-unsupported"
	EC2LaunchThenFail = "ec2-launch-then-fail"
	EC2DescribeLag    = "ec2-describe-lag"
	NodeNeverReady    = "node-never-ready"
	SlowBoot          = "slow-boot"
	PDB429            = "pdb-429"
	PodIgnoresSIGTERM = "pod-ignores-sigterm"
	NodesNotReady     = "nodes-notready"
	PromEmpty         = "prom-empty"
	PromNaN           = "prom-nan"
	PromStale         = "prom-stale"
	Prom5xx           = "prom-5xx"
	Prom422           = "prom-422"
	PromTimeout       = "prom-timeout"
	PromPartial       = "prom-partial"
	NotifyDown        = "notify-down"
	SpotInterruption  = "spot-interruption"
)

var catalogue = append([]Kind{
	{InvokeDuplicate, "invocation", "a second invocation overlaps the tick (lock held) and a duplicate re-runs the tick at the same instant",
		"the overlapping one gets the lock held and does nothing; the duplicate changes nothing"},
	{InvokeKill, "invocation", "the Lambda dies (timeout) before a random side effect: lock left held, intent left open",
		"the intent is reconciled by a later tick; the lock is free within one lease plus one tick"},
	{InvokePause, "invocation", "the holder freezes before a state write or a launch, past its lease, then resumes",
		"another invocation takes over; the resumed holder's writes are fenced out and it launches nothing new"},
	{LockHeld, "store", "the lease lock is already held when a tick starts",
		"the tick exits cleanly (busy) and acts on nothing"},
	{StoreThrottle, "store", "DynamoDB throttles (ProvisionedThroughputExceeded) a third of the calls",
		"no write is half-done: the intent is retried with the same ClientToken"},
	{StoreLostResponse, "store", "a write (acquire, save, release) is applied but its response is lost",
		"no duplicate instances (ClientToken); a lock taken but not known is free after its lease"},
	{EC2Capacity, "ec2", "InsufficientInstanceCapacity for one instance type and zone",
		"the offering is backed off and the other zone is used"},
	{EC2Quota, "ec2", "InstanceLimitExceeded / VcpuLimitExceeded on every launch",
		"a failure event, no retry storm; bounds return once the quota allows"},
	{EC2Throttle, "ec2", "RequestLimitExceeded on half the RunInstances, TerminateInstances and DescribeInstances calls",
		"the tick retries next time; nothing is done twice"},
	{EC2Unsupported, "ec2", "Unsupported for one instance type and zone",
		"the offering is backed off long and the other zone is used"},
	{EC2LaunchThenFail, "ec2", "RunInstances launches the instances, then fails (InternalError)",
		"the instances are counted as launching: nothing is launched twice"},
	{EC2DescribeLag, "ec2", "DescribeInstances does not show instances launched in the last 1-3 minutes",
		"the intent's instances count as launching: no second launch"},
	{NodeNeverReady, "ec2", "instances launched in the window boot but their node never joins",
		"each is terminated after the node-ready timeout: no orphaned, billed instance"},
	{SlowBoot, "ec2", "instances boot 3-7 times slower than drawn",
		"launching instances count as capacity: no extra launch"},
	{PDB429, "kubernetes", "every eviction is refused with 429 (PodDisruptionBudget)",
		"no termination after a failed drain; the node is uncordoned after the drain timeout"},
	{PodIgnoresSIGTERM, "kubernetes", "pods ignore SIGTERM and exit only after the grace period",
		"the node is terminated only once its pods are gone"},
	{NodesNotReady, "kubernetes", "half of the Ready workers turn NotReady at once",
		"no scale-down of a NotReady node; bounds hold"},
	{PromEmpty, "prometheus", "queries return an empty vector", "no scale-down on those ticks"},
	{PromNaN, "prometheus", "queries return NaN or Inf", "no scale-down on those ticks"},
	{PromStale, "prometheus", "node-exporter series are minutes old", "no scale-down on those ticks"},
	{Prom5xx, "prometheus", "queries fail with 503", "no scale-down on those ticks"},
	{Prom422, "prometheus", "queries fail with 422 (unprocessable)", "no scale-down on those ticks"},
	{PromTimeout, "prometheus", "queries time out", "no scale-down on those ticks"},
	{PromPartial, "prometheus", "answers carry warnings (partial response)", "no scale-down on those ticks"},
	{NotifyDown, "notifier", "SNS / Slack rejects every notification", "decisions and actions are exactly those of a run without the fault"},
	{SpotInterruption, "cloud", "a running worker is interrupted with 2 minutes' notice",
		"the lost capacity is replaced; no operation is left stuck on the gone node"},
}, append(spotCatalogue, alertCatalogue...)...) // spot.go, alerts.go

// Catalogue returns every fault kind, in a fixed order.
func Catalogue() []Kind { return slices.Clone(catalogue) }

// Names returns the names of every fault kind, in catalogue order.
func Names() []string {
	out := make([]string, len(catalogue))
	for i, k := range catalogue {
		out[i] = k.Name
	}
	return out
}

// Known reports whether name is a fault kind.
func Known(name string) bool { return slices.Contains(Names(), name) }

// ParseKinds reads a comma-separated list of kinds, or "all". The result is in catalogue
// order without repeats.
func ParseKinds(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "all" {
		return Names(), nil
	}
	want := map[string]bool{}
	var bad []string
	for _, s := range strings.Split(spec, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !Known(s) {
			bad = append(bad, s)
			continue
		}
		want[s] = true
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("unknown fault kind %s (see -chaos list)", strings.Join(bad, ", "))
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("no fault kind in %q (see -chaos list)", spec)
	}
	var out []string
	for _, n := range Names() {
		if want[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

func layerOf(name string) string {
	for _, k := range catalogue {
		if k.Name == name {
			return k.Layer
		}
	}
	return ""
}
