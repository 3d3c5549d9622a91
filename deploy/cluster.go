package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudwatch"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/ec2"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/iam"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/kms"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/secretsmanager"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/sns"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Cluster is the K3s side: roles, secrets, the master and the worker launch template.
type Cluster struct {
	MasterRole     *iam.Role
	WorkerRole     *iam.Role
	Key            *kms.Key
	TokenSecret    *secretsmanager.Secret // the K3s agent token: master writes, workers read
	KubeSecret     *secretsmanager.Secret // the autoscaler's kubeconfig: master writes, Lambda reads
	Master         *ec2.Instance
	LaunchTemplate *ec2.LaunchTemplate
	NodeLogGroup   *cloudwatch.LogGroup
	AlertTopic     *sns.Topic // Alertmanager publishes scale-up alerts; the Lambda subscribes
}

// Account holds the caller's identity, for ARNs that cannot come from a resource.
type Account struct {
	ID        string
	Partition string
	Region    string
}

func (a Account) arn(service, resource string) string {
	return fmt.Sprintf("arn:%s:%s:%s:%s:%s", a.Partition, service, a.Region, a.ID, resource)
}

// newCluster creates everything the nodes need. lambdaRole is the autoscaler's role (created
// first so the secrets' resource policies can name it).
func newCluster(ctx *pulumi.Context, cfg Config, acct Account, net *Network, ami pulumi.StringInput, lambdaRole *iam.Role) (*Cluster, error) {
	c := &Cluster{}
	var err error
	if c.MasterRole, err = ec2Role(ctx, "master"); err != nil {
		return nil, err
	}
	if c.WorkerRole, err = ec2Role(ctx, "worker"); err != nil {
		return nil, err
	}
	if c.NodeLogGroup, err = cloudwatch.NewLogGroup(ctx, "nodes", &cloudwatch.LogGroupArgs{
		Name:            pulumi.String(nodeLogGroupName(cfg)),
		RetentionInDays: pulumi.Int(cfg.LogRetentionDays),
		Tags:            tags(cfg, cfg.ClusterID+"-nodes"),
	}); err != nil {
		return nil, err
	}

	// The key encrypting the cluster's secrets. The key policy delegates to IAM (the account
	// root statement); the identity policies below grant each role only its own secret through
	// Secrets Manager, pinned by the encryption context.
	if c.Key, err = kms.NewKey(ctx, "secrets", &kms.KeyArgs{
		Description:       pulumi.Sprintf("SmartScale %s secrets", cfg.ClusterID),
		EnableKeyRotation: pulumi.Bool(true),
		// Shortest waiting period: a destroyed stack stops paying for its key sooner.
		DeletionWindowInDays: pulumi.Int(7),
		Policy: pulumi.String(policyJSON(Statement{
			Sid: "AccountAdministers", Effect: "Allow",
			Principal: map[string]any{"AWS": fmt.Sprintf("arn:%s:iam::%s:root", acct.Partition, acct.ID)},
			Action:    []string{"kms:*"}, Resource: []string{"*"},
		})),
		Tags: tags(cfg, cfg.ClusterID+"-secrets"),
	}); err != nil {
		return nil, err
	}
	if _, err = kms.NewAlias(ctx, "secrets", &kms.AliasArgs{
		Name: pulumi.Sprintf("alias/smartscale-%s", cfg.ClusterID), TargetKeyId: c.Key.KeyId,
	}); err != nil {
		return nil, err
	}

	if c.TokenSecret, err = secretsmanager.NewSecret(ctx, "k3s-agent-token", &secretsmanager.SecretArgs{
		Description: pulumi.String("K3s agent token: written by the master's setup, read by workers when they join"),
		KmsKeyId:    c.Key.Arn,
		Policy:      secretPolicy(c.MasterRole.Arn, c.WorkerRole.Arn),
		Tags:        tags(cfg, cfg.ClusterID+"-k3s-agent-token"),
	}); err != nil {
		return nil, err
	}
	if c.KubeSecret, err = secretsmanager.NewSecret(ctx, "autoscaler-kube", &secretsmanager.SecretArgs{
		Description: pulumi.String("Kubeconfig of the autoscaler's service account on the K3s API: written by the master, read by the Lambda"),
		KmsKeyId:    c.Key.Arn,
		Policy:      secretPolicy(c.MasterRole.Arn, lambdaRole.Arn),
		Tags:        tags(cfg, cfg.ClusterID+"-autoscaler-kube"),
	}); err != nil {
		return nil, err
	}

	viaSM := pulumi.String("secretsmanager." + cfg.Region + ".amazonaws.com")
	if _, err = iam.NewRolePolicy(ctx, "master", &iam.RolePolicyArgs{
		Role: c.MasterRole.Name,
		Policy: policyOf(func(v []string) []Statement {
			key, token, kube, logs, via := v[0], v[1], v[2], v[3], v[4]
			return []Statement{
				allow("WriteClusterSecrets", []string{"secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"}, token, kube),
				allow("EncryptClusterSecrets", []string{"kms:GenerateDataKey", "kms:Decrypt"}, key).
					when("StringEquals", "kms:ViaService", via).
					when("StringEquals", "kms:EncryptionContext:SecretARN", []string{token, kube}),
				allow("ShipSetupLog", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, logs+":*"),
			}
		}, c.Key.Arn, c.TokenSecret.Arn, c.KubeSecret.Arn, c.NodeLogGroup.Arn, viaSM),
	}); err != nil {
		return nil, err
	}
	// Session Manager instead of SSH: port forwarding to the API and Prometheus needs no
	// inbound rule at all.
	if _, err = iam.NewRolePolicyAttachment(ctx, "master-ssm", &iam.RolePolicyAttachmentArgs{
		Role: c.MasterRole.Name, PolicyArn: pulumi.String("arn:" + acct.Partition + ":iam::aws:policy/AmazonSSMManagedInstanceCore"),
	}); err != nil {
		return nil, err
	}
	if _, err = iam.NewRolePolicy(ctx, "worker", &iam.RolePolicyArgs{
		Role: c.WorkerRole.Name,
		Policy: policyOf(func(v []string) []Statement {
			key, token, logs, via := v[0], v[1], v[2], v[3]
			return []Statement{
				allow("ReadAgentToken", []string{"secretsmanager:GetSecretValue"}, token),
				allow("DecryptAgentToken", []string{"kms:Decrypt"}, key).
					when("StringEquals", "kms:ViaService", via).
					when("StringEquals", "kms:EncryptionContext:SecretARN", token),
				// Finding the master by its Role tag; Describe* cannot be scoped to resources.
				allow("FindMaster", []string{"ec2:DescribeInstances"}, "*"),
				allow("ShipJoinLog", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, logs+":*"),
			}
		}, c.Key.Arn, c.TokenSecret.Arn, c.NodeLogGroup.Arn, viaSM),
	}); err != nil {
		return nil, err
	}
	masterProfile, err := iam.NewInstanceProfile(ctx, "master", &iam.InstanceProfileArgs{Role: c.MasterRole.Name})
	if err != nil {
		return nil, err
	}
	workerProfile, err := iam.NewInstanceProfile(ctx, "worker", &iam.InstanceProfileArgs{Role: c.WorkerRole.Name})
	if err != nil {
		return nil, err
	}

	// The topic Alertmanager (on the master) publishes scale-up alerts to; the Lambda
	// subscribes to it (newAutoscaler): an alert tick at once instead of at the next schedule.
	if c.AlertTopic, err = sns.NewTopic(ctx, "alerts", &sns.TopicArgs{Tags: tags(cfg, cfg.ClusterID+"-alerts")}); err != nil {
		return nil, err
	}
	if _, err = iam.NewRolePolicy(ctx, "master-alerts", &iam.RolePolicyArgs{
		Role: c.MasterRole.Name,
		Policy: policyOf(func(v []string) []Statement {
			return []Statement{allow("PublishScaleUpAlerts", []string{"sns:Publish"}, v[0])}
		}, c.AlertTopic.Arn),
	}); err != nil {
		return nil, err
	}
	masterUserData, err := masterUserData(cfg, c.TokenSecret.Arn, c.KubeSecret.Arn, c.AlertTopic.Arn)
	if err != nil {
		return nil, err
	}
	masterTags := tags(cfg, cfg.ClusterID+"-master")
	masterTags[tagRole] = pulumi.String(masterRoleValue)
	if c.Master, err = ec2.NewInstance(ctx, "master", &ec2.InstanceArgs{
		Ami:                 ami,
		InstanceType:        pulumi.String(cfg.MasterInstanceType),
		SubnetId:            net.PrivateSubnets[0].ID(),
		VpcSecurityGroupIds: pulumi.StringArray{net.MasterSG.ID()},
		IamInstanceProfile:  masterProfile.Name,
		UserData:            masterUserData,
		MetadataOptions: &ec2.InstanceMetadataOptionsArgs{
			HttpEndpoint: pulumi.String("enabled"), HttpTokens: pulumi.String("required"), HttpPutResponseHopLimit: pulumi.Int(1),
		},
		RootBlockDevice: &ec2.InstanceRootBlockDeviceArgs{
			VolumeSize: pulumi.Int(30), VolumeType: pulumi.String("gp3"), Encrypted: pulumi.Bool(true),
		},
		Tags: masterTags,
	}, pulumi.DependsOn([]pulumi.Resource{c.TokenSecret, c.KubeSecret})); err != nil {
		return nil, err
	}

	workerUserData, err := workerUserData(cfg, c.TokenSecret.Arn)
	if err != nil {
		return nil, err
	}
	volumeTags := tags(cfg, cfg.ClusterID+"-worker")
	volumeTags[tagManagedBy] = pulumi.String(managedByValue)
	if c.LaunchTemplate, err = ec2.NewLaunchTemplate(ctx, "worker", &ec2.LaunchTemplateArgs{
		Description:         pulumi.Sprintf("SmartScale %s K3s worker", cfg.ClusterID),
		ImageId:             ami,
		InstanceType:        pulumi.String(cfg.WorkerInstanceTypes[0]),
		IamInstanceProfile:  &ec2.LaunchTemplateIamInstanceProfileArgs{Arn: workerProfile.Arn},
		VpcSecurityGroupIds: pulumi.StringArray{net.WorkerSG.ID()},
		UserData:            workerUserData,
		MetadataOptions: &ec2.LaunchTemplateMetadataOptionsArgs{
			HttpEndpoint:            pulumi.String("enabled"),
			HttpTokens:              pulumi.String("required"),
			HttpPutResponseHopLimit: pulumi.Int(1), // pods cannot reach the node's credentials
		},
		BlockDeviceMappings: ec2.LaunchTemplateBlockDeviceMappingArray{&ec2.LaunchTemplateBlockDeviceMappingArgs{
			DeviceName: pulumi.String("/dev/xvda"),
			Ebs: &ec2.LaunchTemplateBlockDeviceMappingEbsArgs{
				VolumeSize: pulumi.Int(30), VolumeType: pulumi.String("gp3"), Encrypted: pulumi.String("true"),
				DeleteOnTermination: pulumi.String("true"),
			},
		}},
		// Instance tags come with each RunInstances request (IAM requires them there);
		// the template tags the volumes.
		TagSpecifications: ec2.LaunchTemplateTagSpecificationArray{&ec2.LaunchTemplateTagSpecificationArgs{
			ResourceType: pulumi.String("volume"), Tags: volumeTags,
		}},
		UpdateDefaultVersion: pulumi.Bool(true),
		Tags:                 tags(cfg, cfg.ClusterID+"-worker"),
	}); err != nil {
		return nil, err
	}
	return c, nil
}

// secretPolicy is a secret's resource policy: only writer may put a value, only reader may
// get it. The explicit denies make "only" hold even against broad identity policies in the
// account; other management calls (describe, tag, delete) stay with the account's admins.
// A nil writer leaves putting values to the account (the Slack webhook is set by an operator).
func secretPolicy(writer, reader pulumi.StringInput) pulumi.StringOutput {
	inputs := []pulumi.StringInput{reader}
	if writer != nil {
		inputs = append(inputs, writer)
	}
	return policyOf(func(v []string) []Statement {
		r := v[0]
		stmts := []Statement{
			allow("ReaderGets", []string{"secretsmanager:GetSecretValue"}, "*").principal("AWS", r),
			{Sid: "NobodyElseGets", Effect: "Deny", Principal: map[string]any{"AWS": "*"},
				Action: []string{"secretsmanager:GetSecretValue"}, Resource: []string{"*"},
				Condition: map[string]map[string]any{"StringNotEquals": {"aws:PrincipalArn": r}}},
		}
		if len(v) > 1 {
			w := v[1]
			stmts = append(stmts,
				allow("WriterPuts", []string{"secretsmanager:PutSecretValue"}, "*").principal("AWS", w),
				Statement{Sid: "NobodyElsePuts", Effect: "Deny", Principal: map[string]any{"AWS": "*"},
					Action: []string{"secretsmanager:PutSecretValue"}, Resource: []string{"*"},
					Condition: map[string]map[string]any{"StringNotEquals": {"aws:PrincipalArn": w}}})
		}
		return stmts
	}, inputs...)
}

func ec2Role(ctx *pulumi.Context, name string) (*iam.Role, error) {
	return iam.NewRole(ctx, name, &iam.RoleArgs{
		AssumeRolePolicy: pulumi.String(assumeRole("ec2.amazonaws.com")),
		Description:      pulumi.Sprintf("SmartScale K3s %s nodes", name),
	})
}

// workerUserData is k3s/worker-userdata.sh with its settings inserted after the shebang,
// base64-encoded as launch templates want it. It names the token's secret, never the token.
func workerUserData(cfg Config, tokenSecretArn pulumi.StringOutput) (pulumi.StringOutput, error) {
	script, err := os.ReadFile(filepath.Join(cfg.RepoRoot, "k3s", "worker-userdata.sh"))
	if err != nil {
		return pulumi.StringOutput{}, fmt.Errorf("reading the worker user data: %w", err)
	}
	return tokenSecretArn.ApplyT(func(arn string) string {
		settings := shellExports([][2]string{
			{"SMARTSCALE_CLUSTER_ID", cfg.ClusterID},
			{"SMARTSCALE_TOKEN_SECRET_ID", arn},
			{"SMARTSCALE_LOG_GROUP", nodeLogGroupName(cfg)},
			{"K3S_VERSION", cfg.K3sVersion},
		})
		return base64.StdEncoding.EncodeToString([]byte(insertAfterShebang(string(script), settings)))
	}).(pulumi.StringOutput), nil
}

// masterUserData unpacks master-setup.sh and the manifests it applies, then runs it.
// The bundle is a gzip'd tar so that it fits EC2's 16 KB user-data limit.
func masterUserData(cfg Config, tokenSecretArn, kubeSecretArn, alertTopicArn pulumi.StringOutput) (pulumi.StringOutput, error) {
	bundle, err := masterBundle(filepath.Join(cfg.RepoRoot, "k3s"))
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	return pulumi.All(tokenSecretArn, kubeSecretArn, alertTopicArn).ApplyT(func(v []any) string {
		settings := shellExports([][2]string{
			{"SMARTSCALE_CLUSTER_ID", cfg.ClusterID},
			{"SMARTSCALE_TOKEN_SECRET_ID", v[0].(string)},
			{"SMARTSCALE_KUBECONFIG_SECRET_ID", v[1].(string)},
			{"SMARTSCALE_ALERT_TOPIC_ARN", v[2].(string)},
			{"SMARTSCALE_LOG_GROUP", nodeLogGroupName(cfg)},
			{"K3S_VERSION", cfg.K3sVersion},
		})
		return "#!/bin/bash\nset -euo pipefail\n" + settings +
			"install -d -m 0755 /opt/smartscale\n" +
			"base64 -d <<'BUNDLE' | tar -xz -C /opt/smartscale\n" + wrap(base64.StdEncoding.EncodeToString(bundle), 76) + "BUNDLE\n" +
			"exec bash /opt/smartscale/master-setup.sh\n"
	}).(pulumi.StringOutput), nil
}

// masterBundle packs master-setup.sh and manifests/** (sorted, zero timestamps: the same
// inputs give the same bytes, so the master's user data does not drift).
func masterBundle(k3sDir string) ([]byte, error) {
	files := []string{"master-setup.sh"}
	err := filepath.WalkDir(filepath.Join(k3sDir, "manifests"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			rel, _ := filepath.Rel(k3sDir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the manifests: %w", err)
	}
	sort.Strings(files[1:])
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(k3sDir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("bundling %s: %w", f, err)
		}
		mode := int64(0o644)
		if strings.HasSuffix(f, ".sh") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: f, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func nodeLogGroupName(cfg Config) string { return "/smartscale/" + cfg.ClusterID + "/nodes" }

// shellExports renders KEY='value' export lines (values single-quoted).
func shellExports(kv [][2]string) string {
	var b strings.Builder
	for _, p := range kv {
		fmt.Fprintf(&b, "export %s='%s'\n", p[0], strings.ReplaceAll(p[1], "'", `'\''`))
	}
	return b.String()
}

func insertAfterShebang(script, lines string) string {
	if i := strings.IndexByte(script, '\n'); i >= 0 && strings.HasPrefix(script, "#!") {
		return script[:i+1] + lines + script[i+1:]
	}
	return "#!/bin/bash\n" + lines + script
}

func wrap(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width] + "\n")
		s = s[width:]
	}
	if s != "" {
		b.WriteString(s + "\n")
	}
	return b.String()
}
