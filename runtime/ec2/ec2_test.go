package ec2

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sdk "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/ec2/ec2fake"
	"github.com/smartscale/smartscale/runtime/internal/fakes"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newFake(t *testing.T) (*ec2fake.Server, *Cloud) {
	t.Helper()
	srv := ec2fake.New()
	t.Cleanup(srv.Close)
	srv.Now = func() time.Time { return t0 }
	srv.SubnetZones = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	api := sdk.New(sdk.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      aws.NopRetryer{},
	})
	return srv, New(api, "demo", "lt-0123456789abcdef0", "")
}

var offA = engine.Offering{InstanceType: "t3.large", Zone: "us-east-1a", Subnet: "subnet-a"}

func TestLaunchFromTemplateWithTagsAndToken(t *testing.T) {
	srv, c := newFake(t)
	ctx := context.Background()
	insts, err := c.Launch(ctx, engine.LaunchRequest{Token: "demo-op-7-1", OperationID: "demo-op-7", Count: 2, Offering: offA})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 {
		t.Fatalf("launched %d, want 2", len(insts))
	}
	for _, in := range insts {
		if in.Offering != offA || in.OperationID != "demo-op-7" || in.State != engine.InstancePending || !in.LaunchedAt.Equal(t0) {
			t.Errorf("instance %+v", in)
		}
	}
	req := srv.Requests()[0]
	want := map[string]string{
		"Action": "RunInstances", "LaunchTemplate.LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplate.Version": "$Default",
		"InstanceType": "t3.large", "SubnetId": "subnet-a", "MinCount": "2", "MaxCount": "2", "ClientToken": "demo-op-7-1",
		"TagSpecification.1.ResourceType": "instance",
	}
	for k, v := range want {
		if got := req.Get(k); got != v {
			t.Errorf("RunInstances %s = %q, want %q", k, got, v)
		}
	}
	tags := map[string]string{}
	for _, in := range srv.Instances() {
		for _, tg := range in.Tags {
			tags[tg.Key] = tg.Value
		}
	}
	for k, v := range map[string]string{TagCluster: "demo", TagManagedBy: "smartscale", TagOperation: "demo-op-7"} {
		if tags[k] != v {
			t.Errorf("tag %s = %q, want %q (tags %v)", k, tags[k], v, tags)
		}
	}

	// Same token: the same instances, nothing new.
	again, err := c.Launch(ctx, engine.LaunchRequest{Token: "demo-op-7-1", OperationID: "demo-op-7", Count: 2, Offering: offA})
	if err != nil {
		t.Fatal(err)
	}
	if ids(again) != ids(insts) || len(srv.Instances()) != 2 {
		t.Errorf("retry with the same ClientToken gave %s (fake holds %d), want %s", ids(again), len(srv.Instances()), ids(insts))
	}
	// A new token launches anew.
	if _, err := c.Launch(ctx, engine.LaunchRequest{Token: "demo-op-8-1", OperationID: "demo-op-8", Count: 1, Offering: offA}); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Instances()); n != 3 {
		t.Errorf("fake holds %d instances, want 3", n)
	}
}

func ids(insts []engine.Instance) string {
	var s []string
	for _, in := range insts {
		s = append(s, in.ID)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func TestLaunchTemplateByName(t *testing.T) {
	srv, _ := newFake(t)
	api := sdk.New(sdk.Options{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), BaseEndpoint: aws.String(srv.URL), Retryer: aws.NopRetryer{}})
	c := New(api, "demo", "smartscale-worker", "3")
	if _, err := c.Launch(context.Background(), engine.LaunchRequest{Token: "x", OperationID: "x", Count: 1}); err != nil {
		t.Fatal(err)
	}
	req := srv.Requests()[0]
	if req.Get("LaunchTemplate.LaunchTemplateName") != "smartscale-worker" || req.Get("LaunchTemplate.Version") != "3" || req.Has("InstanceType") || req.Has("SubnetId") {
		t.Errorf("request %v", req)
	}
}

func TestInstancesListsOnlyManagedWorkersOfTheCluster(t *testing.T) {
	srv, c := newFake(t)
	ctx := context.Background()
	mine, _ := c.Launch(ctx, engine.LaunchRequest{Token: "t1", OperationID: "op1", Count: 2, Offering: offA})
	srv.Add(ec2fake.Instance{ID: "i-master", State: "running", Tags: []ec2fake.Tag{{Key: TagCluster, Value: "demo"}}}) // not managed-by
	srv.Add(ec2fake.Instance{ID: "i-other", State: "running", Tags: []ec2fake.Tag{{Key: TagCluster, Value: "other"}, {Key: TagManagedBy, Value: ManagedByValue}}})
	srv.Add(ec2fake.Instance{ID: "i-old", State: "terminated", Tags: []ec2fake.Tag{{Key: TagCluster, Value: "demo"}, {Key: TagManagedBy, Value: ManagedByValue}}})
	srv.SetState(mine[0].ID, "running")
	got, err := c.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]engine.InstanceState{}
	for _, in := range got {
		states[in.ID] = in.State
	}
	if len(got) != 3 {
		t.Errorf("Instances = %s, want %s and i-old", ids(got), ids(mine))
	}
	if states[mine[0].ID] != engine.InstanceRunning || states[mine[1].ID] != engine.InstancePending {
		t.Errorf("states %v", states)
	}
	// a terminated worker is still listed (as EC2 does for about an hour), as gone
	if st, ok := states["i-old"]; !ok || st != engine.InstanceTerminated {
		t.Errorf("terminated worker: %v (listed %v), want state terminated", st, ok)
	}
	if _, ok := states["i-master"]; ok {
		t.Error("unmanaged instance listed")
	}
	if _, ok := states["i-other"]; ok {
		t.Error("other cluster's instance listed")
	}
}

// DescribeInstances lags RunInstances: the adapter returns what EC2 shows, and the engine
// counts the launched-but-unseen instances as launching instead of launching again.
func TestDescribeLagsRunInstances(t *testing.T) {
	srv, c := newFake(t)
	srv.Lag = 2
	ctx := context.Background()
	p := engine.DefaultPolicy()
	store := &fakes.Store{}
	metrics := fakes.NewMetrics(p, map[string]float64{
		engine.ReadingCPU: 85, engine.ReadingCPUHighMin: 82, engine.ReadingCPULowMax: 90, engine.ReadingMemory: 50,
		engine.ReadingPending: 0, engine.ReadingPendingMin: 0, engine.ReadingNodes: 3, engine.ReadingMetricAge: 10,
	})
	for _, id := range []string{"i-w1", "i-w2"} {
		srv.Add(ec2fake.Instance{ID: id, State: "running", LaunchTime: t0.Add(-time.Hour), Tags: []ec2fake.Tag{{Key: TagCluster, Value: "demo"}, {Key: TagManagedBy, Value: ManagedByValue}}})
	}
	step := func() *engine.Step {
		return &engine.Step{ClusterID: "demo", Policy: p, Metrics: metrics, Cloud: c, Store: store,
			Cluster: &fakes.Cluster{List: fakes.Workers(t0.Add(-time.Hour), "i-w1", "i-w2")}, Offerings: []engine.Offering{offA}}
	}
	rec, err := step().Run(ctx, t0, "a")
	if err != nil || rec.Decision.Action != engine.ActionScaleUp {
		t.Fatalf("first tick: %v %+v", err, rec.Decision)
	}
	launched := len(srv.Instances()) - 2
	// The adapter does not see the new instances yet.
	seen, _ := c.Instances(ctx)
	if len(seen) != 2 {
		t.Fatalf("Instances right after launch = %d, want the 2 old ones (lag)", len(seen))
	}
	// Past the scale-up cooldown, CPU still high: the next tick must count the unseen
	// instances as capacity (not launch them again).
	rec, err = step().Run(ctx, t0.Add(6*time.Minute), "b")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Observation.Capacity() != 2+launched {
		t.Errorf("capacity %d, want %d (old + launched-but-unseen)", rec.Observation.Capacity(), 2+launched)
	}
	seen, _ = c.Instances(ctx)
	if len(seen) != 2+launched {
		t.Errorf("after the lag Instances = %d, want %d", len(seen), 2+launched)
	}
}

func TestTerminateOnlyManagedWorkers(t *testing.T) {
	srv, c := newFake(t)
	ctx := context.Background()
	mine, _ := c.Launch(ctx, engine.LaunchRequest{Token: "t1", OperationID: "op1", Count: 1, Offering: offA})
	srv.Add(ec2fake.Instance{ID: "i-master", State: "running", Tags: []ec2fake.Tag{{Key: TagCluster, Value: "demo"}}})
	srv.Add(ec2fake.Instance{ID: "i-other", State: "running", Tags: []ec2fake.Tag{{Key: TagCluster, Value: "other"}, {Key: TagManagedBy, Value: ManagedByValue}}})

	for _, bad := range [][]string{{"i-master"}, {mine[0].ID, "i-other"}} {
		err := c.Terminate(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("Terminate(%v) = %v, want a refusal", bad, err)
		}
	}
	if n := srv.Count("TerminateInstances"); n != 0 {
		t.Fatalf("TerminateInstances called %d times for refused IDs", n)
	}
	if err := c.Terminate(ctx, []string{mine[0].ID}); err != nil {
		t.Fatal(err)
	}
	for _, in := range srv.Instances() {
		want := "running"
		if in.ID == mine[0].ID {
			want = "shutting-down"
		}
		if in.ID != mine[0].ID && in.State != want {
			t.Errorf("%s is %s, want %s", in.ID, in.State, want)
		}
		if in.ID == mine[0].ID && in.State != want {
			t.Errorf("%s is %s, want %s", in.ID, in.State, want)
		}
	}
	if err := c.Terminate(ctx, []string{"i-gone"}); !engine.IsNotFound(err) {
		t.Errorf("Terminate of a missing instance: %v, want not_found", err)
	}
}

func TestErrorCodesMapToKinds(t *testing.T) {
	tests := []struct {
		action, code string
		kind         engine.ErrorKind
		transient    bool
	}{
		{"RunInstances", "InsufficientInstanceCapacity", engine.KindCapacity, true},
		{"RunInstances", "InstanceLimitExceeded", engine.KindQuota, false},
		{"RunInstances", "VcpuLimitExceeded", engine.KindQuota, false},
		{"RunInstances", "RequestLimitExceeded", engine.KindThrottled, true},
		{"RunInstances", "Unsupported", engine.KindUnsupported, false},
		{"RunInstances", "InvalidParameterCombination", engine.KindOther, false},
		{"DescribeInstances", "RequestLimitExceeded", engine.KindThrottled, true},
		{"DescribeInstances", "Throttling", engine.KindThrottled, true},
		{"TerminateInstances", "InvalidInstanceID.NotFound", engine.KindNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.action+"/"+tt.code, func(t *testing.T) {
			srv, c := newFake(t)
			ctx := context.Background()
			insts, err := c.Launch(ctx, engine.LaunchRequest{Token: "t", OperationID: "op", Count: 1, Offering: offA})
			if err != nil {
				t.Fatal(err)
			}
			srv.FailNext(tt.action, tt.code)
			switch tt.action {
			case "RunInstances":
				_, err = c.Launch(ctx, engine.LaunchRequest{Token: "t2", OperationID: "op2", Count: 1, Offering: offA})
			case "DescribeInstances":
				_, err = c.Instances(ctx)
			case "TerminateInstances":
				err = c.Terminate(ctx, []string{insts[0].ID})
			}
			var ce *engine.CloudError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want *engine.CloudError", err, err)
			}
			if ce.Kind != tt.kind || ce.Code != tt.code || ce.Transient() != tt.transient {
				t.Errorf("kind %s code %s transient %v, want %s %s %v", ce.Kind, ce.Code, ce.Transient(), tt.kind, tt.code, tt.transient)
			}
			if tt.action == "RunInstances" && ce.Offering != offA {
				t.Errorf("launch error without its offering: %+v", ce)
			}
		})
	}
}

// Out of capacity in one offering, the engine falls over to the next one and backs the
// first one off.
func TestCapacityFallsOverToTheNextOffering(t *testing.T) {
	srv, c := newFake(t)
	p := engine.DefaultPolicy()
	offB := engine.Offering{InstanceType: "t3.large", Zone: "us-east-1b", Subnet: "subnet-b"}
	srv.FailNext("RunInstances", "InsufficientInstanceCapacity")
	for _, id := range []string{"i-w1", "i-w2"} {
		srv.Add(ec2fake.Instance{ID: id, State: "running", LaunchTime: t0.Add(-time.Hour), Tags: []ec2fake.Tag{{Key: TagCluster, Value: "demo"}, {Key: TagManagedBy, Value: ManagedByValue}}})
	}
	store := &fakes.Store{}
	step := &engine.Step{ClusterID: "demo", Policy: p, Cloud: c, Store: store, Offerings: []engine.Offering{offA, offB},
		Cluster: &fakes.Cluster{List: fakes.Workers(t0.Add(-time.Hour), "i-w1", "i-w2")},
		Metrics: fakes.NewMetrics(p, map[string]float64{
			engine.ReadingCPU: 85, engine.ReadingCPUHighMin: 82, engine.ReadingCPULowMax: 90, engine.ReadingMemory: 50,
			engine.ReadingPending: 0, engine.ReadingPendingMin: 0, engine.ReadingNodes: 3, engine.ReadingMetricAge: 10,
		})}
	rec, err := step.Run(context.Background(), t0, "a")
	if err != nil {
		t.Fatal(err)
	}
	var zones []string
	for _, in := range srv.Instances() {
		if in.Token != "" {
			zones = append(zones, in.Zone)
		}
	}
	if len(zones) == 0 || zones[0] != "us-east-1b" {
		t.Errorf("launched in %v, want us-east-1b after 1a had no capacity; acts %+v", zones, rec.Acted)
	}
	if _, ok := store.St.Backoff[offA.Key()]; !ok {
		t.Errorf("offering %s not backed off: %+v", offA.Key(), store.St.Backoff)
	}
}
