package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func spotStack(t *testing.T) result {
	t.Helper()
	cfg := testConfig(t)
	cfg["smartscale:spotPercent"] = "70"
	cfg["smartscale:onDemandBase"] = "1"
	r := runProgram(t, cfg)
	if r.err != nil {
		t.Fatalf("program failed: %v", r.err)
	}
	return r
}

// With spot, EventBridge rules send EC2's interruption warnings and rebalance
// recommendations to the Lambda, which may invoke it; without spot there are none.
func TestSpotNoticeRules(t *testing.T) {
	r := spotStack(t)
	perms := map[string]bool{}
	for _, p := range r.all(tPerm) {
		if fmtS(p.Inputs["principal"]) == "events.amazonaws.com" {
			perms[fmtS(p.Inputs["sourceArn"])] = true
		}
	}
	for _, n := range []struct{ name, detail string }{
		{"spot-interruption", "EC2 Spot Instance Interruption Warning"},
		{"rebalance", "EC2 Instance Rebalance Recommendation"},
	} {
		rule := r.one(t, tRule, n.name)
		var pat map[string][]string
		if err := json.Unmarshal([]byte(fmtS(rule.Inputs["eventPattern"])), &pat); err != nil {
			t.Fatalf("%s pattern %v: %v", n.name, rule.Inputs["eventPattern"], err)
		}
		if !slices.Equal(pat["source"], []string{"aws.ec2"}) || !slices.Equal(pat["detail-type"], []string{n.detail}) || len(pat) != 2 {
			t.Errorf("%s pattern %v", n.name, pat)
		}
		if rule.Inputs["scheduleExpression"] != nil {
			t.Errorf("%s is scheduled", n.name)
		}
		if tg := r.one(t, tTarget, n.name); tg.Inputs["arn"] != functionArn {
			t.Errorf("%s targets %v", n.name, tg.Inputs["arn"])
		}
		if !perms["arn:aws:mock:us-east-1:"+testAccount+":EventRule/"+n.name] {
			t.Errorf("no invoke permission for %s: %v", n.name, perms)
		}
	}
	f := r.one(t, tFunction, "autoscaler")
	var pol map[string]any
	if err := json.Unmarshal([]byte(fmtS(get(f.Inputs, "environment", "variables", "POLICY_JSON"))), &pol); err != nil {
		t.Fatal(err)
	}
	if pol["spot_percent"] != 70.0 || pol["on_demand_base"] != 1.0 {
		t.Errorf("policy %v", pol)
	}
	// the on-demand stack has neither the rules nor spot in its policy
	for _, rule := range stack(t).all(tRule) {
		if rule.Name != "tick" {
			t.Errorf("rule %s without spot", rule.Name)
		}
	}
}

// The spot grants keep the on-demand ones' conditions: a spot request is created only by a
// RunInstances from the worker template carrying both ownership tags, and tagged only at
// launch; the service-linked role grant names EC2 Spot's role alone.
func TestSpotGrantsAreTagBound(t *testing.T) {
	d := rolePolicy(t, spotStack(t), "autoscaler")
	var spotRun int
	for _, s := range stmtsFor(d, "ec2:RunInstances") {
		if len(s.Action) != 1 || cond(s, "ArnEquals", "ec2:LaunchTemplate") != ltArn {
			t.Errorf("RunInstances statement %s: %v %v", s.Sid, s.Action, s.Condition)
		}
		for _, res := range s.Resource {
			if res == "*" {
				t.Errorf("RunInstances on *")
			}
			if strings.Contains(res, ":spot-instances-request/") {
				spotRun++
				if cond(s, "StringEquals", "aws:RequestTag/managed-by") != "smartscale" ||
					cond(s, "StringEquals", "aws:RequestTag/smartscale.io/cluster") != "demo" {
					t.Errorf("spot requests without the ownership tag conditions: %v", s.Condition)
				}
			}
		}
	}
	if spotRun != 1 {
		t.Errorf("want one RunInstances grant on spot requests, got %d", spotRun)
	}
	for _, s := range stmtsFor(d, "ec2:CreateTags") {
		if cond(s, "StringEquals", "ec2:CreateAction") != "RunInstances" {
			t.Errorf("CreateTags outside RunInstances: %+v", s)
		}
	}
	slr := stmtsFor(d, "iam:CreateServiceLinkedRole")
	if len(slr) != 1 || cond(slr[0], "StringEquals", "iam:AWSServiceName") != "spot.amazonaws.com" || len(slr[0].Resource) != 1 ||
		!strings.HasSuffix(slr[0].Resource[0], ":role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot") {
		t.Errorf("service-linked role grant %+v", slr)
	}
	if len(stmtsFor(d, "ec2:DescribeSpotPriceHistory")) != 1 {
		t.Error("no spot price reads")
	}
	// terminations stay bound to the managed tags (no spot exception)
	for _, s := range stmtsFor(d, "ec2:TerminateInstances") {
		if cond(s, "StringEquals", "ec2:ResourceTag/managed-by") != "smartscale" {
			t.Errorf("terminate without the tag condition: %+v", s)
		}
	}
	// the on-demand stack has no spot grant
	od := rolePolicy(t, stack(t), "autoscaler")
	if len(stmtsFor(od, "iam:CreateServiceLinkedRole"))+len(stmtsFor(od, "ec2:DescribeSpotPriceHistory")) != 0 {
		t.Error("spot grants without spot")
	}
}

func TestSpotConfigProblems(t *testing.T) {
	cfg := testConfig(t)
	cfg["smartscale:spotPercent"] = "120"
	cfg["smartscale:onDemandBase"] = "11"
	r := runProgram(t, cfg)
	if r.err == nil || !strings.Contains(r.err.Error(), "spotPercent must be in [0, 100]") || !strings.Contains(r.err.Error(), "onDemandBase must be in [0, maxWorkers (10)]") {
		t.Errorf("error %v", r.err)
	}
}

// A policy file (sim tune's best-policy.json) with a spot share gets the notice rules and
// the spot grants as the stack's spotPercent does; one without gets neither.
func TestSpotFromPolicyFile(t *testing.T) {
	for _, tt := range []struct {
		doc  string
		spot bool
	}{
		{`{"preset": "responsive", "spot_percent": 70, "on_demand_base": 1}`, true},
		{`{"preset": "responsive"}`, false},
	} {
		file := filepath.Join(t.TempDir(), "best-policy.json")
		if err := os.WriteFile(file, []byte(tt.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t)
		cfg["smartscale:policyFile"] = file
		r := runProgram(t, cfg)
		if r.err != nil {
			t.Fatalf("%s: %v", tt.doc, r.err)
		}
		var rules []string
		for _, rule := range r.all(tRule) {
			if rule.Name != "tick" {
				rules = append(rules, rule.Name)
			}
		}
		slices.Sort(rules)
		d := rolePolicy(t, r, "autoscaler")
		grants := len(stmtsFor(d, "ec2:DescribeSpotPriceHistory"))
		if tt.spot && (!slices.Equal(rules, []string{"rebalance", "spot-interruption"}) || grants != 1) {
			t.Errorf("%s: rules %v, spot price grants %d; want the two notice rules and the grant", tt.doc, rules, grants)
		}
		if !tt.spot && (len(rules) != 0 || grants != 0) {
			t.Errorf("%s: rules %v, spot price grants %d without spot", tt.doc, rules, grants)
		}
	}
}
