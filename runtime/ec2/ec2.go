// Package ec2 is the engine.Cloud adapter on Amazon EC2: it launches workers from a launch
// template with the offering's instance type and subnet, tags them at launch, lists the
// managed workers of one cluster by tag and terminates only those.
package ec2

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/smartscale/smartscale/engine"
)

// Tags put on every worker at launch. IAM policies key on them (terminate only instances
// with TagManagedBy=ManagedByValue and TagCluster=<cluster>).
const (
	TagCluster     = "smartscale.io/cluster"
	TagManagedBy   = "managed-by"
	ManagedByValue = "smartscale"
	TagOperation   = "smartscale.io/operation-id"
)

// API lists the EC2 calls the adapter uses.
type API interface {
	RunInstances(ctx context.Context, in *sdk.RunInstancesInput, opts ...func(*sdk.Options)) (*sdk.RunInstancesOutput, error)
	DescribeInstances(ctx context.Context, in *sdk.DescribeInstancesInput, opts ...func(*sdk.Options)) (*sdk.DescribeInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *sdk.TerminateInstancesInput, opts ...func(*sdk.Options)) (*sdk.TerminateInstancesOutput, error)
	// DescribeSpotPriceHistory serves spot.go's Prices.
	DescribeSpotPriceHistory(ctx context.Context, in *sdk.DescribeSpotPriceHistoryInput, opts ...func(*sdk.Options)) (*sdk.DescribeSpotPriceHistoryOutput, error)
}

// Cloud manages one cluster's workers.
type Cloud struct {
	api     API
	cluster string
	// LaunchTemplate is an id (lt-...) or a name; Version defaults to "$Default".
	launchTemplate string
	version        string
}

var _ engine.Cloud = (*Cloud)(nil)

// New returns the cloud of cluster, launching from launchTemplate (id "lt-..." or name) at
// version ("" means "$Default").
func New(api API, cluster, launchTemplate, version string) *Cloud {
	if version == "" {
		version = "$Default"
	}
	return &Cloud{api: api, cluster: cluster, launchTemplate: launchTemplate, version: version}
}

// Launch runs req.Count workers of one offering, idempotent on req.Token (ClientToken).
func (c *Cloud) Launch(ctx context.Context, req engine.LaunchRequest) ([]engine.Instance, error) {
	if req.Count < 1 {
		return nil, fmt.Errorf("launching %d workers: count must be >= 1", req.Count)
	}
	if err := engine.CheckCapacityType(req.Offering.CapacityType); err != nil {
		return nil, &engine.CloudError{Kind: engine.KindUnsupported, Code: "UnknownCapacityType", Offering: req.Offering, Err: err}
	}
	lt := &types.LaunchTemplateSpecification{Version: aws.String(c.version)}
	if strings.HasPrefix(c.launchTemplate, "lt-") {
		lt.LaunchTemplateId = aws.String(c.launchTemplate)
	} else {
		lt.LaunchTemplateName = aws.String(c.launchTemplate)
	}
	tags := []types.Tag{
		{Key: aws.String(TagCluster), Value: aws.String(c.cluster)},
		{Key: aws.String(TagManagedBy), Value: aws.String(ManagedByValue)},
		{Key: aws.String(TagOperation), Value: aws.String(req.OperationID)},
		{Key: aws.String("Name"), Value: aws.String(c.cluster + "-worker")},
	}
	in := &sdk.RunInstancesInput{
		LaunchTemplate: lt,
		MinCount:       aws.Int32(int32(req.Count)),
		MaxCount:       aws.Int32(int32(req.Count)),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	spotOptions(in, req.Offering, tags) // spot.go
	if req.Token != "" {
		in.ClientToken = aws.String(req.Token)
	}
	if req.Offering.InstanceType != "" {
		in.InstanceType = types.InstanceType(req.Offering.InstanceType)
	}
	if req.Offering.Subnet != "" {
		in.SubnetId = aws.String(req.Offering.Subnet)
	}
	out, err := c.api.RunInstances(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("launching %d workers: %w", req.Count, cloudError(err, req.Offering))
	}
	insts := make([]engine.Instance, 0, len(out.Instances))
	for _, i := range out.Instances {
		insts = append(insts, instance(i))
	}
	return insts, nil
}

// Instances lists the cluster's managed workers, including the terminated ones EC2 still
// shows (about an hour): the engine tells "gone" from "not listed yet" by them.
func (c *Cloud) Instances(ctx context.Context) ([]engine.Instance, error) {
	in := &sdk.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + TagCluster), Values: []string{c.cluster}},
		{Name: aws.String("tag:" + TagManagedBy), Values: []string{ManagedByValue}},
		{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "shutting-down", "stopping", "stopped", "terminated"}},
	}}
	var out []engine.Instance
	for page := 0; ; page++ {
		if page > 100 {
			return nil, errors.New("listing workers: more than 100 pages")
		}
		resp, err := c.api.DescribeInstances(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing workers: %w", cloudError(err, engine.Offering{}))
		}
		for _, r := range resp.Reservations {
			for _, i := range r.Instances {
				if !c.managed(i) {
					continue // a filter the API ignored must not make us manage others' instances
				}
				out = append(out, instance(i))
			}
		}
		if aws.ToString(resp.NextToken) == "" {
			return out, nil
		}
		in.NextToken = resp.NextToken
	}
}

// Terminate terminates managed workers of this cluster. IDs that are not (checked by tag
// first) are refused: nothing is terminated then.
func (c *Cloud) Terminate(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	resp, err := c.api.DescribeInstances(ctx, &sdk.DescribeInstancesInput{InstanceIds: ids})
	if err != nil {
		return fmt.Errorf("checking %v before terminating: %w", ids, cloudError(err, engine.Offering{}))
	}
	found := map[string]types.Instance{}
	for _, r := range resp.Reservations {
		for _, i := range r.Instances {
			found[aws.ToString(i.InstanceId)] = i
		}
	}
	var refused, missing, live []string
	for _, id := range ids {
		i, ok := found[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case !c.managed(i):
			refused = append(refused, id)
		case i.State != nil && i.State.Name == types.InstanceStateNameTerminated:
			// already gone
		default:
			live = append(live, id)
		}
	}
	if len(refused) > 0 {
		return &engine.CloudError{Kind: engine.KindOther, Code: "Unmanaged",
			Err: fmt.Errorf("refusing to terminate %v: not managed workers of cluster %s", refused, c.cluster)}
	}
	if len(live) > 0 {
		if _, err := c.api.TerminateInstances(ctx, &sdk.TerminateInstancesInput{InstanceIds: live}); err != nil {
			return fmt.Errorf("terminating %v: %w", live, cloudError(err, engine.Offering{}))
		}
	}
	if len(missing) > 0 {
		return &engine.CloudError{Kind: engine.KindNotFound, Code: "InvalidInstanceID.NotFound", Err: fmt.Errorf("instances %v not found", missing)}
	}
	return nil
}

func (c *Cloud) managed(i types.Instance) bool {
	return tag(i.Tags, TagCluster) == c.cluster && tag(i.Tags, TagManagedBy) == ManagedByValue
}

func tag(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

func instance(i types.Instance) engine.Instance {
	in := engine.Instance{
		ID:          aws.ToString(i.InstanceId),
		OperationID: tag(i.Tags, TagOperation),
		Offering: engine.Offering{
			InstanceType: string(i.InstanceType),
			Subnet:       aws.ToString(i.SubnetId),
		},
	}
	if i.Placement != nil {
		in.Offering.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	if i.LaunchTime != nil {
		in.LaunchedAt = i.LaunchTime.UTC()
	}
	if i.InstanceLifecycle == types.InstanceLifecycleTypeSpot {
		in.Offering.CapacityType = engine.CapacitySpot
	}
	in.State = engine.InstancePending
	if i.State != nil {
		switch i.State.Name {
		case types.InstanceStateNamePending:
			in.State = engine.InstancePending
		case types.InstanceStateNameRunning:
			in.State = engine.InstanceRunning
		case types.InstanceStateNameTerminated:
			in.State = engine.InstanceTerminated
		default: // shutting-down, stopping, stopped: not capacity
			in.State = engine.InstanceStopping
		}
	}
	return in
}

// Error codes and the kinds they map to.
var kinds = map[string]engine.ErrorKind{
	"InsufficientInstanceCapacity": engine.KindCapacity,
	"InsufficientCapacity":         engine.KindCapacity,
	"InstanceLimitExceeded":        engine.KindQuota,
	"VcpuLimitExceeded":            engine.KindQuota,
	"RequestLimitExceeded":         engine.KindThrottled,
	"Throttling":                   engine.KindThrottled,
	"ThrottlingException":          engine.KindThrottled,
	"Unsupported":                  engine.KindUnsupported,
	"InvalidInstanceID.NotFound":   engine.KindNotFound,
	"InvalidInstanceID.Malformed":  engine.KindNotFound,
	// spot (spot.go): no capacity at the price or at all backs the offering off; the
	// account's spot instance limit is a quota the engine meets with on-demand
	"SpotMaxPriceTooLow":           engine.KindCapacity,
	"capacity-not-available":       engine.KindCapacity,
	"UnfulfillableCapacity":        engine.KindCapacity,
	"MaxSpotInstanceCountExceeded": engine.KindQuota,
}

// Codes lists the mapped error codes (sorted), for documentation and tests.
func Codes() []string {
	var out []string
	for k := range kinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// cloudError translates an SDK error into a *engine.CloudError.
func cloudError(err error, off engine.Offering) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return &engine.CloudError{Kind: engine.KindOther, Offering: off, Err: err}
	}
	kind, ok := kinds[ae.ErrorCode()]
	if !ok {
		kind = engine.KindOther
	}
	return &engine.CloudError{Kind: kind, Code: ae.ErrorCode(), Offering: off, Err: err}
}
