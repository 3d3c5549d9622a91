package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/dynamodb"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/lambda"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"
)

// Autoscaler is the Lambda and what it owns: state table, topic, Slack secret, schedule.
type Autoscaler struct {
	Role        *iam.Role
	Table       *dynamodb.Table
	Topic       *sns.Topic
	SlackSecret *secretsmanager.Secret
	LogGroup    *cloudwatch.LogGroup
	Function    *lambda.Function
	Schedule    *cloudwatch.EventRule
}

func functionName(cfg Config) string { return "smartscale-" + cfg.ClusterID }

// newAutoscalerRole creates the Lambda's role alone: the cluster's secrets name it in their
// resource policies before the function exists.
func newAutoscalerRole(ctx *pulumi.Context) (*iam.Role, error) {
	return iam.NewRole(ctx, "autoscaler", &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(assumeRole("lambda.amazonaws.com")),
		Description:      pulumi.String("SmartScale autoscaler Lambda"),
	})
}

// newAutoscaler creates the Lambda with its permissions, triggers and state.
func newAutoscaler(ctx *pulumi.Context, cfg Config, acct Account, net *Network, cl *Cluster, role *iam.Role) (*Autoscaler, error) {
	a := &Autoscaler{Role: role}
	var err error
	if a.Table, err = dynamodb.NewTable(ctx, "state", &dynamodb.TableArgs{
		BillingMode:         pulumi.String("PAY_PER_REQUEST"),
		HashKey:             pulumi.String("cluster_id"),
		Attributes:          dynamodb.TableAttributeArray{&dynamodb.TableAttributeArgs{Name: pulumi.String("cluster_id"), Type: pulumi.String("S")}},
		PointInTimeRecovery: &dynamodb.TablePointInTimeRecoveryArgs{Enabled: pulumi.Bool(true)},
		Tags:                tags(cfg, cfg.ClusterID+"-state"),
	}); err != nil {
		return nil, err
	}
	// Not KMS-encrypted: CloudWatch alarms cannot publish to a topic under the AWS-managed SNS
	// key, and messages carry no secrets (scaling events and figures).
	if a.Topic, err = sns.NewTopic(ctx, "events", &sns.TopicArgs{Tags: tags(cfg, cfg.ClusterID+"-events")}); err != nil {
		return nil, err
	}
	if a.SlackSecret, err = secretsmanager.NewSecret(ctx, "slack-webhook", &secretsmanager.SecretArgs{
		Description: pulumi.String("Slack incoming webhook URL of the autoscaler's notifications; readable only by the Lambda"),
		KmsKeyId:    cl.Key.Arn,
		Policy:      secretPolicy(nil, role.Arn),
		Tags:        tags(cfg, cfg.ClusterID+"-slack-webhook"),
	}); err != nil {
		return nil, err
	}
	// Optional: `pulumi config set --secret smartscale:slackWebhookUrl https://hooks.slack.com/...`;
	// otherwise an operator puts the value after `pulumi up` (docs/deploy.md).
	if url, err := config.New(ctx, "smartscale").TrySecret("slackWebhookUrl"); err == nil {
		if _, err := secretsmanager.NewSecretVersion(ctx, "slack-webhook", &secretsmanager.SecretVersionArgs{
			SecretId: a.SlackSecret.ID(), SecretString: url,
		}); err != nil {
			return nil, err
		}
	}
	if a.LogGroup, err = cloudwatch.NewLogGroup(ctx, "autoscaler", &cloudwatch.LogGroupArgs{
		Name:            pulumi.String("/aws/lambda/" + functionName(cfg)),
		RetentionInDays: pulumi.Int(cfg.LogRetentionDays),
		Tags:            tags(cfg, functionName(cfg)),
	}); err != nil {
		return nil, err
	}

	subnetArns := pulumi.StringArray{}
	for _, s := range net.PrivateSubnets {
		subnetArns = append(subnetArns, s.ID().ToStringOutput().ApplyT(func(id string) string {
			return acct.arn("ec2", "subnet/"+id)
		}).(pulumi.StringOutput))
	}
	policy := pulumi.All(cl.LaunchTemplate.Arn, cl.LaunchTemplate.ID(), net.WorkerSG.ID(), cl.WorkerRole.Arn,
		a.Table.Arn, a.Topic.Arn, a.SlackSecret.Arn, cl.KubeSecret.Arn, cl.Key.Arn, a.LogGroup.Arn, subnetArns,
	).ApplyT(func(v []any) string {
		return autoscalerPolicy(cfg, acct, autoscalerRefs{
			LaunchTemplateArn: v[0].(string), LaunchTemplateID: string(v[1].(pulumi.ID)), WorkerSG: string(v[2].(pulumi.ID)),
			WorkerRole: v[3].(string), Table: v[4].(string), Topic: v[5].(string), SlackSecret: v[6].(string),
			KubeSecret: v[7].(string), Key: v[8].(string), LogGroup: v[9].(string), SubnetArns: v[10].([]string),
		})
	}).(pulumi.StringOutput)
	rolePolicy, err := iam.NewRolePolicy(ctx, "autoscaler", &iam.RolePolicyArgs{Role: role.Name, Policy: policy})
	if err != nil {
		return nil, err
	}

	if a.Function, err = lambda.NewFunction(ctx, "autoscaler", &lambda.FunctionArgs{
		Name:          pulumi.String(functionName(cfg)),
		Description:   pulumi.Sprintf("SmartScale autoscaler of %s (every 2 minutes) and its Slack forwarder (SNS)", cfg.ClusterID),
		Role:          role.Arn,
		Runtime:       pulumi.String("provided.al2023"),
		Architectures: pulumi.StringArray{pulumi.String("arm64")},
		Handler:       pulumi.String("bootstrap"),
		Code:          pulumi.NewFileArchive(cfg.LambdaZip),
		MemorySize:    pulumi.Int(256),
		Timeout:       pulumi.Int(int(lambdaTimeout.Seconds())),
		// One invocation at a time: the DynamoDB lease is the real guard, this keeps a
		// backlog of ticks from piling up behind a slow one.
		ReservedConcurrentExecutions: pulumi.Int(1),
		VpcConfig: &lambda.FunctionVpcConfigArgs{
			SubnetIds:        net.PrivateSubnetIDs(),
			SecurityGroupIds: pulumi.StringArray{net.LambdaSG.ID()},
		},
		Environment: &lambda.FunctionEnvironmentArgs{Variables: lambdaEnv(cfg, cl, a, net)},
		Tags:        tags(cfg, functionName(cfg)),
	}, pulumi.DependsOn([]pulumi.Resource{rolePolicy, a.LogGroup})); err != nil {
		return nil, err
	}
	// Async invocations (the schedule and SNS) are never retried: the next tick re-observes
	// and reconciles, and a retried tick would only contend for the lock.
	if _, err = lambda.NewFunctionEventInvokeConfig(ctx, "autoscaler", &lambda.FunctionEventInvokeConfigArgs{
		FunctionName:             a.Function.Name,
		MaximumRetryAttempts:     pulumi.Int(0),
		MaximumEventAgeInSeconds: pulumi.Int(300),
	}); err != nil {
		return nil, err
	}

	if a.Schedule, err = cloudwatch.NewEventRule(ctx, "tick", &cloudwatch.EventRuleArgs{
		Description:        pulumi.Sprintf("SmartScale tick of %s", cfg.ClusterID),
		ScheduleExpression: pulumi.String(scheduleExpression),
		Tags:               tags(cfg, cfg.ClusterID+"-tick"),
	}); err != nil {
		return nil, err
	}
	if _, err = cloudwatch.NewEventTarget(ctx, "tick", &cloudwatch.EventTargetArgs{
		Rule: a.Schedule.Name, Arn: a.Function.Arn,
	}); err != nil {
		return nil, err
	}
	if _, err = lambda.NewPermission(ctx, "tick", &lambda.PermissionArgs{
		Action: pulumi.String("lambda:InvokeFunction"), Function: a.Function.Name,
		Principal: pulumi.String("events.amazonaws.com"), SourceArn: a.Schedule.Arn,
	}); err != nil {
		return nil, err
	}
	// The same function forwards the topic's messages to Slack.
	if _, err = lambda.NewPermission(ctx, "slack-forwarder", &lambda.PermissionArgs{
		Action: pulumi.String("lambda:InvokeFunction"), Function: a.Function.Name,
		Principal: pulumi.String("sns.amazonaws.com"), SourceArn: a.Topic.Arn,
	}); err != nil {
		return nil, err
	}
	if _, err = sns.NewTopicSubscription(ctx, "slack-forwarder", &sns.TopicSubscriptionArgs{
		Topic: a.Topic.Arn, Protocol: pulumi.String("lambda"), Endpoint: a.Function.Arn,
	}); err != nil {
		return nil, err
	}
	// Alertmanager's scale-up alerts invoke the same function: an alert tick (alert_ticks).
	if _, err = lambda.NewPermission(ctx, "alert-tick", &lambda.PermissionArgs{
		Action: pulumi.String("lambda:InvokeFunction"), Function: a.Function.Name,
		Principal: pulumi.String("sns.amazonaws.com"), SourceArn: cl.AlertTopic.Arn,
	}); err != nil {
		return nil, err
	}
	if _, err = sns.NewTopicSubscription(ctx, "alert-tick", &sns.TopicSubscriptionArgs{
		Topic: cl.AlertTopic.Arn, Protocol: pulumi.String("lambda"), Endpoint: a.Function.Arn,
	}); err != nil {
		return nil, err
	}
	if err := newNoticeRules(ctx, cfg, a); err != nil { // spot.go
		return nil, err
	}
	return a, nil
}

// lambdaEnv is the Lambda's environment. No secret goes here: the Slack webhook and the K3s
// API credentials are read from Secrets Manager at run time, the K3s agent token never.
func lambdaEnv(cfg Config, cl *Cluster, a *Autoscaler, net *Network) pulumi.StringMap {
	// subnet-id=zone pairs in order of preference (runtime/config: SMARTSCALE_SUBNETS).
	subnets := pulumi.All(net.PrivateSubnets[0].ID(), net.PrivateSubnets[1].ID()).ApplyT(func(v []any) string {
		return fmt.Sprintf("%s=%s,%s=%s", v[0], net.Zones[0], v[1], net.Zones[1])
	}).(pulumi.StringOutput)
	policyJSON, _ := cfg.PolicyJSON() // loadConfig's Validate read it already
	return pulumi.StringMap{
		"SMARTSCALE_HANDLES":               pulumi.String("tick,slack"),
		"SMARTSCALE_CLUSTER_ID":            pulumi.String(cfg.ClusterID),
		"SMARTSCALE_TABLE":                 a.Table.Name,
		"SMARTSCALE_LAUNCH_TEMPLATE":       cl.LaunchTemplate.ID().ToStringOutput(),
		"SMARTSCALE_SUBNETS":               subnets,
		"SMARTSCALE_INSTANCE_TYPES":        pulumi.String(strings.Join(cfg.WorkerInstanceTypes, ",")),
		"SMARTSCALE_SNS_TOPIC_ARN":         a.Topic.Arn,
		"SMARTSCALE_ALERT_TOPIC_ARN":       cl.AlertTopic.Arn,
		"PROMETHEUS_URL":                   prometheusURL(cl),
		"SLACK_WEBHOOK_SECRET_ARN":         a.SlackSecret.Arn,
		"SMARTSCALE_KUBECONFIG_SECRET_ARN": cl.KubeSecret.Arn,
		"POLICY_JSON":                      pulumi.String(policyJSON),
		"SMARTSCALE_LEASE":                 pulumi.String(promDuration(engineLease)),
		"SMARTSCALE_DRY_RUN":               pulumi.Sprintf("%t", cfg.DryRun),
	}
}

// promDuration formats whole minutes as "3m" and anything else as seconds ("100s").
func promDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func prometheusURL(cl *Cluster) pulumi.StringOutput {
	return pulumi.Sprintf("http://%s:%d", cl.Master.PrivateIp, prometheusNodePort)
}

// autoscalerRefs are the resolved identifiers the Lambda's policy names.
type autoscalerRefs struct {
	LaunchTemplateArn, LaunchTemplateID, WorkerSG, WorkerRole string
	Table, Topic, SlackSecret, KubeSecret, Key, LogGroup      string
	SubnetArns                                                []string
}

// autoscalerPolicy is the Lambda's least-privilege identity policy.
func autoscalerPolicy(cfg Config, acct Account, r autoscalerRefs) string {
	instances := acct.arn("ec2", "instance/*")
	launchFrom := func(s Statement) Statement { return s.when("ArnEquals", "ec2:LaunchTemplate", r.LaunchTemplateArn) }
	runOthers := append([]string{
		acct.arn("ec2", "volume/*"),
		acct.arn("ec2", "network-interface/*"),
		acct.arn("ec2", "security-group/"+r.WorkerSG),
		acct.arn("ec2", "launch-template/"+r.LaunchTemplateID),
		fmt.Sprintf("arn:%s:ec2:%s::image/*", acct.Partition, acct.Region),
	}, r.SubnetArns...)
	return policyJSON(append([]Statement{
		// RunInstances: the instance must carry both ownership tags in the request and come
		// from the worker launch template; the other resources it touches (subnets, the
		// worker group, volumes, ENIs, the AMI) only through that template.
		launchFrom(allow("RunTaggedWorkers", []string{"ec2:RunInstances"}, instances).
			when("StringEquals", "aws:RequestTag/"+tagManagedBy, managedByValue).
			when("StringEquals", "aws:RequestTag/"+tagCluster, cfg.ClusterID)),
		launchFrom(allow("RunFromWorkerTemplate", []string{"ec2:RunInstances"}, runOthers...)),
		allow("TagOnLaunchOnly", []string{"ec2:CreateTags"},
			instances, acct.arn("ec2", "volume/*"), acct.arn("ec2", "network-interface/*")).
			when("StringEquals", "ec2:CreateAction", "RunInstances"),
		allow("TerminateOwnWorkers", []string{"ec2:TerminateInstances"}, instances).
			when("StringEquals", "ec2:ResourceTag/"+tagManagedBy, managedByValue).
			when("StringEquals", "ec2:ResourceTag/"+tagCluster, cfg.ClusterID),
		allow("PassWorkerRole", []string{"iam:PassRole"}, r.WorkerRole).
			when("StringEquals", "iam:PassedToService", "ec2.amazonaws.com"),
		// Describe calls cannot be scoped to resources. The ENI calls are what a Lambda in
		// a VPC needs (AWSLambdaVPCAccessExecutionRole without its logs:* part).
		allow("Describe", []string{"ec2:DescribeInstances", "ec2:DescribeLaunchTemplateVersions"}, "*"),
		allow("VpcNetworking", []string{"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
			"ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}, "*"),
		// runtime/dynamo reads with GetItem and writes every change (lease, state, release)
		// as a conditional UpdateItem.
		allow("StateAndLock", []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}, r.Table),
		allow("Notify", []string{"sns:Publish"}, r.Topic),
		allow("ReadOwnSecrets", []string{"secretsmanager:GetSecretValue"}, r.SlackSecret, r.KubeSecret),
		allow("DecryptOwnSecrets", []string{"kms:Decrypt"}, r.Key).
			when("StringEquals", "kms:ViaService", "secretsmanager."+cfg.Region+".amazonaws.com").
			when("StringEquals", "kms:EncryptionContext:SecretARN", []string{r.SlackSecret, r.KubeSecret}),
		allow("Logs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, r.LogGroup+":*"),
	}, spotStatements(cfg, acct, r)...)...) // spot.go
}
