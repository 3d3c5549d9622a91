package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	tSG       = "aws:ec2/securityGroup:SecurityGroup"
	tIngress  = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
	tEgress   = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
	tOldRule  = "aws:ec2/securityGroupRule:SecurityGroupRule"
	tRole     = "aws:iam/role:Role"
	tRolePol  = "aws:iam/rolePolicy:RolePolicy"
	tSecret   = "aws:secretsmanager/secret:Secret"
	tLT       = "aws:ec2/launchTemplate:LaunchTemplate"
	tInstance = "aws:ec2/instance:Instance"
	tFunction = "aws:lambda/function:Function"
	tInvoke   = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
	tPerm     = "aws:lambda/permission:Permission"
	tRule     = "aws:cloudwatch/eventRule:EventRule"
	tTarget   = "aws:cloudwatch/eventTarget:EventTarget"
	tSub      = "aws:sns/topicSubscription:TopicSubscription"
	tTable    = "aws:dynamodb/table:Table"
	tAlarm    = "aws:cloudwatch/metricAlarm:MetricAlarm"
	tDash     = "aws:cloudwatch/dashboard:Dashboard"
	tSubnet   = "aws:ec2/subnet:Subnet"
)

// Fixed by the mocks: logical names become these ARNs and ids.
var (
	workerRoleArn = "arn:aws:iam::" + testAccount + ":role/worker-physical"
	masterRoleArn = "arn:aws:iam::" + testAccount + ":role/master-physical"
	lambdaRoleArn = "arn:aws:iam::" + testAccount + ":role/autoscaler-physical"
	ltArn         = "arn:aws:ec2:" + testRegion + ":" + testAccount + ":launch-template/lt-worker"
	tableArn      = "arn:aws:dynamodb:" + testRegion + ":" + testAccount + ":table/state-physical"
	topicArn      = "arn:aws:sns:" + testRegion + ":" + testAccount + ":events-physical"
	alertTopicArn = "arn:aws:sns:" + testRegion + ":" + testAccount + ":alerts-physical"
	tokenArn      = "arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:k3s-agent-token-AbCdEf"
	kubeArn       = "arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:autoscaler-kube-AbCdEf"
	slackArn      = "arn:aws:secretsmanager:" + testRegion + ":" + testAccount + ":secret:slack-webhook-AbCdEf"
	functionArn   = "arn:aws:lambda:" + testRegion + ":" + testAccount + ":function:autoscaler"
)

// rule is an ingress rule reduced to what matters.
type sgRule struct {
	to, from, proto string
	port            int
}

func ingressRules(t *testing.T, r result) []sgRule {
	t.Helper()
	var out []sgRule
	for _, res := range r.all(tIngress) {
		in := res.Inputs
		for _, k := range []string{"cidrIpv4", "cidrIpv6", "prefixListId"} {
			if v, ok := in[k]; ok && v != nil && v != "" {
				t.Errorf("ingress rule %s admits %s %v: every ingress must name a source group", res.Name, k, v)
			}
		}
		from, _ := in["fromPort"].(float64)
		to, _ := in["toPort"].(float64)
		if from != to {
			t.Errorf("ingress rule %s opens a port range %v-%v", res.Name, from, to)
		}
		out = append(out, sgRule{
			to: strings.TrimPrefix(in["securityGroupId"].(string), "sg-"), from: strings.TrimPrefix(fmtS(in["referencedSecurityGroupId"]), "sg-"),
			proto: fmtS(in["ipProtocol"]), port: int(from),
		})
	}
	return out
}

func fmtS(v any) string {
	s, _ := v.(string)
	return s
}

func TestIngressRulesAreExactlyTheClusterOnes(t *testing.T) {
	r := stack(t)
	got := ingressRules(t, r)
	want := []sgRule{
		{"master", "worker", "tcp", 6443},
		{"master", "lambda", "tcp", 6443},
		{"master", "lambda", "tcp", 30090},
		{"master", "worker", "udp", 8472},
		{"master", "worker", "tcp", 10250},
		{"worker", "master", "udp", 8472},
		{"worker", "worker", "udp", 8472},
		{"worker", "master", "tcp", 10250},
		{"worker", "worker", "tcp", 10250},
		{"worker", "master", "tcp", 9100},
	}
	key := func(s sgRule) string { return s.to + "<-" + s.from + "/" + s.proto + "/" + itoa(s.port) }
	var g, w []string
	for _, s := range got {
		g = append(g, key(s))
	}
	for _, s := range want {
		w = append(w, key(s))
	}
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		t.Fatalf("ingress rules\n got %v\nwant %v", g, w)
	}
	// The specific guarantees, stated on their own.
	for _, s := range got {
		switch {
		case s.port == 6443 && (s.to != "master" || s.proto != "tcp" || (s.from != "worker" && s.from != "lambda")):
			t.Errorf("6443 opened wrongly: %+v", s)
		case s.port == 30090 && (s.to != "master" || s.from != "lambda"):
			t.Errorf("Prometheus NodePort opened to something else than the Lambda: %+v", s)
		case (s.port == 8472 || s.port == 10250) && s.from == "lambda":
			t.Errorf("cluster-internal port %d opened to the Lambda", s.port)
		case s.port == 8472 && s.proto != "udp":
			t.Errorf("VXLAN must be udp: %+v", s)
		}
		if s.to == "lambda" {
			t.Errorf("the Lambda must accept no inbound traffic: %+v", s)
		}
	}
}

func TestNoInlineOrLegacyRulesAndNoOpenIngress(t *testing.T) {
	r := stack(t)
	if n := len(r.all(tOldRule)); n != 0 {
		t.Errorf("%d aws.ec2.SecurityGroupRule resources: rules must be the per-rule vpc resources the tests read", n)
	}
	sgs := r.all(tSG)
	if len(sgs) != 3 {
		t.Fatalf("want 3 security groups, got %d", len(sgs))
	}
	for _, sg := range sgs {
		if in, ok := sg.Inputs["ingress"]; ok && in != nil && len(in.([]any)) > 0 {
			t.Errorf("security group %s has inline ingress %v", sg.Name, in)
		}
	}
	for _, res := range r.all(tIngress) {
		for _, v := range res.Inputs {
			if s, ok := v.(string); ok && (s == "0.0.0.0/0" || s == "::/0") {
				t.Errorf("ingress rule %s is open to the internet", res.Name)
			}
		}
	}
	// The Lambda reaches only HTTPS (AWS APIs) and the master's two ports.
	for _, res := range r.all(tEgress) {
		if !strings.HasPrefix(res.Name, "lambda-") {
			continue
		}
		port := int(res.Inputs["fromPort"].(float64))
		if res.Inputs["ipProtocol"] != "tcp" || !slices.Contains([]int{443, 6443, 30090}, port) {
			t.Errorf("Lambda egress %s: %v", res.Name, res.Inputs)
		}
		if port != 443 && res.Inputs["referencedSecurityGroupId"] != "sg-master" {
			t.Errorf("Lambda egress %s must go to the master's group", res.Name)
		}
	}
}

// policy parses a policy document input.
func policy(t *testing.T, raw any) PolicyDocument {
	t.Helper()
	s, ok := raw.(string)
	if !ok {
		t.Fatalf("policy is %T, not a JSON string", raw)
	}
	var d PolicyDocument
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("policy %s: %v", s, err)
	}
	if d.Version != "2012-10-17" {
		t.Errorf("policy version %q", d.Version)
	}
	return d
}

// stmtsFor returns the Allow statements granting an action.
func stmtsFor(d PolicyDocument, action string) []Statement {
	var out []Statement
	for _, s := range d.Statement {
		if s.Effect == "Allow" && slices.Contains(s.Action, action) {
			out = append(out, s)
		}
	}
	return out
}

// cond returns a single-valued condition, or the values of a list joined with ",".
func cond(s Statement, op, key string) string {
	switch v := s.Condition[op][key].(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i], _ = p.(string)
		}
		return strings.Join(parts, ",")
	}
	return ""
}

func rolePolicy(t *testing.T, r result, name string) PolicyDocument {
	t.Helper()
	return policy(t, r.one(t, tRolePol, name).Inputs["policy"])
}

func TestAutoscalerRunInstancesNeedsTagsAndTemplate(t *testing.T) {
	d := rolePolicy(t, stack(t), "autoscaler")
	run := stmtsFor(d, "ec2:RunInstances")
	if len(run) == 0 {
		t.Fatal("no RunInstances grant")
	}
	instanceGrants := 0
	for _, s := range run {
		if len(s.Action) != 1 {
			t.Errorf("RunInstances shares a statement with %v", s.Action)
		}
		if cond(s, "ArnEquals", "ec2:LaunchTemplate") != ltArn {
			t.Errorf("RunInstances statement %s not pinned to the worker launch template: %v", s.Sid, s.Condition)
		}
		for _, res := range s.Resource {
			if res == "*" {
				t.Errorf("RunInstances on *")
			}
			if strings.Contains(res, ":instance/") {
				instanceGrants++
				if cond(s, "StringEquals", "aws:RequestTag/managed-by") != "smartscale" ||
					cond(s, "StringEquals", "aws:RequestTag/smartscale.io/cluster") != "demo" {
					t.Errorf("RunInstances on instances without the ownership tag conditions: %v", s.Condition)
				}
			}
			if strings.Contains(res, ":subnet/") && !strings.HasSuffix(res, "subnet/subnet-private-0") && !strings.HasSuffix(res, "subnet/subnet-private-1") {
				t.Errorf("RunInstances allowed in subnet %s", res)
			}
			if strings.Contains(res, ":security-group/") && !strings.HasSuffix(res, "/sg-worker") {
				t.Errorf("RunInstances allowed with group %s", res)
			}
		}
	}
	if instanceGrants != 1 {
		t.Errorf("want exactly one RunInstances grant on instances, got %d", instanceGrants)
	}
}

func TestAutoscalerTagTerminatePassRole(t *testing.T) {
	d := rolePolicy(t, stack(t), "autoscaler")
	for _, s := range stmtsFor(d, "ec2:CreateTags") {
		if cond(s, "StringEquals", "ec2:CreateAction") != "RunInstances" {
			t.Errorf("CreateTags allowed outside RunInstances: %+v", s)
		}
	}
	term := stmtsFor(d, "ec2:TerminateInstances")
	if len(term) != 1 {
		t.Fatalf("want one TerminateInstances grant, got %d", len(term))
	}
	s := term[0]
	if !slices.Equal(s.Resource, []string{"arn:aws:ec2:us-east-1:" + testAccount + ":instance/*"}) ||
		cond(s, "StringEquals", "ec2:ResourceTag/managed-by") != "smartscale" ||
		cond(s, "StringEquals", "ec2:ResourceTag/smartscale.io/cluster") != "demo" || len(s.Action) != 1 {
		t.Errorf("TerminateInstances not limited to this cluster's managed workers: %+v", s)
	}
	pass := stmtsFor(d, "iam:PassRole")
	if len(pass) != 1 || !slices.Equal(pass[0].Resource, []string{workerRoleArn}) ||
		cond(pass[0], "StringEquals", "iam:PassedToService") != "ec2.amazonaws.com" {
		t.Errorf("PassRole grant %+v, want only the worker role to ec2.amazonaws.com", pass)
	}
}

func TestAutoscalerDataPlaneScopes(t *testing.T) {
	d := rolePolicy(t, stack(t), "autoscaler")
	only := func(action string, want ...string) {
		t.Helper()
		st := stmtsFor(d, action)
		if len(st) == 0 {
			t.Errorf("%s not granted", action)
		}
		for _, s := range st {
			if !slices.Equal(s.Resource, want) {
				t.Errorf("%s on %v, want %v", action, s.Resource, want)
			}
		}
	}
	for _, a := range []string{"dynamodb:GetItem", "dynamodb:UpdateItem"} {
		only(a, tableArn)
	}
	var dynamo []string
	for _, st := range d.Statement {
		for _, a := range st.Action {
			if strings.HasPrefix(a, "dynamodb:") {
				dynamo = append(dynamo, a)
			}
		}
	}
	if !slices.Equal(dynamo, []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}) {
		t.Errorf("DynamoDB actions %v, want what runtime/dynamo calls: GetItem, UpdateItem", dynamo)
	}
	only("sns:Publish", topicArn)
	only("secretsmanager:GetSecretValue", slackArn, kubeArn)
	only("logs:PutLogEvents", "arn:aws:logs:us-east-1:"+testAccount+":log-group:/aws/lambda/smartscale-demo:*")
	// Nothing else may use a wildcard resource, and no action is a wildcard.
	wildOK := map[string]bool{
		"ec2:DescribeInstances": true, "ec2:DescribeLaunchTemplateVersions": true,
		"ec2:CreateNetworkInterface": true, "ec2:DescribeNetworkInterfaces": true, "ec2:DeleteNetworkInterface": true,
		"ec2:AssignPrivateIpAddresses": true, "ec2:UnassignPrivateIpAddresses": true,
	}
	for _, s := range d.Statement {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				t.Errorf("wildcard action %s", a)
			}
			if slices.Contains(s.Resource, "*") && !wildOK[a] {
				t.Errorf("%s granted on *", a)
			}
		}
		if slices.Contains(s.Action, "secretsmanager:GetSecretValue") && slices.Contains(s.Resource, tokenArn) {
			t.Errorf("the Lambda may read the K3s agent token")
		}
	}
	if dec := stmtsFor(d, "kms:Decrypt"); len(dec) != 1 || cond(dec[0], "StringEquals", "kms:ViaService") != "secretsmanager.us-east-1.amazonaws.com" ||
		cond(dec[0], "StringEquals", "kms:EncryptionContext:SecretARN") != slackArn+","+kubeArn {
		t.Errorf("kms:Decrypt not limited to the Lambda's secrets through Secrets Manager: %+v", dec)
	}
}

func TestWorkersReadOnlyTheTokenSecret(t *testing.T) {
	d := rolePolicy(t, stack(t), "worker")
	var actions []string
	for _, s := range d.Statement {
		actions = append(actions, s.Action...)
	}
	sort.Strings(actions)
	want := []string{"ec2:DescribeInstances", "kms:Decrypt", "logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue"}
	if !slices.Equal(actions, want) {
		t.Errorf("worker actions %v, want %v", actions, want)
	}
	get := stmtsFor(d, "secretsmanager:GetSecretValue")
	if len(get) != 1 || !slices.Equal(get[0].Resource, []string{tokenArn}) {
		t.Errorf("worker secret access %+v, want the token secret only", get)
	}
	dec := stmtsFor(d, "kms:Decrypt")
	if len(dec) != 1 || cond(dec[0], "StringEquals", "kms:EncryptionContext:SecretARN") != tokenArn {
		t.Errorf("worker kms:Decrypt not pinned to the token secret: %+v", dec)
	}
}

func TestMasterWritesButNeverReadsSecrets(t *testing.T) {
	d := rolePolicy(t, stack(t), "master")
	if len(stmtsFor(d, "secretsmanager:GetSecretValue")) != 0 {
		t.Errorf("the master may read secrets")
	}
	put := stmtsFor(d, "secretsmanager:PutSecretValue")
	if len(put) != 1 || !slices.Equal(put[0].Resource, []string{tokenArn, kubeArn}) {
		t.Errorf("master PutSecretValue %+v, want the token and kube secrets", put)
	}
	enc := stmtsFor(d, "kms:GenerateDataKey")
	if len(enc) != 1 || cond(enc[0], "StringEquals", "kms:EncryptionContext:SecretARN") != tokenArn+","+kubeArn {
		t.Errorf("master KMS use not pinned to its secrets: %+v", enc)
	}
}

// secretAccess evaluates a secret's resource policy for one principal: is it allowed, and
// is it not explicitly denied?
func secretAccess(d PolicyDocument, action, principal string) (allowed, denied bool) {
	for _, s := range d.Statement {
		if !slices.Contains(s.Action, action) {
			continue
		}
		p, _ := s.Principal["AWS"].(string)
		switch s.Effect {
		case "Allow":
			allowed = allowed || p == principal
		case "Deny":
			if p == "*" {
				if except := cond(s, "StringNotEquals", "aws:PrincipalArn"); except != "" && except != principal {
					denied = true
				}
			}
		}
	}
	return allowed, denied
}

func TestSecretResourcePolicies(t *testing.T) {
	r := stack(t)
	other := "arn:aws:iam::" + testAccount + ":role/someone-else"
	cases := []struct {
		secret       string
		readers      []string
		writers      []string
		writeLimited bool
	}{
		{"k3s-agent-token", []string{workerRoleArn}, []string{masterRoleArn}, true},
		{"autoscaler-kube", []string{lambdaRoleArn}, []string{masterRoleArn}, true},
		{"slack-webhook", []string{lambdaRoleArn}, nil, false},
	}
	for _, c := range cases {
		t.Run(c.secret, func(t *testing.T) {
			sec := r.one(t, tSecret, c.secret)
			if !strings.HasPrefix(fmtS(sec.Inputs["kmsKeyId"]), "arn:aws:kms:") {
				t.Errorf("not encrypted with the cluster's KMS key: %v", sec.Inputs["kmsKeyId"])
			}
			d := policy(t, sec.Inputs["policy"])
			for _, p := range []string{workerRoleArn, masterRoleArn, lambdaRoleArn, other} {
				allowed, denied := secretAccess(d, "secretsmanager:GetSecretValue", p)
				mayRead := allowed && !denied
				if mayRead != slices.Contains(c.readers, p) || (!slices.Contains(c.readers, p) && !denied) {
					t.Errorf("GetSecretValue for %s: allowed=%v denied=%v", p, allowed, denied)
				}
				if c.writeLimited {
					allowed, denied = secretAccess(d, "secretsmanager:PutSecretValue", p)
					if (allowed && !denied) != slices.Contains(c.writers, p) || (!slices.Contains(c.writers, p) && !denied) {
						t.Errorf("PutSecretValue for %s: allowed=%v denied=%v", p, allowed, denied)
					}
				}
			}
		})
	}
}

func TestWorkerLaunchTemplate(t *testing.T) {
	r := stack(t)
	lt := r.one(t, tLT, "worker")
	md := lt.Inputs["metadataOptions"].(map[string]any)
	if md["httpTokens"] != "required" || md["httpPutResponseHopLimit"] != float64(1) || md["httpEndpoint"] != "enabled" {
		t.Errorf("metadata options %v, want IMDSv2 required with hop limit 1", md)
	}
	if lt.Inputs["imageId"] != "ami-0123456789abcdef0" || lt.Inputs["instanceType"] != "t3.medium" {
		t.Errorf("image %v type %v", lt.Inputs["imageId"], lt.Inputs["instanceType"])
	}
	if get(lt.Inputs, "iamInstanceProfile", "arn") != "arn:aws:iam::"+testAccount+":instance-profile/worker-physical" {
		t.Errorf("instance profile %v", lt.Inputs["iamInstanceProfile"])
	}
	if g := lt.Inputs["vpcSecurityGroupIds"].([]any); len(g) != 1 || g[0] != "sg-worker" {
		t.Errorf("security groups %v", g)
	}
	raw, err := base64.StdEncoding.DecodeString(lt.Inputs["userData"].(string))
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	ud := string(raw)
	for _, want := range []string{
		"#!/bin/bash\nexport SMARTSCALE_CLUSTER_ID='demo'\n",
		"export SMARTSCALE_TOKEN_SECRET_ID='" + tokenArn + "'\n",
		"set -euo pipefail\n",
		"X-aws-ec2-metadata-token",
		"tag:Role,Values=k3s-master",
		"smartscale.io/instance-id=$instance_id",
		"provider-id=aws:///$az/$instance_id",
	} {
		if !strings.Contains(ud, want) {
			t.Errorf("worker user data lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(?m)K3S_TOKEN=[^$"]`).FindString(ud); m != "" {
		t.Errorf("worker user data carries a token: %q", m)
	}
	if len(ud) > 16384 {
		t.Errorf("worker user data is %d bytes, EC2 allows 16384", len(ud))
	}
}

func TestMasterInstance(t *testing.T) {
	r := stack(t)
	m := r.one(t, tInstance, "master")
	if get(m.Inputs, "tags", "Role") != "k3s-master" || get(m.Inputs, "tags", "smartscale.io/cluster") != "demo" {
		t.Errorf("master tags %v", m.Inputs["tags"])
	}
	if get(m.Inputs, "metadataOptions", "httpTokens") != "required" {
		t.Errorf("master IMDS %v", m.Inputs["metadataOptions"])
	}
	if m.Inputs["subnetId"] != "subnet-private-0" {
		t.Errorf("master in subnet %v, want a private one", m.Inputs["subnetId"])
	}
	if _, public := m.Inputs["associatePublicIpAddress"]; public && m.Inputs["associatePublicIpAddress"] == true {
		t.Errorf("master has a public IP")
	}
	ud := m.Inputs["userData"].(string)
	if len(ud) > 16384 {
		t.Fatalf("master user data is %d bytes, EC2 allows 16384", len(ud))
	}
	for _, want := range []string{"export SMARTSCALE_TOKEN_SECRET_ID='" + tokenArn + "'", "export SMARTSCALE_KUBECONFIG_SECRET_ID='" + kubeArn + "'", "exec bash /opt/smartscale/master-setup.sh"} {
		if !strings.Contains(ud, want) {
			t.Errorf("master user data lacks %q", want)
		}
	}
	// The embedded bundle unpacks to the setup script and the manifests.
	head := "<<'BUNDLE' | tar -xz -C /opt/smartscale\n"
	start := strings.Index(ud, head)
	if start < 0 {
		t.Fatalf("no bundle in the master user data")
	}
	start += len(head)
	end := strings.Index(ud, "BUNDLE\nexec")
	blob, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(ud[start:end], "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	for _, want := range []string{"master-setup.sh", "manifests/autoscaler-rbac.yaml", "manifests/monitoring/prometheus.yaml"} {
		if !slices.Contains(names, want) {
			t.Errorf("bundle lacks %s (has %v)", want, names)
		}
	}
}

func TestLambda(t *testing.T) {
	r := stack(t)
	f := r.one(t, tFunction, "autoscaler")
	in := f.Inputs
	checks := map[string]any{
		"runtime": "provided.al2023", "handler": "bootstrap", "reservedConcurrentExecutions": float64(1),
		"name": "smartscale-demo", "role": lambdaRoleArn,
	}
	for k, want := range checks {
		if in[k] != want {
			t.Errorf("%s = %v, want %v", k, in[k], want)
		}
	}
	if a := in["architectures"].([]any); len(a) != 1 || a[0] != "arm64" {
		t.Errorf("architectures %v", a)
	}
	timeout := time.Duration(in["timeout"].(float64)) * time.Second
	if timeout <= 0 || timeout >= engineLease || engineLease-timeout < 30*time.Second {
		t.Errorf("timeout %v must be well below the lock lease %v", timeout, engineLease)
	}
	if engineLease != 3*time.Minute || timeout != 100*time.Second {
		t.Errorf("lease %v timeout %v, want 3m and 100s", engineLease, timeout)
	}
	if !strings.HasPrefix(fmtS(in["code"]), "archive:") || !strings.HasSuffix(fmtS(in["code"]), "bootstrap.zip") {
		t.Errorf("code %v", in["code"])
	}
	vpc := in["vpcConfig"].(map[string]any)
	subnets := vpc["subnetIds"].([]any)
	if len(subnets) != 2 || subnets[0] != "subnet-private-0" || subnets[1] != "subnet-private-1" {
		t.Errorf("Lambda subnets %v", subnets)
	}
	if g := vpc["securityGroupIds"].([]any); len(g) != 1 || g[0] != "sg-lambda" {
		t.Errorf("Lambda groups %v", g)
	}
	env := get(in, "environment", "variables").(map[string]any)
	wantEnv := map[string]string{
		"SMARTSCALE_HANDLES":               "tick,slack",
		"SMARTSCALE_CLUSTER_ID":            "demo",
		"SMARTSCALE_TABLE":                 "state-physical",
		"SMARTSCALE_LAUNCH_TEMPLATE":       "lt-worker",
		"SMARTSCALE_SUBNETS":               "subnet-private-0=us-east-1a,subnet-private-1=us-east-1b",
		"SMARTSCALE_INSTANCE_TYPES":        "t3.medium,t3a.medium",
		"SMARTSCALE_SNS_TOPIC_ARN":         topicArn,
		"SMARTSCALE_ALERT_TOPIC_ARN":       alertTopicArn,
		"PROMETHEUS_URL":                   "http://" + testMasterIP + ":30090",
		"SLACK_WEBHOOK_SECRET_ARN":         slackArn,
		"SMARTSCALE_KUBECONFIG_SECRET_ARN": kubeArn,
		"SMARTSCALE_LEASE":                 "3m",
		"SMARTSCALE_DRY_RUN":               "false",
	}
	for k, v := range wantEnv {
		if env[k] != v {
			t.Errorf("env %s = %v, want %v", k, env[k], v)
		}
	}
	var pol map[string]any
	if err := json.Unmarshal([]byte(fmtS(env["POLICY_JSON"])), &pol); err != nil {
		t.Fatalf("POLICY_JSON: %v", err)
	}
	for k, v := range map[string]float64{"min_workers": 2, "max_workers": 10, "scale_up_cpu_percent": 70, "scale_down_cpu_percent": 30,
		"scale_up_memory_percent": 75, "scale_down_memory_percent": 50} {
		if pol[k] != v {
			t.Errorf("policy %s = %v, want %v", k, pol[k], v)
		}
	}
	if len(env) != len(wantEnv)+1 {
		t.Errorf("environment has %d variables, want %d: %v", len(env), len(wantEnv)+1, env)
	}
	for k, v := range env {
		if strings.Contains(strings.ToLower(k), "token") || strings.Contains(fmtS(v), "hooks.slack.com") {
			t.Errorf("secret material in the Lambda environment: %s", k)
		}
	}

	ic := r.one(t, tInvoke, "autoscaler")
	if ic.Inputs["maximumRetryAttempts"] != float64(0) || ic.Inputs["functionName"] != "smartscale-demo" {
		t.Errorf("async invoke config %v, want 0 retries", ic.Inputs)
	}
}

func TestScheduleAndSlackForwarder(t *testing.T) {
	r := stack(t)
	rule := r.one(t, tRule, "tick")
	if rule.Inputs["scheduleExpression"] != "rate(2 minutes)" {
		t.Errorf("schedule %v", rule.Inputs["scheduleExpression"])
	}
	tg := r.one(t, tTarget, "tick")
	if tg.Inputs["arn"] != functionArn {
		t.Errorf("the rule targets %v", tg.Inputs["arn"])
	}
	perms := map[string]string{}
	for _, p := range r.all(tPerm) {
		perms[fmtS(p.Inputs["principal"])+" "+fmtS(p.Inputs["sourceArn"])] = p.Name
	}
	want := map[string]string{
		"events.amazonaws.com arn:aws:mock:us-east-1:" + testAccount + ":EventRule/tick": "tick",
		"sns.amazonaws.com " + topicArn:      "slack-forwarder",
		"sns.amazonaws.com " + alertTopicArn: "alert-tick",
	}
	if !maps.Equal(perms, want) {
		t.Errorf("invoke permissions %v, want %v", perms, want)
	}
	sub := r.one(t, tSub, "slack-forwarder")
	if sub.Inputs["protocol"] != "lambda" || sub.Inputs["endpoint"] != functionArn || sub.Inputs["topic"] != topicArn {
		t.Errorf("subscription %v", sub.Inputs)
	}
}

func TestStateTable(t *testing.T) {
	tb := stack(t).one(t, tTable, "state")
	if tb.Inputs["billingMode"] != "PAY_PER_REQUEST" || tb.Inputs["hashKey"] != "cluster_id" {
		t.Errorf("table %v", tb.Inputs)
	}
	attrs := tb.Inputs["attributes"].([]any)
	if len(attrs) != 1 || get(attrs[0].(map[string]any), "name") != "cluster_id" || get(attrs[0].(map[string]any), "type") != "S" {
		t.Errorf("attributes %v", attrs)
	}
}

func TestAlarmsAndDashboard(t *testing.T) {
	r := stack(t)
	alarms := map[string]recorded{}
	for _, a := range r.all(tAlarm) {
		alarms[a.Name] = a
		if acts := a.Inputs["alarmActions"].([]any); len(acts) != 1 || acts[0] != topicArn {
			t.Errorf("alarm %s notifies %v", a.Name, acts)
		}
	}
	for _, name := range []string{"scaling-failures", "lambda-errors", "lock-held-too-long", "autoscaler-silent"} {
		if _, ok := alarms[name]; !ok {
			t.Fatalf("no alarm %s (have %v)", name, alarms)
		}
	}
	q := get(alarms["scaling-failures"].Inputs, "metricQueries").([]any)[0].(map[string]any)
	if q["expression"] != `SELECT SUM(ScalingFailures) FROM SCHEMA("SmartScale", cluster, error_type) WHERE cluster = 'demo'` {
		t.Errorf("scaling failures query %v", q["expression"])
	}
	le := alarms["lambda-errors"].Inputs
	if le["namespace"] != "AWS/Lambda" || le["metricName"] != "Errors" || get(le, "dimensions", "FunctionName") != "smartscale-demo" {
		t.Errorf("lambda errors alarm %v", le)
	}
	lh := alarms["lock-held-too-long"].Inputs
	if lh["namespace"] != "SmartScale" || lh["metricName"] != "LockHeld" || get(lh, "dimensions", "cluster") != "demo" {
		t.Errorf("lock alarm %v", lh)
	}
	f := r.one(t, "aws:cloudwatch/logMetricFilter:LogMetricFilter", "lock-held")
	if f.Inputs["logGroupName"] != "/aws/lambda/smartscale-demo" || !strings.Contains(fmtS(f.Inputs["pattern"]), `$.record.lock = "held"`) ||
		get(f.Inputs, "metricTransformation", "name") != "LockHeld" || get(f.Inputs, "metricTransformation", "dimensions", "cluster") != "$.cluster" {
		t.Errorf("lock-held metric filter %v", f.Inputs)
	}

	body := fmtS(r.one(t, tDash, "autoscaler").Inputs["dashboardBody"])
	var d struct {
		Widgets []struct {
			Properties struct {
				Metrics [][]any `json:"metrics"`
			} `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, w := range d.Widgets {
		for _, m := range w.Properties.Metrics {
			if m[0] == "SmartScale" && m[2] == "cluster" && m[3] == "demo" {
				seen[m[1].(string)] = true
			}
			if e, ok := m[0].(map[string]any); ok {
				if s := fmtS(e["expression"]); strings.HasPrefix(s, "SEARCH('{SmartScale,cluster,") {
					name := s[strings.Index(s, `MetricName="`)+len(`MetricName="`):]
					name = name[:strings.Index(name, `"`)]
					if strings.Contains(s, `cluster="demo"`) {
						seen[name] = true
					}
				}
			}
		}
	}
	for _, m := range []string{"AutoscalerInvocations", "ScaleUpEvents", "ScaleDownEvents", "ScalingFailures", "NodeJoinLatency", "LambdaExecutionTime"} {
		if !seen[m] {
			t.Errorf("dashboard lacks SmartScale/%s of cluster demo", m)
		}
	}
}

func TestNetworkSpansTwoZones(t *testing.T) {
	r := stack(t)
	zones := map[string]bool{}
	for _, s := range r.all(tSubnet) {
		if strings.HasPrefix(s.Name, "private-") {
			zones[fmtS(s.Inputs["availabilityZone"])] = true
		}
	}
	if len(zones) != 2 {
		t.Errorf("private subnets in zones %v, want two", zones)
	}
}

func TestOutputs(t *testing.T) {
	out := stack(t).outputs
	want := map[string]string{
		"masterIp":      testMasterIP,
		"prometheusUrl": "http://" + testMasterIP + ":30090",
		"tableName":     "state-physical",
		"topicName":     "events-physical",
		"topicArn":      topicArn,
		"functionName":  "smartscale-demo",
		"clusterId":     "demo",
		"nodeLogGroup":  "/smartscale/demo/nodes",
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output %s = %q, want %q", k, out[k], v)
		}
	}
	for _, k := range []string{"masterInstanceId", "launchTemplateId", "tokenSecretArn", "slackSecretArn", "kubeSecretArn", "vpcId", "scheduleRuleName"} {
		if out[k] == "" {
			t.Errorf("output %s missing", k)
		}
	}
}

func TestConfigProblemsAreReportedTogether(t *testing.T) {
	cfg := testConfig(t)
	cfg["smartscale:minWorkers"] = "5"
	cfg["smartscale:maxWorkers"] = "3"
	cfg["smartscale:scaleDownCpuPercent"] = "80"
	cfg["smartscale:lambdaZip"] = "/nonexistent/bootstrap.zip"
	cfg["smartscale:vpcCidr"] = "10.0.0.0/24"
	res := runProgram(t, cfg)
	if res.err == nil {
		t.Fatal("an invalid configuration deployed")
	}
	for _, want := range []string{"minWorkers (5) and maxWorkers (3)", "scaleDownCpuPercent (80)", "make lambda", "vpcCidr"} {
		if !strings.Contains(res.err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, res.err)
		}
	}
}

// A policy file (sim tune's best-policy.json) reaches the Lambda as it is; with the policy
// keys beside it, or when it is not a JSON object, the stack is refused.
func TestPolicyFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "best-policy.json")
	doc := `{"preset": "responsive", "scale_up_sustain": "2m",
  "queries": {"pending": "sum(kube_pod_status_phase{phase=\"Pending\"}) > 0"}}`
	if err := os.WriteFile(file, []byte(doc+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg["smartscale:policyFile"] = file
	res := runProgram(t, cfg)
	if res.err != nil {
		t.Fatal(res.err)
	}
	fn := res.one(t, tFunction, "autoscaler")
	got := fmtS(get(fn.Inputs, "environment", "variables", "POLICY_JSON"))
	var want bytes.Buffer
	json.Compact(&want, []byte(doc))
	if got != want.String() {
		t.Errorf("POLICY_JSON %s, want the file %s", got, want.String())
	}

	cfg["smartscale:maxWorkers"] = "6"
	if res := runProgram(t, cfg); res.err == nil || !strings.Contains(res.err.Error(), "remove smartscale:maxWorkers") {
		t.Errorf("policyFile with maxWorkers: %v", res.err)
	}
	delete(cfg, "smartscale:maxWorkers")
	os.WriteFile(file, []byte(`["not", "a", "policy"]`), 0o644)
	if res := runProgram(t, cfg); res.err == nil || !strings.Contains(res.err.Error(), "not a JSON object") {
		t.Errorf("a policy file that is a list: %v", res.err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The documented example configuration deploys, names only keys the program reads, and its
// thresholds reach the Lambda.
func TestExampleStackConfig(t *testing.T) {
	data, err := os.ReadFile("Pulumi.dev.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	zip := cfg["smartscale:lambdaZip"]
	for k, v := range doc.Config {
		ns, key, _ := strings.Cut(k, ":")
		if ns == "smartscale" && !slices.Contains(configKeys, key) {
			t.Errorf("example sets unknown key %s", k)
		}
		switch v := v.(type) {
		case string:
			cfg[k] = v
		default:
			b, _ := json.Marshal(v)
			cfg[k] = string(b)
		}
	}
	if doc.Config["aws:region"] == nil || doc.Config["smartscale:maxWorkers"] == nil || doc.Config["smartscale:scaleUpCpuPercent"] == nil {
		t.Errorf("example lacks region or thresholds: %v", doc.Config)
	}
	cfg["smartscale:lambdaZip"] = zip // the example's ../dist path is not built in tests
	res := runProgram(t, cfg)
	if res.err != nil {
		t.Fatalf("the example configuration fails: %v", res.err)
	}
	f := res.one(t, tFunction, "autoscaler")
	var pol map[string]any
	if err := json.Unmarshal([]byte(fmtS(get(f.Inputs, "environment", "variables", "POLICY_JSON"))), &pol); err != nil {
		t.Fatal(err)
	}
	if pol["max_workers"] != float64(doc.Config["smartscale:maxWorkers"].(int)) {
		t.Errorf("max_workers %v, example says %v", pol["max_workers"], doc.Config["smartscale:maxWorkers"])
	}
	if got := get(f.Inputs, "environment", "variables", "SMARTSCALE_INSTANCE_TYPES"); got != "t3.medium,t3a.medium" {
		t.Errorf("instance types %v from the example's list", got)
	}
}

// TestAlertTicks: Alertmanager's topic invokes the Lambda (an alert tick), the master's role
// may publish to that topic and nothing else of SNS, and both ends know the topic.
func TestAlertTicks(t *testing.T) {
	r := stack(t)
	sub := r.one(t, tSub, "alert-tick")
	if sub.Inputs["protocol"] != "lambda" || sub.Inputs["endpoint"] != functionArn || sub.Inputs["topic"] != alertTopicArn {
		t.Errorf("alert subscription %v", sub.Inputs)
	}
	pub := stmtsFor(rolePolicy(t, r, "master-alerts"), "sns:Publish")
	if len(pub) != 1 || !slices.Equal(pub[0].Resource, []string{alertTopicArn}) {
		t.Errorf("master sns:Publish %+v, want the alert topic only", pub)
	}
	for _, name := range []string{"master", "worker", "autoscaler"} {
		for _, s := range stmtsFor(rolePolicy(t, r, name), "sns:Publish") {
			if slices.Contains(s.Resource, alertTopicArn) {
				t.Errorf("role policy %s may publish alerts", name)
			}
		}
	}
	env := r.one(t, tFunction, "autoscaler").Inputs["environment"].(map[string]any)["variables"].(map[string]any)
	if env["SMARTSCALE_ALERT_TOPIC_ARN"] != alertTopicArn {
		t.Errorf("Lambda env SMARTSCALE_ALERT_TOPIC_ARN = %v", env["SMARTSCALE_ALERT_TOPIC_ARN"])
	}
	if ud := fmtS(r.one(t, tInstance, "master").Inputs["userData"]); !strings.Contains(ud, "export SMARTSCALE_ALERT_TOPIC_ARN='"+alertTopicArn+"'") {
		t.Errorf("the master's user data does not export the alert topic")
	}
}
