package ec2

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/smartscale/smartscale/engine"
)

// Spot workers: RunInstances with spot market options (a one-time request, terminated on
// interruption), the spot request tagged like the instance so the IAM tag conditions bind
// it, and the current spot prices for the engine's allocation strategy.

// spotOptions makes a launch of a spot offering a one-time spot request.
func spotOptions(in *sdk.RunInstancesInput, off engine.Offering, tags []types.Tag) {
	if !off.Spot() {
		return
	}
	in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{
		MarketType: types.MarketTypeSpot,
		SpotOptions: &types.SpotMarketOptions{
			SpotInstanceType:             types.SpotInstanceTypeOneTime,
			InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
		},
	}
	in.TagSpecifications = append(in.TagSpecifications, types.TagSpecification{ResourceType: types.ResourceTypeSpotInstancesRequest, Tags: tags})
}

var _ engine.Pricer = (*Cloud)(nil)

// Prices implements engine.Pricer: the latest Linux/UNIX spot price of each spot offering's
// type in its zone (DescribeSpotPriceHistory from now, a page or two). On-demand offerings
// are not priced: the engine orders them by preference.
func (c *Cloud) Prices(ctx context.Context, offs []engine.Offering) (map[string]float64, error) {
	var typ []types.InstanceType
	var zones []string
	for _, o := range offs {
		if !o.Spot() {
			continue
		}
		if t := types.InstanceType(o.InstanceType); o.InstanceType != "" && !slices.Contains(typ, t) {
			typ = append(typ, t)
		}
		if o.Zone != "" && !slices.Contains(zones, o.Zone) {
			zones = append(zones, o.Zone)
		}
	}
	out := map[string]float64{}
	if len(typ) == 0 {
		return out, nil
	}
	now := time.Now()
	in := &sdk.DescribeSpotPriceHistoryInput{InstanceTypes: typ, ProductDescriptions: []string{"Linux/UNIX"}, StartTime: &now}
	if len(zones) > 0 {
		in.Filters = []types.Filter{{Name: aws.String("availability-zone"), Values: zones}}
	}
	latest := map[string]float64{} // type/zone -> price
	for page := 0; page < 10; page++ {
		resp, err := c.api.DescribeSpotPriceHistory(ctx, in)
		if err != nil {
			return out, fmt.Errorf("spot prices: %w", cloudError(err, engine.Offering{}))
		}
		for _, p := range resp.SpotPriceHistory {
			k := string(p.InstanceType) + "/" + aws.ToString(p.AvailabilityZone)
			if _, ok := latest[k]; ok { // the newest comes first
				continue
			}
			v, err := strconv.ParseFloat(aws.ToString(p.SpotPrice), 64)
			if err != nil {
				return out, fmt.Errorf("spot prices: %s: price %q: %w", k, aws.ToString(p.SpotPrice), err)
			}
			latest[k] = v
		}
		if aws.ToString(resp.NextToken) == "" {
			break
		}
		in.NextToken = resp.NextToken
	}
	for _, o := range offs {
		if v, ok := latest[o.InstanceType+"/"+o.Zone]; ok && o.Spot() {
			out[o.Key()] = v
		}
	}
	return out, nil
}
