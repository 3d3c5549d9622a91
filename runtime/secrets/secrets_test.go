package secrets

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

type fakeSM struct {
	calls int
	vals  map[string]string
}

func (f *fakeSM) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.calls++
	v, ok := f.vals[aws.ToString(in.SecretId)]
	if !ok {
		return nil, errors.New("ResourceNotFoundException")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func TestCacheReadsOnce(t *testing.T) {
	f := &fakeSM{vals: map[string]string{"a": "x", "empty": ""}}
	c := New(f)
	for range 3 {
		if v, err := c.Get(context.Background(), "a"); err != nil || v != "x" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	if f.calls != 1 {
		t.Errorf("%d calls, want 1 (cached)", f.calls)
	}
	if _, err := c.Get(context.Background(), "missing"); err == nil {
		t.Error("missing secret: no error")
	}
	if _, err := c.Get(context.Background(), "empty"); err == nil {
		t.Error("empty secret: no error")
	}
	// Failures are not cached.
	f.vals["missing"] = "y"
	if v, err := c.Get(context.Background(), "missing"); err != nil || v != "y" {
		t.Errorf("after the secret appeared: %q, %v", v, err)
	}
}

func TestField(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"https://hooks.slack.com/services/T/B/X", "https://hooks.slack.com/services/T/B/X", true},
		{` {"url": "https://h/1"} `, "https://h/1", true},
		{`{"webhook_url": "https://h/2"}`, "https://h/2", true},
		{`{"other": "x"}`, "", false},
		{`{not json`, "", false},
	}
	for _, tt := range tests {
		got, err := Field(tt.in, "url", "webhook_url")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Field(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
