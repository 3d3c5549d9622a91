package engine

import (
	"slices"
	"time"
)

// State is what the autoscaler remembers between ticks (a DynamoDB item in production).
type State struct {
	// Workers is the worker capacity after the last action (the brief's node_count).
	Workers       int       `json:"workers"`
	LastScaleUp   time.Time `json:"last_scale_up,omitzero"`
	LastScaleDown time.Time `json:"last_scale_down,omitzero"`
	// LastRemoved is when the last scale-down's node was removed (its operation ended).
	LastRemoved time.Time `json:"last_removed,omitzero"`
	// Operation is the write-ahead intent of an unfinished operation, or nil.
	Operation *Operation `json:"operation,omitempty"`
	// Finishing holds operations a newer one took the Operation slot from before they
	// ended: a scale-up whose instances are still joining, a drained node whose terminate
	// failed, a node whose uncordon failed. Each tick moves them on until they end; no new
	// scale-down starts while any is here. An unfinished operation is never dropped.
	Finishing []*Operation `json:"finishing,omitempty"`
	// Backoff maps an offering key to the time before which it is not tried again.
	Backoff map[string]time.Time `json:"backoff,omitempty"`
	// SpotTrouble maps a spot offering key to its last interruption, rebalance
	// recommendation or capacity failure (capacity.go ranks calm offerings first).
	SpotTrouble map[string]time.Time `json:"spot_trouble,omitempty"`
	// LastAlertTick is when the last tick an alert asked for ran.
	LastAlertTick time.Time `json:"last_alert_tick,omitzero"`
	// AtMax is set while the policy wants more than MaxWorkers, so the warning is sent once.
	AtMax bool `json:"at_max,omitempty"`
	// Seq numbers operations; operation IDs derive from it.
	Seq int64 `json:"seq"`
}

// Clone returns a deep copy.
func (s State) Clone() State {
	c := s
	if s.Operation != nil {
		c.Operation = s.Operation.clone()
	}
	if s.Finishing != nil {
		c.Finishing = make([]*Operation, len(s.Finishing))
		for i, op := range s.Finishing {
			c.Finishing[i] = op.clone()
		}
	}
	if s.Backoff != nil {
		c.Backoff = make(map[string]time.Time, len(s.Backoff))
		for k, v := range s.Backoff {
			c.Backoff[k] = v
		}
	}
	if s.SpotTrouble != nil {
		c.SpotTrouble = make(map[string]time.Time, len(s.SpotTrouble))
		for k, v := range s.SpotTrouble {
			c.SpotTrouble[k] = v
		}
	}
	return c
}

// Open lists every unfinished operation: the one in the slot, then the finishing ones.
func (s State) Open() []*Operation {
	if s.Operation == nil {
		return s.Finishing
	}
	return append([]*Operation{s.Operation}, s.Finishing...)
}

func (op *Operation) clone() *Operation {
	c := *op
	c.Instances = append([]string(nil), op.Instances...)
	c.Plan = slices.Clone(op.Plan)
	c.SpotInstances = slices.Clone(op.SpotInstances)
	return &c
}

// OpKind is the kind of an operation.
type OpKind string

const (
	OpScaleUp   OpKind = "scale_up"
	OpScaleDown OpKind = "scale_down"
)

// OpPhase is where an operation stands.
type OpPhase string

const (
	PhaseLaunching   OpPhase = "launching"   // intent written; RunInstances may or may not have happened
	PhaseJoining     OpPhase = "joining"     // launched; waiting for the instances to be Ready nodes
	PhaseCordoned    OpPhase = "cordoned"    // intent written; node cordon may or may not have happened
	PhaseDraining    OpPhase = "draining"    // evictions under way
	PhaseTerminating OpPhase = "terminating" // drained; TerminateInstances may or may not have happened
	PhaseUncordoning OpPhase = "uncordoning" // given up; the uncordon failed and is retried
	PhaseAtRisk      OpPhase = "at_risk"     // rebalance recommendation: cordoned, drained once its replacement joined (interrupt.go)
)

// Operation is the write-ahead intent record of one scaling operation.
type Operation struct {
	ID      string    `json:"id"`
	Kind    OpKind    `json:"kind"`
	Phase   OpPhase   `json:"phase"`
	Started time.Time `json:"started"`
	// Launched is when RunInstances answered, set only when that is later than Started (a
	// retried intent): the join timeout runs from it, also for instances DescribeInstances
	// does not list yet.
	Launched time.Time `json:"launched,omitzero"`
	Count    int       `json:"count,omitempty"`    // scale-up: workers asked for
	Offering Offering  `json:"offering,omitzero"`  // scale-up: where
	Token    string    `json:"token,omitempty"`    // scale-up: the ClientToken in use
	Node     string    `json:"node,omitempty"`     // scale-down: the node
	Instance string    `json:"instance,omitempty"` // scale-down: its instance
	Reason   string    `json:"reason,omitempty"`
	// Instances launched by a scale-up (filled when RunInstances answered).
	Instances []string `json:"instances,omitempty"`
	Attempts  int      `json:"attempts,omitempty"`
	// RetryAt: a failed terminate or uncordon is not retried before this (backoff).
	RetryAt time.Time `json:"retry_at,omitzero"`
	// Failures counts the failed terminate or uncordon calls, for the backoff.
	Failures int `json:"failures,omitempty"`

	// Plan is a planned scale-up's parts still to launch, the first in flight (capacity.go);
	// SpotInstances are its instances launched as spot.
	Plan          []LaunchPart `json:"plan,omitempty"`
	SpotInstances []string     `json:"spot_instances,omitempty"`
	// Cause marks a scale-down the cloud asked for (interrupt.go): CauseInterruption (its
	// instance is reclaimed at Deadline; never given back) or CauseRebalance (its drain
	// waits, cordoned, for the replacement operation After to end).
	Cause    string    `json:"cause,omitempty"`
	Deadline time.Time `json:"deadline,omitzero"`
	After    string    `json:"after,omitempty"`
	// DrainFrom is when the drain began, when later than Started (an at-risk node's).
	DrainFrom time.Time `json:"drain_from,omitzero"`
	// Replaces is, on a scale-up a notice launched, the instance it stands in for: a
	// repeated notice of that instance finds it and launches nothing.
	Replaces string `json:"replaces,omitempty"`
}
