// Command deploy is the Pulumi program of SmartScale: the VPC, the K3s master and worker
// launch template, the autoscaler Lambda with its state, schedule and notifications, and
// the alarms and dashboard. `pulumi up` in this directory; see docs/deploy.md.
package main

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ssm"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

func main() {
	pulumi.Run(program)
}

// Stack is everything the program creates, for the outputs and the tests.
type Stack struct {
	Config     Config
	Network    *Network
	Cluster    *Cluster
	Autoscaler *Autoscaler
}

func program(ctx *pulumi.Context) error {
	s, err := build(ctx)
	if err != nil {
		return err
	}
	for k, v := range s.Outputs() {
		ctx.Export(k, v)
	}
	return nil
}

// build creates every resource.
func build(ctx *pulumi.Context) (*Stack, error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	id, err := aws.GetCallerIdentity(ctx, nil)
	if err != nil {
		return nil, err
	}
	part, err := aws.GetPartition(ctx, nil)
	if err != nil {
		return nil, err
	}
	acct := Account{ID: id.AccountId, Partition: part.Partition, Region: cfg.Region}
	zones, err := aws.GetAvailabilityZones(ctx, &aws.GetAvailabilityZonesArgs{State: pulumi.StringRef("available")})
	if err != nil {
		return nil, err
	}
	if len(zones.Names) < 2 {
		return nil, fmt.Errorf("region %s has fewer than two available zones", cfg.Region)
	}
	var ami pulumi.StringInput = pulumi.String(cfg.Ami)
	if cfg.Ami == "" {
		p, err := ssm.LookupParameter(ctx, &ssm.LookupParameterArgs{Name: cfg.AmiSsmParameter})
		if err != nil {
			return nil, err
		}
		ami = pulumi.String(p.Value)
	}

	net, err := newNetwork(ctx, cfg, cfg.Region, zones.Names[:2])
	if err != nil {
		return nil, err
	}
	role, err := newAutoscalerRole(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := newCluster(ctx, cfg, acct, net, ami, role)
	if err != nil {
		return nil, err
	}
	as, err := newAutoscaler(ctx, cfg, acct, net, cl, role)
	if err != nil {
		return nil, err
	}
	if _, err := newMonitoring(ctx, cfg, as); err != nil {
		return nil, err
	}
	return &Stack{Config: cfg, Network: net, Cluster: cl, Autoscaler: as}, nil
}

// Outputs are the stack outputs.
func (s *Stack) Outputs() map[string]pulumi.Input {
	return map[string]pulumi.Input{
		"masterIp":         s.Cluster.Master.PrivateIp,
		"masterInstanceId": s.Cluster.Master.ID(),
		"prometheusUrl":    prometheusURL(s.Cluster),
		"tableName":        s.Autoscaler.Table.Name,
		"topicArn":         s.Autoscaler.Topic.Arn,
		"topicName":        s.Autoscaler.Topic.Name,
		"functionName":     s.Autoscaler.Function.Name,
		"launchTemplateId": s.Cluster.LaunchTemplate.ID(),
		"tokenSecretArn":   s.Cluster.TokenSecret.Arn,
		"slackSecretArn":   s.Autoscaler.SlackSecret.Arn,
		"kubeSecretArn":    s.Cluster.KubeSecret.Arn,
		"vpcId":            s.Network.Vpc.ID(),
		"clusterId":        pulumi.String(s.Config.ClusterID),
		"scheduleRuleName": s.Autoscaler.Schedule.Name,
		"nodeLogGroup":     s.Cluster.NodeLogGroup.Name,
	}
}
