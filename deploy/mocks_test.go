package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

const (
	testAccount  = "123456789012"
	testRegion   = "us-east-1"
	testMasterIP = "10.40.160.10"
)

// recorded is one resource the program registered, with the inputs it passed.
type recorded struct {
	Type, Name, ID string
	Inputs         map[string]any
}

// mocks stands in for the Pulumi engine and the AWS provider: it records every resource's
// inputs and answers with those inputs plus the provider-computed fields the program reads.
type mocks struct {
	mu        sync.Mutex
	resources []recorded
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	typ := args.TypeToken
	short := typ[strings.LastIndex(typ, ":")+1:]
	id := mockID(short, args.Name)
	outs := args.Inputs.Copy()
	set := func(k string, v string) {
		if _, ok := outs[resource.PropertyKey(k)]; !ok {
			outs[resource.PropertyKey(k)] = resource.NewStringProperty(v)
		}
	}
	set("name", args.Name+"-physical")
	switch typ {
	case "aws:iam/role:Role":
		set("arn", fmt.Sprintf("arn:aws:iam::%s:role/%s-physical", testAccount, args.Name))
	case "aws:iam/instanceProfile:InstanceProfile":
		set("arn", fmt.Sprintf("arn:aws:iam::%s:instance-profile/%s-physical", testAccount, args.Name))
	case "aws:ec2/instance:Instance":
		set("privateIp", testMasterIP)
		set("arn", fmt.Sprintf("arn:aws:ec2:%s:%s:instance/%s", testRegion, testAccount, id))
	case "aws:ec2/launchTemplate:LaunchTemplate":
		set("arn", fmt.Sprintf("arn:aws:ec2:%s:%s:launch-template/%s", testRegion, testAccount, id))
	case "aws:kms/key:Key":
		set("keyId", id)
		set("arn", fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", testRegion, testAccount, id))
	case "aws:dynamodb/table:Table":
		set("arn", fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s-physical", testRegion, testAccount, args.Name))
	case "aws:sns/topic:Topic":
		set("arn", fmt.Sprintf("arn:aws:sns:%s:%s:%s-physical", testRegion, testAccount, args.Name))
	case "aws:secretsmanager/secret:Secret":
		set("arn", fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-AbCdEf", testRegion, testAccount, args.Name))
	case "aws:lambda/function:Function":
		set("arn", fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", testRegion, testAccount, args.Name))
	case "aws:cloudwatch/logGroup:LogGroup":
		n := args.Inputs["name"].StringValue()
		set("arn", fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", testRegion, testAccount, n))
	default:
		set("arn", fmt.Sprintf("arn:aws:mock:%s:%s:%s/%s", testRegion, testAccount, short, args.Name))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resources = append(m.resources, recorded{Type: typ, Name: args.Name, ID: id, Inputs: plainMap(args.Inputs)})
	return id, outs, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	switch args.Token {
	case "aws:index/getCallerIdentity:getCallerIdentity":
		return resource.NewPropertyMapFromMap(map[string]any{
			"accountId": testAccount, "arn": "arn:aws:iam::" + testAccount + ":user/test", "userId": "AIDTEST", "id": testAccount,
		}), nil
	case "aws:index/getPartition:getPartition":
		return resource.NewPropertyMapFromMap(map[string]any{
			"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws",
		}), nil
	case "aws:index/getAvailabilityZones:getAvailabilityZones":
		return resource.NewPropertyMapFromMap(map[string]any{
			"names":   []any{"us-east-1a", "us-east-1b", "us-east-1c"},
			"zoneIds": []any{"use1-az1", "use1-az2", "use1-az4"}, "id": testRegion,
		}), nil
	case "aws:ssm/getParameter:getParameter":
		return resource.NewPropertyMapFromMap(map[string]any{
			"name": args.Args["name"].StringValue(), "value": "ami-0123456789abcdef0", "type": "String",
			"arn": "arn:aws:ssm:us-east-1::parameter/x", "id": "x", "version": 1, "insecureValue": "ami-0123456789abcdef0",
		}), nil
	}
	return nil, fmt.Errorf("unexpected invoke %s", args.Token)
}

// mockID gives resources ids shaped like AWS's (sg-..., subnet-..., lt-..., i-...).
func mockID(short, name string) string {
	prefix := map[string]string{
		"SecurityGroup": "sg-", "Subnet": "subnet-", "LaunchTemplate": "lt-", "Instance": "i-", "Vpc": "vpc-",
	}[short]
	return prefix + name
}

// plain turns a property value into plain Go values, unwrapping secrets and outputs.
func plain(v resource.PropertyValue) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		return plain(v.OutputValue().Element)
	case v.IsObject():
		return plainMap(v.ObjectValue())
	case v.IsArray():
		var out []any
		for _, e := range v.ArrayValue() {
			out = append(out, plain(e))
		}
		return out
	case v.IsArchive():
		return "archive:" + v.ArchiveValue().Path
	case v.IsNull():
		return nil
	}
	return v.Mappable()
}

func plainMap(pm resource.PropertyMap) map[string]any {
	out := map[string]any{}
	for k, v := range pm {
		out[string(k)] = plain(v)
	}
	return out
}

// result is one mocked program run.
type result struct {
	m       *mocks
	outputs map[string]any
	err     error
}

// testConfig is a valid stack configuration; the Lambda artifact is an empty file.
func testConfig(t *testing.T) map[string]string {
	t.Helper()
	zip := filepath.Join(t.TempDir(), "bootstrap.zip")
	if err := os.WriteFile(zip, []byte("PK"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"aws:region":                     testRegion,
		"smartscale:clusterId":           "demo",
		"smartscale:lambdaZip":           zip,
		"smartscale:workerInstanceTypes": `["t3.medium","t3a.medium"]`,
	}
}

func runProgram(t *testing.T, cfg map[string]string) result {
	t.Helper()
	m := &mocks{}
	var mu sync.Mutex
	outputs := map[string]any{}
	err := pulumi.RunErr(func(ctx *pulumi.Context) error {
		s, err := build(ctx)
		if err != nil {
			return err
		}
		for k, v := range s.Outputs() {
			ctx.Export(k, pulumi.ToOutput(v).ApplyT(func(x any) any {
				mu.Lock()
				outputs[k] = fmt.Sprint(x)
				mu.Unlock()
				return x
			}))
		}
		return nil
	}, pulumi.WithMocks("smartscale", "test", m), func(info *pulumi.RunInfo) { info.Config = cfg })
	return result{m: m, outputs: outputs, err: err}
}

var (
	stackOnce sync.Once
	stackRes  result
)

// stack runs the program once with the test configuration and shares the result.
func stack(t *testing.T) result {
	t.Helper()
	stackOnce.Do(func() {
		cfg := testConfig(t)
		// the temp dir of the first test is removed with it; keep a private copy
		dir, err := os.MkdirTemp("", "smartscale-deploy-test")
		if err != nil {
			t.Fatal(err)
		}
		zip := filepath.Join(dir, "bootstrap.zip")
		if err := os.WriteFile(zip, []byte("PK"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg["smartscale:lambdaZip"] = zip
		stackRes = runProgram(t, cfg)
	})
	if stackRes.err != nil {
		t.Fatalf("program failed: %v", stackRes.err)
	}
	return stackRes
}

// all returns the recorded resources of a type, sorted by name.
func (r result) all(typ string) []recorded {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	var out []recorded
	for _, res := range r.m.resources {
		if res.Type == typ {
			out = append(out, res)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// one returns the single resource of a type with a logical name.
func (r result) one(t *testing.T, typ, name string) recorded {
	t.Helper()
	for _, res := range r.all(typ) {
		if res.Name == name {
			return res
		}
	}
	t.Fatalf("no %s named %q", typ, name)
	return recorded{}
}

// get walks nested maps: get(m, "metadataOptions", "httpTokens").
func get(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}
