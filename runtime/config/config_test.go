package config

import (
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
)

func full() map[string]string {
	return map[string]string{
		"SMARTSCALE_CLUSTER_ID": "demo", "SMARTSCALE_TABLE": "smartscale", "SMARTSCALE_LAUNCH_TEMPLATE": "lt-0abc",
		"SMARTSCALE_SUBNETS": "subnet-a=us-east-1a, subnet-b=us-east-1b", "SMARTSCALE_INSTANCE_TYPES": "t3.medium,t3a.medium",
		"PROMETHEUS_URL": "http://10.0.1.10:30090", "SLACK_WEBHOOK_SECRET_ARN": "arn:slack", "SMARTSCALE_KUBECONFIG_SECRET_ARN": "arn:kube",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestFromEnvDefaults(t *testing.T) {
	c, err := FromEnv(func(k string) string { return full()[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Lease != 3*time.Minute || c.PrometheusTimeout != 10*time.Second || c.DrainCallTimeout != 30*time.Second || c.LaunchTemplateVersion != "$Default" || c.DryRun {
		t.Errorf("defaults %+v", c)
	}
	if !c.Has(RoleTick) || !c.Has(RoleSlack) {
		t.Errorf("roles %v", c.Roles)
	}
	want := []engine.Offering{
		{InstanceType: "t3.medium", Zone: "us-east-1a", Subnet: "subnet-a"}, {InstanceType: "t3.medium", Zone: "us-east-1b", Subnet: "subnet-b"},
		{InstanceType: "t3a.medium", Zone: "us-east-1a", Subnet: "subnet-a"}, {InstanceType: "t3a.medium", Zone: "us-east-1b", Subnet: "subnet-b"},
	}
	if len(c.Offerings) != len(want) {
		t.Fatalf("offerings %v", c.Offerings)
	}
	for i := range want {
		if c.Offerings[i] != want[i] {
			t.Errorf("offering %d = %v, want %v", i, c.Offerings[i], want[i])
		}
	}
	if c.Policy.MaxWorkers != engine.DefaultPolicy().MaxWorkers {
		t.Errorf("policy not the default")
	}
}

func TestFromEnvProblems(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // every one must be listed
	}{
		{"empty environment", map[string]string{}, []string{"SMARTSCALE_CLUSTER_ID is required", "SMARTSCALE_TABLE is required",
			"SMARTSCALE_LAUNCH_TEMPLATE is required", "SMARTSCALE_SUBNETS is required", "KUBECONFIG is required", "PROMETHEUS_URL is required", "SLACK_WEBHOOK_SECRET_ARN is required"}},
		{"bad values", with(full(), "SMARTSCALE_LEASE", "30s", "SMARTSCALE_PROMETHEUS_TIMEOUT", "ten", "SMARTSCALE_DRY_RUN", "maybe",
			"SMARTSCALE_SUBNETS", "sn-1", "PROMETHEUS_URL", "10.0.1.10:30090", "SMARTSCALE_HANDLES", "tick,pager", "SMARTSCALE_CLUSTER_ID", "demo cluster"),
			[]string{"SMARTSCALE_LEASE must be >= 1m", "SMARTSCALE_PROMETHEUS_TIMEOUT", "SMARTSCALE_DRY_RUN", "sn-1", "PROMETHEUS_URL", "pager", "SMARTSCALE_CLUSTER_ID \"demo cluster\""}},
		{"bad policy", with(full(), "POLICY_JSON", `{"min_workers": 5, "max_workers": 3, "bogus": 1}`), []string{"POLICY_JSON", "bogus"}},
		{"invalid policy values", with(full(), "POLICY_JSON", `{"min_workers": 5, "max_workers": 3}`), []string{"min_workers (5) must not exceed max_workers (3)"}},
		{"tick only needs no slack secret", with(full(), "SMARTSCALE_HANDLES", "tick", "SLACK_WEBHOOK_SECRET_ARN", ""), nil},
		{"slack only needs nothing else", map[string]string{"SMARTSCALE_HANDLES": "slack", "SLACK_WEBHOOK_SECRET_ARN": "arn"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromEnv(func(k string) string { return tt.env[k] })
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not list %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestPolicyJSONOverrides(t *testing.T) {
	c, err := FromEnv(func(k string) string {
		return with(full(), "POLICY_JSON", `{"max_workers": 6, "scale_up_cooldown": "3m"}`)[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy.MaxWorkers != 6 || c.Policy.ScaleUpCooldown != 3*time.Minute || c.Policy.MinWorkers != 2 {
		t.Errorf("policy %+v", c.Policy)
	}
}

func TestPolicyJSONTakesAPreset(t *testing.T) {
	for in, want := range map[string]string{
		"responsive": engine.PresetResponsive,
		" brief ":    engine.PresetBrief,
		`{"preset": "responsive", "max_workers": 6}`: engine.PresetResponsive,
	} {
		c, err := FromEnv(func(k string) string { return with(full(), "POLICY_JSON", in)[k] })
		if err != nil || c.Policy.Preset != want {
			t.Errorf("POLICY_JSON=%q: preset %q, err %v", in, c.Policy.Preset, err)
		}
	}
	_, err := FromEnv(func(k string) string { return with(full(), "POLICY_JSON", `{"preset": "turbo"}`)[k] })
	if err == nil || !strings.Contains(err.Error(), `unknown preset "turbo"`) {
		t.Errorf("unknown preset: %v", err)
	}
}
