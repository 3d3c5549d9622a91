package main

import (
	"encoding/json"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// PolicyDocument is an IAM policy document (identity, resource or key policy).
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM statement. Conditions map an operator to keys and their value: a
// string, or a list of strings (any of them matches).
type Statement struct {
	Sid       string                    `json:"Sid,omitempty"`
	Effect    string                    `json:"Effect"`
	Principal map[string]any            `json:"Principal,omitempty"`
	Action    []string                  `json:"Action"`
	Resource  []string                  `json:"Resource,omitempty"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

func allow(sid string, actions []string, resources ...string) Statement {
	return Statement{Sid: sid, Effect: "Allow", Action: actions, Resource: resources}
}

func (s Statement) when(op, key string, value any) Statement {
	if s.Condition == nil {
		s.Condition = map[string]map[string]any{}
	}
	if s.Condition[op] == nil {
		s.Condition[op] = map[string]any{}
	}
	s.Condition[op][key] = value
	return s
}

func (s Statement) principal(kind, id string) Statement {
	s.Principal = map[string]any{kind: id}
	return s
}

func policyJSON(stmts ...Statement) string {
	b, err := json.Marshal(PolicyDocument{Version: "2012-10-17", Statement: stmts})
	if err != nil { // strings and maps of strings only: cannot happen
		panic(err)
	}
	return string(b)
}

// policyOf builds a policy document from resolved string outputs (ARNs, ids). build receives
// the values in the order of inputs.
func policyOf(build func(v []string) []Statement, inputs ...pulumi.StringInput) pulumi.StringOutput {
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	return pulumi.All(args...).ApplyT(func(vals []any) string {
		s := make([]string, len(vals))
		for i, v := range vals {
			s[i], _ = v.(string)
		}
		return policyJSON(build(s)...)
	}).(pulumi.StringOutput)
}

// assumeRole is the trust policy letting one AWS service assume a role.
func assumeRole(service string) string {
	return policyJSON(Statement{
		Effect:    "Allow",
		Principal: map[string]any{"Service": service},
		Action:    []string{"sts:AssumeRole"},
	})
}
