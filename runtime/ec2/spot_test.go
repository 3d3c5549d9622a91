package ec2

import (
	"context"
	"strings"
	"testing"

	"github.com/smartscale/smartscale/engine"
)

var spotB = engine.Offering{InstanceType: "t3.medium", Zone: "us-east-1b", Subnet: "subnet-b", CapacityType: engine.CapacitySpot}

func TestSpotLaunchIsAOneTimeTaggedRequest(t *testing.T) {
	srv, c := newFake(t)
	ctx := context.Background()
	req := engine.LaunchRequest{Token: "demo-op-3-1", OperationID: "demo-op-3", Count: 2, Offering: spotB}
	insts, err := c.Launch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if in.Offering != spotB {
			t.Errorf("launched %+v, want the spot offering back", in.Offering)
		}
	}
	r := srv.Requests()[0]
	for k, v := range map[string]string{
		"InstanceMarketOptions.MarketType":                               "spot",
		"InstanceMarketOptions.SpotOptions.SpotInstanceType":             "one-time",
		"InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior": "terminate",
		"TagSpecification.3.ResourceType":                                "spot-instances-request",
		"ClientToken":                                                    "demo-op-3-1",
	} {
		if got := r.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	reqs := srv.SpotRequests()
	if len(reqs) != 2 {
		t.Fatalf("%d spot requests, want 2", len(reqs))
	}
	for _, sr := range reqs {
		tags := map[string]string{}
		for _, tg := range sr.Tags {
			tags[tg.Key] = tg.Value
		}
		if sr.State != "active" || tags[TagManagedBy] != ManagedByValue || tags[TagCluster] != "demo" || tags[TagOperation] != "demo-op-3" {
			t.Errorf("spot request %+v: want active and tagged like its instance (the IAM conditions key on the tags)", sr)
		}
	}
	// the same token again: the same instances, no new request
	again, err := c.Launch(ctx, req)
	if err != nil || len(again) != 2 || again[0].ID != insts[0].ID || len(srv.SpotRequests()) != 2 {
		t.Errorf("retry with the token: %v %+v, %d requests", err, again, len(srv.SpotRequests()))
	}
	// listed as spot; terminating closes the request (no orphaned spot request)
	list, err := c.Instances(ctx)
	if err != nil || len(list) != 2 || !list[0].Offering.Spot() {
		t.Fatalf("listed %+v %v", list, err)
	}
	if err := c.Terminate(ctx, []string{insts[0].ID}); err != nil {
		t.Fatal(err)
	}
	srv.SetState(insts[1].ID, "shutting-down") // reclaimed by EC2
	for _, sr := range srv.SpotRequests() {
		if sr.State != "closed" {
			t.Errorf("spot request %s of a terminated instance is %s", sr.ID, sr.State)
		}
	}
	// an on-demand launch sends no market options
	if _, err := c.Launch(ctx, engine.LaunchRequest{Token: "t2", OperationID: "op", Count: 1, Offering: offA}); err != nil {
		t.Fatal(err)
	}
	if last := srv.Requests()[len(srv.Requests())-1]; last.Get("InstanceMarketOptions.MarketType") != "" {
		t.Errorf("on-demand launch with market options %v", last)
	}
}

func TestSpotErrorsAreTyped(t *testing.T) {
	for _, c := range []struct {
		code string
		kind engine.ErrorKind
	}{
		{"InsufficientInstanceCapacity", engine.KindCapacity},
		{"SpotMaxPriceTooLow", engine.KindCapacity},
		{"capacity-not-available", engine.KindCapacity},
		{"MaxSpotInstanceCountExceeded", engine.KindQuota},
	} {
		t.Run(c.code, func(t *testing.T) {
			srv, cl := newFake(t)
			srv.FailNext("RunInstances", c.code)
			_, err := cl.Launch(context.Background(), engine.LaunchRequest{Token: "t", OperationID: "op", Count: 1, Offering: spotB})
			if engine.KindOf(err) != c.kind || !strings.Contains(err.Error(), c.code) || !strings.Contains(err.Error(), spotB.Key()) {
				t.Errorf("error %v: kind %s, want %s naming the code and the offering", err, engine.KindOf(err), c.kind)
			}
		})
	}
	_, cl := newFake(t)
	bad := spotB
	bad.CapacityType = "reserved"
	if _, err := cl.Launch(context.Background(), engine.LaunchRequest{Token: "t", Count: 1, Offering: bad}); !engine.IsUnsupported(err) ||
		!strings.Contains(err.Error(), `unknown capacity type "reserved"`) {
		t.Errorf("unknown capacity type: %v", err)
	}
}

func TestSpotPricesFromThePriceHistory(t *testing.T) {
	srv, c := newFake(t)
	srv.SpotPrices = map[string]float64{"t3.medium/us-east-1a": 0.0142, "t3.medium/us-east-1b": 0.0131, "t3.large/us-east-1b": 0.0262}
	spotA := spotB
	spotA.Zone, spotA.Subnet = "us-east-1a", "subnet-a"
	od := spotB
	od.CapacityType = ""
	got, err := c.Prices(context.Background(), []engine.Offering{spotA, spotB, od})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[spotA.Key()] != 0.0142 || got[spotB.Key()] != 0.0131 {
		t.Errorf("prices %v", got)
	}
	r := srv.Requests()[0]
	if r.Get("Action") != "DescribeSpotPriceHistory" || r.Get("InstanceType.1") != "t3.medium" || r.Get("ProductDescription.1") != "Linux/UNIX" || r.Get("StartTime") == "" {
		t.Errorf("request %v", r)
	}
	srv.FailNext("DescribeSpotPriceHistory", "UnauthorizedOperation")
	if _, err := c.Prices(context.Background(), []engine.Offering{spotA}); err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Errorf("failure: %v", err)
	}
}
