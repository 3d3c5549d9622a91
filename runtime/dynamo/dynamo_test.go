package dynamo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/internal/realtest"
	"github.com/smartscale/smartscale/runtime/internal/fakes"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newClient returns a DynamoDB client for endpoint with dummy credentials.
func newClient(endpoint string) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	})
}

// newTable starts dynalite and creates a fresh table.
func newTable(t *testing.T) *dynamodb.Client {
	t.Helper()
	c := newClient(realtest.Dynalite(t))
	if err := CreateTable(context.Background(), c, "smartscale"); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAcquireSaveReleaseLoad(t *testing.T) {
	c := newTable(t)
	ctx := context.Background()
	s := New(c, "smartscale", "demo")

	st, err := s.Load(ctx)
	if err != nil || st.Workers != 0 || st.Operation != nil {
		t.Fatalf("Load of a missing item = %+v, %v; want the zero state", st, err)
	}
	lease, st, err := s.Acquire(ctx, "a", t0, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Fence != 1 || lease.Holder != "a" || !lease.Expires.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("lease %+v", lease)
	}
	want := engine.State{Workers: 3, LastScaleUp: t0, Seq: 4,
		Operation: &engine.Operation{ID: "demo-op-4", Kind: engine.OpScaleUp, Phase: engine.PhaseJoining, Started: t0, Count: 2, Instances: []string{"i-1", "i-2"}},
		Backoff:   map[string]time.Time{"t3.medium/us-east-1a/subnet-a": t0.Add(5 * time.Minute)}}
	if err := s.Save(ctx, lease, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, lease); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v %+v", got.Operation, got.Backoff) != fmt.Sprintf("%+v %+v", want.Operation, want.Backoff) || got.Workers != 3 || !got.LastScaleUp.Equal(t0) || got.Seq != 4 {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	// Released: the next acquire succeeds at once with the next fence and sees the state.
	lease2, st2, err := s.Acquire(ctx, "b", t0.Add(time.Second), 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if lease2.Fence != 2 || st2.Workers != 3 {
		t.Errorf("second acquire: fence %d workers %d, want 2 and 3", lease2.Fence, st2.Workers)
	}
	_ = st
}

func TestLeaseTakeoverFencesTheOldHolder(t *testing.T) {
	c := newTable(t)
	ctx := context.Background()
	s := New(c, "smartscale", "demo")
	a, _, err := s.Acquire(ctx, "a", t0, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Inside the lease: held.
	if _, _, err := s.Acquire(ctx, "b", t0.Add(time.Minute), 3*time.Minute); !errors.Is(err, engine.ErrLockHeld) {
		t.Fatalf("acquire inside the lease: %v, want ErrLockHeld", err)
	}
	// Past the lease (a timed out): b takes over with a newer fence.
	b, _, err := s.Acquire(ctx, "b", t0.Add(4*time.Minute), 3*time.Minute)
	if err != nil {
		t.Fatalf("takeover: %v", err)
	}
	if b.Fence <= a.Fence {
		t.Errorf("fence after takeover %d, want > %d", b.Fence, a.Fence)
	}
	// a comes back: its writes and its release are fenced out.
	if err := s.Save(ctx, a, engine.State{Workers: 9}); !errors.Is(err, engine.ErrFenced) {
		t.Errorf("stale Save: %v, want ErrFenced", err)
	}
	if err := s.Release(ctx, a); !errors.Is(err, engine.ErrFenced) {
		t.Errorf("stale Release: %v, want ErrFenced", err)
	}
	if err := s.Save(ctx, b, engine.State{Workers: 4}); err != nil {
		t.Fatalf("new holder's Save: %v", err)
	}
	st, _ := s.Load(ctx)
	if st.Workers != 4 {
		t.Errorf("workers %d, want the new holder's 4", st.Workers)
	}
	// The same holder name with an old fence is fenced too (a retried invocation).
	if err := s.Save(ctx, engine.Lease{Holder: "b", Fence: a.Fence}, engine.State{Workers: 1}); !errors.Is(err, engine.ErrFenced) {
		t.Errorf("Save with an old fence: %v, want ErrFenced", err)
	}
}

func TestReleaseByTheWrongHolderIsRejected(t *testing.T) {
	c := newTable(t)
	ctx := context.Background()
	s := New(c, "smartscale", "demo")
	a, _, err := s.Acquire(ctx, "a", t0, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []engine.Lease{{Holder: "b", Fence: a.Fence}, {Holder: "a", Fence: a.Fence + 1}, {Holder: "a", Fence: a.Fence - 1}} {
		if err := s.Release(ctx, l); !errors.Is(err, engine.ErrFenced) {
			t.Errorf("Release(%+v): %v, want ErrFenced", l, err)
		}
	}
	// Still held by a.
	if _, _, err := s.Acquire(ctx, "c", t0.Add(time.Second), 3*time.Minute); !errors.Is(err, engine.ErrLockHeld) {
		t.Errorf("after rejected releases: %v, want ErrLockHeld", err)
	}
	if err := s.Release(ctx, a); err != nil {
		t.Errorf("right release: %v", err)
	}
}

// scaleUpStep returns a Step over s whose metrics ask for a scale-up (CPU 85%).
func scaleUpStep(s engine.StateStore, cloud *fakes.Cloud, ids ...string) *engine.Step {
	p := engine.DefaultPolicy()
	return &engine.Step{
		ClusterID: "demo", Policy: p, Store: s, Cloud: cloud,
		Cluster: &fakes.Cluster{List: fakes.Workers(t0.Add(-time.Hour), ids...)},
		Metrics: fakes.NewMetrics(p, map[string]float64{
			engine.ReadingCPU: 85, engine.ReadingCPUHighMin: 82, engine.ReadingCPULowMax: 90, engine.ReadingMemory: 50,
			engine.ReadingPending: 0, engine.ReadingPendingMin: 0, engine.ReadingNodes: float64(len(ids) + 1), engine.ReadingMetricAge: 10,
		}),
		Offerings: []engine.Offering{{InstanceType: "t3.medium", Zone: "us-east-1a", Subnet: "subnet-a"}},
	}
}

func runningCloud(ids ...string) *fakes.Cloud {
	c := &fakes.Cloud{Now: func() time.Time { return t0 }}
	for _, id := range ids {
		c.Insts = append(c.Insts, engine.Instance{ID: id, State: engine.InstanceRunning, LaunchedAt: t0.Add(-time.Hour)})
	}
	return c
}

// Two invocations at the same moment: only the one holding the lock acts. The winner's
// launch waits until the other has finished, so both are inside their tick together.
func TestTwoContendersOnlyOneActs(t *testing.T) {
	c := newTable(t)
	s := New(c, "smartscale", "demo")
	cloud := runningCloud("i-a", "i-b")
	var wg sync.WaitGroup
	firstDone := make(chan struct{})
	var once sync.Once
	cloud.BeforeLaunch = func() {
		select {
		case <-firstDone:
		case <-time.After(10 * time.Second):
		}
	}
	recs := make([]engine.Record, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			step := scaleUpStep(s, cloud, "i-a", "i-b")
			recs[i], errs[i] = step.Run(context.Background(), t0, fmt.Sprintf("invocation-%d", i))
			if recs[i].Lock != engine.LockAcquired {
				once.Do(func() { close(firstDone) })
			}
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("contender %d: %v", i, errs[i])
		}
	}
	locks := map[string]int{}
	for _, r := range recs {
		locks[r.Lock]++
	}
	if locks[engine.LockAcquired] != 1 || locks[engine.LockHeld] != 1 {
		t.Fatalf("locks %v, want one acquired and one held", locks)
	}
	if cloud.Launches != 1 || len(cloud.Calls) != 1 {
		t.Errorf("launches %d (calls %d), want exactly one", cloud.Launches, len(cloud.Calls))
	}
	for _, r := range recs {
		if r.Lock == engine.LockHeld && (len(r.Acted) > 0 || r.Decision.Action != engine.ActionBusy) {
			t.Errorf("the loser acted: %+v", r)
		}
	}
}

// An invocation dies after RunInstances but before it could save the result (a Lambda
// timeout). Its lease expires; the next tick finds the intent, retries RunInstances with
// the same ClientToken and gets the same instances: nothing is launched twice.
func TestIntentRecoveryAfterTimeout(t *testing.T) {
	c := newTable(t)
	ctx := context.Background()
	s := New(c, "smartscale", "demo")
	cloud := runningCloud("i-a", "i-b")

	step := scaleUpStep(s, cloud, "i-a", "i-b")
	saves := 0
	step.Hook = func(point string) error {
		if point == "save" {
			saves++
			if saves == 2 { // the save after RunInstances answered
				return errors.New("Task timed out after 60.00 seconds")
			}
		}
		return nil
	}
	rec, err := step.Run(ctx, t0, "dying")
	if !errors.Is(err, engine.ErrAborted) {
		t.Fatalf("first tick: %v, want ErrAborted", err)
	}
	if cloud.Launches != 1 {
		t.Fatalf("first tick launched %d times, want 1", cloud.Launches)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Operation == nil || st.Operation.Phase != engine.PhaseLaunching || st.Operation.Token == "" {
		t.Fatalf("intent after the crash: %+v, want a launching operation with a token", st.Operation)
	}
	token := st.Operation.Token
	launched := cloud.Count()

	// Inside the dead invocation's lease the lock is still held.
	again := scaleUpStep(s, cloud, "i-a", "i-b")
	rec, err = again.Run(ctx, t0.Add(time.Minute), "early")
	if err != nil || rec.Lock != engine.LockHeld {
		t.Fatalf("tick inside the dead lease: lock %s, err %v; want held", rec.Lock, err)
	}
	// After the lease: the next tick reconciles the intent.
	later := scaleUpStep(s, cloud, "i-a", "i-b")
	rec, err = later.Run(ctx, t0.Add(4*time.Minute), "recovering")
	if err != nil {
		t.Fatalf("recovering tick: %v", err)
	}
	if rec.Lock != engine.LockAcquired || rec.Fence != 2 {
		t.Errorf("recovering tick lock %s fence %d, want acquired 2", rec.Lock, rec.Fence)
	}
	last := cloud.Calls[len(cloud.Calls)-1]
	if last.Token != token {
		t.Errorf("retry used token %q, want the intent's %q", last.Token, token)
	}
	if got := cloud.Count(); got != launched {
		t.Errorf("instances after recovery %d, want %d (no double launch)", got, launched)
	}
	st, _ = s.Load(ctx)
	if st.Operation == nil || st.Operation.Phase != engine.PhaseJoining || len(st.Operation.Instances) != launched-2 {
		t.Errorf("state after recovery: %+v, want the operation joining with its instances", st.Operation)
	}
	// And the lock was released.
	if _, _, err := s.Acquire(ctx, "next", t0.Add(4*time.Minute+time.Second), time.Minute); err != nil {
		t.Errorf("lock not released after the recovering tick: %v", err)
	}
}

func TestRenewExtendsTheLeaseOnlyForTheNewestHolder(t *testing.T) {
	c := newTable(t)
	ctx := context.Background()
	s := New(c, "smartscale", "demo")
	a, _, err := s.Acquire(ctx, "a", t0, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// a renews at t0+2m: the lease now runs to t0+5m, so b cannot take over at t0+4m
	a, err = s.Renew(ctx, a, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Expires.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("renewed lease expires %v", a.Expires)
	}
	if _, _, err := s.Acquire(ctx, "b", t0.Add(4*time.Minute), 3*time.Minute); !errors.Is(err, engine.ErrLockHeld) {
		t.Fatalf("acquire inside the renewed lease: %v, want ErrLockHeld", err)
	}
	// past it, b takes over; a (paused meanwhile) is fenced out of its renewal
	if _, _, err := s.Acquire(ctx, "b", t0.Add(6*time.Minute), 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Renew(ctx, a, t0.Add(9*time.Minute)); !errors.Is(err, engine.ErrFenced) {
		t.Errorf("stale Renew: %v, want ErrFenced", err)
	}
}
