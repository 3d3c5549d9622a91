// Package store is the simulator's state store: an in-memory lease lock with fencing and the
// engine's state, with the same semantics as the DynamoDB adapter (acquire when there is no
// holder or the lease expired, bump the fence, fenced writes, conditional release).
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// Store is the in-memory engine.StateStore.
type Store struct {
	holder  string
	fence   int64
	expires time.Time
	state   []byte // the state as JSON, as a real store would hold it

	// Writes counts accepted state writes; Rejected counts fenced-out writes and releases.
	Writes, Rejected int
	// Fault, when set, is asked before each call ("load", "acquire", "save", "renew",
	// "release") and
	// may return an error to inject (throttling), or engine.ErrLockHeld on acquire. With
	// applied=true the call takes effect but the error is still returned (response lost).
	Fault func(op string) (err error, applied bool)
	// OnWrite, when set, sees every accepted write with its fence (for invariant checks).
	OnWrite func(lease engine.Lease, st engine.State)
}

var _ engine.StateStore = (*Store)(nil)

// New returns an empty store.
func New() *Store { return &Store{} }

func (s *Store) fault(op string) (error, bool) {
	if s.Fault == nil {
		return nil, false
	}
	return s.Fault(op)
}

func (s *Store) decode() (engine.State, error) {
	var st engine.State
	if len(s.state) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(s.state, &st); err != nil {
		return st, fmt.Errorf("decoding state: %w", err)
	}
	return st, nil
}

// Load implements engine.StateStore.
func (s *Store) Load(context.Context) (engine.State, error) {
	if err, _ := s.fault("load"); err != nil {
		return engine.State{}, err
	}
	return s.decode()
}

// Acquire implements engine.StateStore.
func (s *Store) Acquire(_ context.Context, holder string, now time.Time, lease time.Duration) (engine.Lease, engine.State, error) {
	err, applied := s.fault("acquire")
	if err != nil && !applied {
		return engine.Lease{}, engine.State{}, err
	}
	if s.holder != "" && now.Before(s.expires) {
		return engine.Lease{}, engine.State{}, engine.ErrLockHeld
	}
	s.holder, s.fence, s.expires = holder, s.fence+1, now.Add(lease)
	l := engine.Lease{Holder: holder, Fence: s.fence, Expires: s.expires}
	if err != nil {
		return engine.Lease{}, engine.State{}, err
	}
	st, derr := s.decode()
	return l, st, derr
}

// Save implements engine.StateStore.
func (s *Store) Save(_ context.Context, l engine.Lease, st engine.State) error {
	err, applied := s.fault("save")
	if err != nil && !applied {
		return err
	}
	if s.holder != l.Holder || s.fence != l.Fence {
		s.Rejected++
		return fmt.Errorf("save by %s (fence %d), current %s (fence %d): %w", l.Holder, l.Fence, s.holder, s.fence, engine.ErrFenced)
	}
	b, merr := json.Marshal(st)
	if merr != nil {
		return merr
	}
	s.state = b
	s.Writes++
	if s.OnWrite != nil {
		s.OnWrite(l, st)
	}
	return err
}

// Renew implements engine.StateStore.
func (s *Store) Renew(_ context.Context, l engine.Lease, until time.Time) (engine.Lease, error) {
	err, applied := s.fault("renew")
	if err != nil && !applied {
		return engine.Lease{}, err
	}
	if s.holder != l.Holder || s.fence != l.Fence {
		s.Rejected++
		return engine.Lease{}, fmt.Errorf("renew by %s (fence %d), current %s (fence %d): %w", l.Holder, l.Fence, s.holder, s.fence, engine.ErrFenced)
	}
	s.expires = until
	l.Expires = until
	if err != nil {
		return engine.Lease{}, err
	}
	return l, nil
}

// Release implements engine.StateStore.
func (s *Store) Release(_ context.Context, l engine.Lease) error {
	err, applied := s.fault("release")
	if err != nil && !applied {
		return err
	}
	if s.holder != l.Holder || s.fence != l.Fence {
		s.Rejected++
		return fmt.Errorf("release by %s (fence %d), current %s (fence %d): %w", l.Holder, l.Fence, s.holder, s.fence, engine.ErrFenced)
	}
	s.holder, s.expires = "", time.Time{}
	return err
}

// Holder returns the current holder, its fence and lease expiry.
func (s *Store) Holder() (string, int64, time.Time) { return s.holder, s.fence, s.expires }
