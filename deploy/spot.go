package main

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lambda"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Spot workers (smartscale:spotPercent > 0): EventBridge rules that send EC2's spot
// interruption warnings and rebalance recommendations to the Lambda (runtime/handler's
// notice.go), and the grants a spot launch needs, bound by the same tag and launch-template
// conditions as on-demand ones. Without spot none of it exists.

// noticeRules are the EventBridge rules of the EC2 notices: logical name -> detail type.
var noticeRules = []struct{ Name, DetailType string }{
	{"spot-interruption", "EC2 Spot Instance Interruption Warning"},
	{"rebalance", "EC2 Instance Rebalance Recommendation"},
}

// noticePattern is the event pattern of one notice rule. EventBridge cannot filter on the
// instance's tags: the Lambda ignores (and logs) notices about instances it does not manage.
func noticePattern(detailType string) string {
	b, _ := json.Marshal(map[string][]string{"source": {"aws.ec2"}, "detail-type": {detailType}})
	return string(b)
}

func newNoticeRules(ctx *pulumi.Context, cfg Config, a *Autoscaler) error {
	if cfg.Policy.SpotPercent == 0 {
		return nil
	}
	for _, n := range noticeRules {
		rule, err := cloudwatch.NewEventRule(ctx, n.Name, &cloudwatch.EventRuleArgs{
			Description:  pulumi.Sprintf("SmartScale of %s: %s events to the autoscaler", cfg.ClusterID, n.DetailType),
			EventPattern: pulumi.String(noticePattern(n.DetailType)),
			Tags:         tags(cfg, cfg.ClusterID+"-"+n.Name),
		})
		if err != nil {
			return err
		}
		if _, err := cloudwatch.NewEventTarget(ctx, n.Name, &cloudwatch.EventTargetArgs{Rule: rule.Name, Arn: a.Function.Arn}); err != nil {
			return err
		}
		if _, err := lambda.NewPermission(ctx, n.Name, &lambda.PermissionArgs{
			Action: pulumi.String("lambda:InvokeFunction"), Function: a.Function.Name,
			Principal: pulumi.String("events.amazonaws.com"), SourceArn: rule.Arn,
		}); err != nil {
			return err
		}
	}
	return nil
}

// spotStatements are the autoscaler's grants for spot launches: RunInstances may create the
// one-time spot request (tagged in the request like the instance, from the worker launch
// template), tag it at launch only, read spot prices, and create EC2 Spot's service-linked
// role the first time (EC2 needs it to launch spot).
func spotStatements(cfg Config, acct Account, r autoscalerRefs) []Statement {
	if cfg.Policy.SpotPercent == 0 {
		return nil
	}
	requests := acct.arn("ec2", "spot-instances-request/*")
	return []Statement{
		allow("RunTaggedSpotRequests", []string{"ec2:RunInstances"}, requests).
			when("ArnEquals", "ec2:LaunchTemplate", r.LaunchTemplateArn).
			when("StringEquals", "aws:RequestTag/"+tagManagedBy, managedByValue).
			when("StringEquals", "aws:RequestTag/"+tagCluster, cfg.ClusterID),
		allow("TagSpotRequestsOnLaunchOnly", []string{"ec2:CreateTags"}, requests).
			when("StringEquals", "ec2:CreateAction", "RunInstances"),
		allow("SpotPrices", []string{"ec2:DescribeSpotPriceHistory"}, "*"),
		allow("SpotServiceLinkedRole", []string{"iam:CreateServiceLinkedRole"},
			fmt.Sprintf("arn:%s:iam::%s:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot", acct.Partition, acct.ID)).
			when("StringEquals", "iam:AWSServiceName", "spot.amazonaws.com"),
	}
}
