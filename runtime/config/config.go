// Package config reads the runtime's configuration from environment variables and validates
// it, listing every problem at once.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// Role is a job the process does; each needs its own settings.
type Role string

const (
	RoleTick    Role = "tick"    // EventBridge schedule -> one autoscaler tick
	RoleSlack   Role = "slack"   // SNS -> Slack forwarder
	RoleExplain Role = "explain" // local: observe + decide against Prometheus only
)

// Config is the runtime's configuration.
type Config struct {
	Roles                 []Role
	ClusterID             string
	Table                 string
	LaunchTemplate        string
	LaunchTemplateVersion string
	Offerings             []engine.Offering
	TopicARN              string
	AlertTopicARN         string
	PrometheusURL         string
	PrometheusTimeout     time.Duration
	SlackSecret           string
	KubeconfigSecret      string
	Kubeconfig            string
	Policy                engine.Policy
	Lease                 time.Duration
	DrainCallTimeout      time.Duration
	DryRun                bool
}

// Var documents one environment variable.
type Var struct {
	Name, Default, Doc string
}

// Vars lists every environment variable the runtime reads (for -h and the docs).
var Vars = []Var{
	{"SMARTSCALE_HANDLES", "tick,slack", "what this function handles: tick (EventBridge schedule), slack (SNS forwarder); comma-separated"},
	{"SMARTSCALE_CLUSTER_ID", "", "cluster id: DynamoDB key, EC2 tag smartscale.io/cluster, operation-id prefix (tick)"},
	{"SMARTSCALE_TABLE", "", "DynamoDB table of state and lock, partition key cluster_id (S) (tick)"},
	{"SMARTSCALE_LAUNCH_TEMPLATE", "", "worker launch template: id lt-... or name (tick)"},
	{"SMARTSCALE_LAUNCH_TEMPLATE_VERSION", "$Default", "launch template version"},
	{"SMARTSCALE_SUBNETS", "", "worker subnets in order of preference, subnet-id=zone, comma-separated (tick)"},
	{"SMARTSCALE_INSTANCE_TYPES", "t3.medium", "instance types in order of preference; offerings are every type x every subnet, types first"},
	{"SMARTSCALE_SNS_TOPIC_ARN", "", "SNS topic for scaling events (empty: no notifications)"},
	{"SMARTSCALE_ALERT_TOPIC_ARN", "", "SNS topic Alertmanager publishes scale-up alerts to: its messages run an alert tick (tick; the policy's alert_ticks must be on)"},
	{"PROMETHEUS_URL", "", "Prometheus base URL, e.g. http://10.0.1.10:30090 (tick, explain)"},
	{"SMARTSCALE_PROMETHEUS_TIMEOUT", "10s", "bound on one Prometheus query"},
	{"SLACK_WEBHOOK_SECRET_ARN", "", "Secrets Manager secret holding the Slack incoming-webhook URL, plain or JSON {\"url\": ...} (slack)"},
	{"SMARTSCALE_KUBECONFIG_SECRET_ARN", "", "Secrets Manager secret holding a kubeconfig for the K3s API (tick; or KUBECONFIG)"},
	{"KUBECONFIG", "", "path of a kubeconfig file (local runs; tick needs this or the secret)"},
	{"POLICY_JSON", "", "a preset (brief, responsive) or policy overrides as JSON, e.g. {\"preset\": \"responsive\", \"max_workers\": 6}"},
	{"SMARTSCALE_LEASE", "3m", "lock lease; must exceed the Lambda timeout"},
	{"SMARTSCALE_DRAIN_CALL_TIMEOUT", "30s", "bound on one drain pass per tick (the policy's drain_timeout bounds the whole drain)"},
	{"SMARTSCALE_DRY_RUN", "false", "decide and log but never write (no launch, drain, terminate, state write or notification)"},
	{"AWS_REGION", "", "AWS region (set by Lambda); AWS_ENDPOINT_URL_<SERVICE> overrides endpoints (tests)"},
}

// Usage writes the variables as a table.
func Usage() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	for _, v := range Vars {
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Doc)
	}
	tw.Flush()
	return b.String()
}

// FromEnv reads the configuration with getenv (os.Getenv) and validates it: the error
// lists every problem.
func FromEnv(getenv func(string) string) (Config, error) {
	c, perr := Parse(getenv)
	if err := c.Validate(); err != nil || perr != nil {
		return c, errors.Join(perr, err)
	}
	return c, nil
}

// Parse reads the configuration without validating it for its roles; the error lists the
// values that could not be read.
func Parse(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range Vars {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	var errs []error
	dur := func(name string) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s, 3m)", name, get(name)))
		}
		return d
	}
	c := Config{
		ClusterID:             get("SMARTSCALE_CLUSTER_ID"),
		Table:                 get("SMARTSCALE_TABLE"),
		LaunchTemplate:        get("SMARTSCALE_LAUNCH_TEMPLATE"),
		LaunchTemplateVersion: get("SMARTSCALE_LAUNCH_TEMPLATE_VERSION"),
		TopicARN:              get("SMARTSCALE_SNS_TOPIC_ARN"),
		AlertTopicARN:         get("SMARTSCALE_ALERT_TOPIC_ARN"),
		PrometheusURL:         get("PROMETHEUS_URL"),
		PrometheusTimeout:     dur("SMARTSCALE_PROMETHEUS_TIMEOUT"),
		SlackSecret:           get("SLACK_WEBHOOK_SECRET_ARN"),
		KubeconfigSecret:      get("SMARTSCALE_KUBECONFIG_SECRET_ARN"),
		Kubeconfig:            get("KUBECONFIG"),
		Lease:                 dur("SMARTSCALE_LEASE"),
		DrainCallTimeout:      dur("SMARTSCALE_DRAIN_CALL_TIMEOUT"),
		Policy:                engine.DefaultPolicy(),
	}
	for _, r := range split(get("SMARTSCALE_HANDLES")) {
		switch Role(r) {
		case RoleTick, RoleSlack:
			c.Roles = append(c.Roles, Role(r))
		default:
			errs = append(errs, fmt.Errorf("SMARTSCALE_HANDLES: unknown %q (want tick, slack)", r))
		}
	}
	if b, err := strconv.ParseBool(get("SMARTSCALE_DRY_RUN")); err != nil {
		errs = append(errs, fmt.Errorf("SMARTSCALE_DRY_RUN: %q is not a boolean", get("SMARTSCALE_DRY_RUN")))
	} else {
		c.DryRun = b
	}
	if pj := strings.TrimSpace(get("POLICY_JSON")); slices.Contains(engine.PresetNames(), pj) {
		c.Policy, _ = engine.PresetPolicy(pj)
	} else if pj != "" {
		p, err := engine.ParsePolicy(strings.NewReader(pj), engine.DefaultPolicy())
		if err != nil {
			errs = append(errs, fmt.Errorf("POLICY_JSON: %w", err))
		}
		c.Policy = p
	}
	types := split(get("SMARTSCALE_INSTANCE_TYPES"))
	for _, s := range split(get("SMARTSCALE_SUBNETS")) {
		subnet, zone, _ := strings.Cut(s, "=")
		if !strings.HasPrefix(subnet, "subnet-") {
			errs = append(errs, fmt.Errorf("SMARTSCALE_SUBNETS: %q is not a subnet id (subnet-...=zone)", s))
			continue
		}
		for _, t := range types {
			c.Offerings = append(c.Offerings, engine.Offering{InstanceType: t, Zone: zone, Subnet: subnet})
		}
	}
	// Types first: all subnets of the first type, then the next type.
	if len(types) > 1 {
		var byType []engine.Offering
		for _, t := range types {
			for _, o := range c.Offerings {
				if o.InstanceType == t {
					byType = append(byType, o)
				}
			}
		}
		c.Offerings = byType
	}
	return c, errors.Join(errs...)
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Has reports whether the configuration includes a role.
func (c Config) Has(r Role) bool {
	for _, x := range c.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Validate reports every problem of the configuration for its roles.
func (c Config) Validate() error {
	var errs []error
	need := func(name, v string, why Role) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required (%s)", name, why))
		}
	}
	if len(c.Roles) == 0 {
		errs = append(errs, errors.New("SMARTSCALE_HANDLES: no role"))
	}
	if c.Has(RoleTick) {
		need("SMARTSCALE_CLUSTER_ID", c.ClusterID, RoleTick)
		need("SMARTSCALE_TABLE", c.Table, RoleTick)
		need("SMARTSCALE_LAUNCH_TEMPLATE", c.LaunchTemplate, RoleTick)
		if len(c.Offerings) == 0 {
			errs = append(errs, fmt.Errorf("SMARTSCALE_SUBNETS is required (%s): at least one subnet-id=zone", RoleTick))
		}
		if c.KubeconfigSecret == "" && c.Kubeconfig == "" {
			errs = append(errs, fmt.Errorf("SMARTSCALE_KUBECONFIG_SECRET_ARN or KUBECONFIG is required (%s)", RoleTick))
		}
		if c.Lease < time.Minute {
			errs = append(errs, fmt.Errorf("SMARTSCALE_LEASE must be >= 1m and exceed the Lambda timeout, got %v", c.Lease))
		}
		if c.DrainCallTimeout < time.Second {
			errs = append(errs, fmt.Errorf("SMARTSCALE_DRAIN_CALL_TIMEOUT must be >= 1s, got %v", c.DrainCallTimeout))
		}
		if c.ClusterID != "" && !validID(c.ClusterID) {
			errs = append(errs, fmt.Errorf("SMARTSCALE_CLUSTER_ID %q: use letters, digits, '-' and '_' (at most 64)", c.ClusterID))
		}
	}
	if c.Has(RoleTick) || c.Has(RoleExplain) {
		role := RoleExplain
		if c.Has(RoleTick) {
			role = RoleTick
		}
		need("PROMETHEUS_URL", c.PrometheusURL, role)
		if c.PrometheusURL != "" {
			if u, err := url.Parse(c.PrometheusURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("PROMETHEUS_URL %q is not an http(s) URL", c.PrometheusURL))
			}
		}
		if c.PrometheusTimeout <= 0 {
			errs = append(errs, fmt.Errorf("SMARTSCALE_PROMETHEUS_TIMEOUT must be > 0, got %v", c.PrometheusTimeout))
		}
		if err := c.Policy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("policy: %w", err))
		}
	}
	if c.Has(RoleSlack) {
		need("SLACK_WEBHOOK_SECRET_ARN", c.SlackSecret, RoleSlack)
	}
	return errors.Join(errs...)
}

func validID(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
