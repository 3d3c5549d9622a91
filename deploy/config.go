package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// Tags that mark what the autoscaler owns. The IAM conditions in autoscaler.go, the Lambda's
// RunInstances/TerminateInstances calls and the worker's master lookup all rely on them.
const (
	tagManagedBy    = "managed-by"
	managedByValue  = "smartscale"
	tagCluster      = "smartscale.io/cluster"
	tagRole         = "Role"
	masterRoleValue = "k3s-master"
)

// Timing shared with the engine. The engine's lock lease is 3 minutes (engine.Step.Lease);
// the Lambda's timeout must stay well below it, so that an invocation killed by its timeout
// never outlives its lease and a later tick can always take the lock over.
const (
	engineLease         = 3 * time.Minute
	lambdaTimeout       = 100 * time.Second
	scheduleExpression  = "rate(2 minutes)"
	prometheusNodePort  = 30090
	kubeAPIPort         = 6443
	flannelVXLANPort    = 8472
	kubeletPort         = 10250
	nodeExporterPort    = 9100
	metricsNamespace    = "SmartScale"
	metricDimensionName = "cluster" // the EMF dimension runtime/emf writes
)

// Config is the stack configuration (namespace "smartscale", see Pulumi.dev.yaml.example).
type Config struct {
	Region              string   // aws:region
	ClusterID           string   // smartscale:clusterId, default "smartscale-<stack>"
	VpcCidr             string   // smartscale:vpcCidr
	MasterInstanceType  string   // smartscale:masterInstanceType
	WorkerInstanceTypes []string // smartscale:workerInstanceTypes, the first is the template's default
	AmiSsmParameter     string   // smartscale:amiSsmParameter, public SSM parameter with the AMI id
	Ami                 string   // smartscale:ami, overrides the SSM lookup
	K3sVersion          string   // smartscale:k3sVersion, master and workers alike
	LambdaZip           string   // smartscale:lambdaZip, path of the Lambda artifact
	LogRetentionDays    int      // smartscale:logRetentionDays
	DryRun              bool     // smartscale:dryRun, the Lambda decides and notifies but never acts
	Policy              Policy   // thresholds and bounds, passed to the Lambda as SMARTSCALE_POLICY_JSON
	// PolicyFile (smartscale:policyFile) is a policy file (engine.ParsePolicy form, e.g. the
	// best-policy.json of `sim tune`) passed to the Lambda as it is, instead of Policy.
	PolicyFile string
	// policyKeysSet lists the smartscale:* policy keys the stack sets (with PolicyFile: none).
	policyKeysSet []string
	RepoRoot      string // directory holding k3s/ (the deploy program runs in deploy/)
}

// Policy holds the scaling numbers of the stack. JSON keys are the engine's policy file keys
// (engine.ParsePolicy); zero values are left out so the engine's defaults apply.
type Policy struct {
	MinWorkers             int     `json:"min_workers"`
	MaxWorkers             int     `json:"max_workers"`
	ScaleUpCPUPercent      float64 `json:"scale_up_cpu_percent"`
	ScaleDownCPUPercent    float64 `json:"scale_down_cpu_percent"`
	ScaleUpMemoryPercent   float64 `json:"scale_up_memory_percent"`
	ScaleDownMemoryPercent float64 `json:"scale_down_memory_percent"`
	ScaleUpCooldown        string  `json:"scale_up_cooldown,omitempty"`
	ScaleDownCooldown      string  `json:"scale_down_cooldown,omitempty"`
	// Spot (spot.go): SpotPercent of the workers above OnDemandBase are spot; 0 keeps the
	// fleet on-demand and creates neither the interruption rules nor the spot grants.
	SpotPercent  int `json:"spot_percent,omitempty"`
	OnDemandBase int `json:"on_demand_base,omitempty"`
}

// JSON returns the policy document handed to the Lambda.
func (p Policy) JSON() string {
	b, err := json.Marshal(p)
	if err != nil { // plain struct of numbers and strings: cannot happen
		panic(err)
	}
	return string(b)
}

// loadConfig reads the stack configuration with its defaults. Values that do not parse are
// reported together with the problems Validate finds.
func loadConfig(ctx *pulumi.Context) (Config, error) {
	r := cfgReader{c: config.New(ctx, "smartscale")}
	cfg := Config{
		Region:              config.New(ctx, "aws").Get("region"),
		ClusterID:           r.str("clusterId", "smartscale-"+ctx.Stack()),
		VpcCidr:             r.str("vpcCidr", "10.40.0.0/16"),
		MasterInstanceType:  r.str("masterInstanceType", "t3.medium"),
		WorkerInstanceTypes: r.list("workerInstanceTypes", []string{"t3.medium"}),
		AmiSsmParameter:     r.str("amiSsmParameter", "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"),
		Ami:                 r.str("ami", ""),
		K3sVersion:          r.str("k3sVersion", "v1.33.1+k3s1"),
		LambdaZip:           r.str("lambdaZip", filepath.Join("..", "dist", "bootstrap.zip")),
		LogRetentionDays:    r.int("logRetentionDays", 14),
		DryRun:              r.bool("dryRun", false),
		RepoRoot:            r.str("repoRoot", ".."),
		Policy: Policy{
			MinWorkers:             r.int("minWorkers", 2),
			MaxWorkers:             r.int("maxWorkers", 10),
			ScaleUpCPUPercent:      r.float("scaleUpCpuPercent", 70),
			ScaleDownCPUPercent:    r.float("scaleDownCpuPercent", 30),
			ScaleUpMemoryPercent:   r.float("scaleUpMemoryPercent", 75),
			ScaleDownMemoryPercent: r.float("scaleDownMemoryPercent", 50),
			ScaleUpCooldown:        r.str("scaleUpCooldown", ""),
			ScaleDownCooldown:      r.str("scaleDownCooldown", ""),
			SpotPercent:            r.int("spotPercent", 0),
			OnDemandBase:           r.int("onDemandBase", 0),
		},
		PolicyFile: r.str("policyFile", ""),
	}
	for _, k := range policyKeys {
		if r.c.Get(k) != "" {
			cfg.policyKeysSet = append(cfg.policyKeysSet, "smartscale:"+k)
		}
	}
	if cfg.PolicyFile != "" && len(cfg.policyKeysSet) == 0 {
		// the spot rules and IAM (spot.go) follow the file's spot share
		cfg.Policy.SpotPercent = policyFileSpotPercent(cfg.PolicyFile)
	}
	return cfg, errors.Join(errors.Join(r.errs...), cfg.Validate())
}

// configKeys lists every smartscale:* key the program reads (Pulumi.dev.yaml.example
// documents them; a test checks the example against this list).
var configKeys = []string{
	"clusterId", "vpcCidr", "masterInstanceType", "workerInstanceTypes", "amiSsmParameter", "ami",
	"k3sVersion", "lambdaZip", "logRetentionDays", "dryRun", "repoRoot", "minWorkers", "maxWorkers",
	"scaleUpCpuPercent", "scaleDownCpuPercent", "scaleUpMemoryPercent", "scaleDownMemoryPercent",
	"scaleUpCooldown", "scaleDownCooldown", "policyFile", "slackWebhookUrl", "spotPercent", "onDemandBase",
}

// policyKeys are the keys of Policy; smartscale:policyFile replaces them all.
var policyKeys = []string{"minWorkers", "maxWorkers", "scaleUpCpuPercent", "scaleDownCpuPercent",
	"scaleUpMemoryPercent", "scaleDownMemoryPercent", "scaleUpCooldown", "scaleDownCooldown",
	"spotPercent", "onDemandBase"}

// PolicyJSON is the policy document handed to the Lambda: the policy file, compacted, or
// the stack's policy keys.
func (c Config) PolicyJSON() (string, error) {
	if c.PolicyFile == "" {
		return c.Policy.JSON(), nil
	}
	data, err := os.ReadFile(c.PolicyFile)
	if err != nil {
		return "", fmt.Errorf("smartscale:policyFile: %w", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		return "", fmt.Errorf("smartscale:policyFile %s: not a JSON object of policy keys: %w", c.PolicyFile, err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// policyFileSpotPercent is the spot_percent of a policy file, 0 when it has none or cannot
// be read (Validate reports an unreadable file).
func policyFileSpotPercent(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var f struct {
		SpotPercent int `json:"spot_percent"`
	}
	if json.Unmarshal(data, &f) != nil {
		return 0
	}
	return f.SpotPercent
}

// cfgReader reads optional keys with defaults and collects parse errors.
type cfgReader struct {
	c    *config.Config
	errs []error
}

func (r *cfgReader) str(key, def string) string {
	mustBeKnown(key)
	if v := r.c.Get(key); v != "" {
		return v
	}
	return def
}

func (r *cfgReader) parse(key string, dst any) bool {
	mustBeKnown(key)
	raw := r.c.Get(key)
	if raw == "" {
		return false
	}
	if err := json.Unmarshal([]byte(raw), dst); err != nil {
		r.errs = append(r.errs, fmt.Errorf("smartscale:%s: %q: %w", key, raw, err))
		return false
	}
	return true
}

func (r *cfgReader) int(key string, def int) int {
	var v int
	if r.parse(key, &v) {
		return v
	}
	return def
}

func (r *cfgReader) float(key string, def float64) float64 {
	var v float64
	if r.parse(key, &v) {
		return v
	}
	return def
}

func (r *cfgReader) bool(key string, def bool) bool {
	var v bool
	if r.parse(key, &v) {
		return v
	}
	return def
}

func (r *cfgReader) list(key string, def []string) []string {
	var v []string
	if r.parse(key, &v) {
		return v
	}
	return def
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Region == "" {
		bad("aws:region is required (pulumi config set aws:region us-east-1)")
	}
	if c.ClusterID == "" || strings.ContainsAny(c.ClusterID, " /\t") {
		bad("smartscale:clusterId %q must be non-empty without spaces or slashes", c.ClusterID)
	}
	if _, block, err := net.ParseCIDR(c.VpcCidr); err != nil || block.IP.To4() == nil {
		bad("smartscale:vpcCidr %q must be an IPv4 /16", c.VpcCidr)
	} else if ones, _ := block.Mask.Size(); ones != 16 {
		bad("smartscale:vpcCidr %q must be a /16 (subnets are /20s of it)", c.VpcCidr)
	}
	if len(c.WorkerInstanceTypes) == 0 {
		bad("smartscale:workerInstanceTypes must list at least one type")
	}
	p := c.Policy
	if p.MinWorkers < 0 || p.MaxWorkers < 1 || p.MinWorkers > p.MaxWorkers {
		bad("smartscale:minWorkers (%d) and maxWorkers (%d) need 0 <= min <= max, max >= 1", p.MinWorkers, p.MaxWorkers)
	}
	for name, v := range map[string]float64{
		"scaleUpCpuPercent": p.ScaleUpCPUPercent, "scaleDownCpuPercent": p.ScaleDownCPUPercent,
		"scaleUpMemoryPercent": p.ScaleUpMemoryPercent, "scaleDownMemoryPercent": p.ScaleDownMemoryPercent,
	} {
		if v <= 0 || v >= 100 {
			bad("smartscale:%s must be in (0, 100), got %v", name, v)
		}
	}
	if p.ScaleDownCPUPercent >= p.ScaleUpCPUPercent {
		bad("smartscale:scaleDownCpuPercent (%v) must be below scaleUpCpuPercent (%v)", p.ScaleDownCPUPercent, p.ScaleUpCPUPercent)
	}
	if p.ScaleDownMemoryPercent >= p.ScaleUpMemoryPercent {
		bad("smartscale:scaleDownMemoryPercent (%v) must be below scaleUpMemoryPercent (%v)", p.ScaleDownMemoryPercent, p.ScaleUpMemoryPercent)
	}
	for name, d := range map[string]string{"scaleUpCooldown": p.ScaleUpCooldown, "scaleDownCooldown": p.ScaleDownCooldown} {
		if d == "" {
			continue
		}
		if _, err := time.ParseDuration(d); err != nil {
			bad("smartscale:%s %q is not a duration (e.g. \"5m\")", name, d)
		}
	}
	if p.SpotPercent < 0 || p.SpotPercent > 100 {
		bad("smartscale:spotPercent must be in [0, 100] (0: on-demand only), got %d", p.SpotPercent)
	}
	if p.OnDemandBase < 0 || p.OnDemandBase > p.MaxWorkers {
		bad("smartscale:onDemandBase must be in [0, maxWorkers (%d)], got %d", p.MaxWorkers, p.OnDemandBase)
	}
	if c.PolicyFile != "" {
		if len(c.policyKeysSet) > 0 {
			bad("smartscale:policyFile replaces the policy keys: remove %s", strings.Join(c.policyKeysSet, ", "))
		}
		if _, err := c.PolicyJSON(); err != nil {
			bad("%v", err)
		}
	}
	if lambdaTimeout+30*time.Second > engineLease {
		bad("the Lambda timeout (%v) must stay 30s below the engine's lease (%v)", lambdaTimeout, engineLease)
	}
	if _, err := os.Stat(c.LambdaZip); err != nil {
		bad("smartscale:lambdaZip %q: %v (run `make lambda` at the repository root first)", c.LambdaZip, err)
	}
	if _, err := os.Stat(filepath.Join(c.RepoRoot, "k3s", "worker-userdata.sh")); err != nil {
		bad("smartscale:repoRoot %q must hold k3s/worker-userdata.sh: %v", c.RepoRoot, err)
	}
	return errors.Join(errs...)
}

// mustBeKnown guards configKeys against drift: reading an unlisted key is a programming error.
func mustBeKnown(key string) {
	if !slices.Contains(configKeys, key) {
		panic("config key smartscale:" + key + " is missing from configKeys")
	}
}
