package notify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/smartscale/smartscale/engine"
)

type fakeSNS struct {
	in  *sns.PublishInput
	err error
}

func (f *fakeSNS) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.in = in
	return &sns.PublishOutput{}, f.err
}

func TestNotifyPublishesTheEvent(t *testing.T) {
	f := &fakeSNS{}
	n := New(f, "arn:aws:sns:us-east-1:1:smartscale", "demo")
	ev := engine.Event{Kind: engine.EventScaleUp, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Message: "Added 2 nodes (CPU: 78%) → Total: 5 nodes",
		Decision: engine.Decision{Action: engine.ActionScaleUp, Delta: 2}}
	if err := n.Notify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(f.in.TopicArn) != "arn:aws:sns:us-east-1:1:smartscale" || aws.ToString(f.in.Subject) != "SmartScale demo: scale_up" {
		t.Errorf("publish %+v", f.in)
	}
	if aws.ToString(f.in.MessageAttributes["kind"].StringValue) != "scale_up" {
		t.Errorf("attributes %+v", f.in.MessageAttributes)
	}
	m, err := Decode(aws.ToString(f.in.Message))
	if err != nil {
		t.Fatal(err)
	}
	if m.Cluster != "demo" || m.Event.Message != ev.Message || m.Event.Decision.Delta != 2 || !m.Event.Time.Equal(ev.Time) {
		t.Errorf("decoded %+v", m)
	}
	f.err = errors.New("AuthorizationError")
	if err := n.Notify(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "AuthorizationError") {
		t.Errorf("publish failure: %v", err)
	}
}

func TestSubjectIsValidForSNS(t *testing.T) {
	s := Subject(strings.Repeat("é-cluster-", 20), engine.Event{Kind: engine.EventWarning})
	if len(s) > 100 {
		t.Errorf("subject %d chars", len(s))
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f {
			t.Errorf("subject has %q", r)
		}
	}
}

func TestDecode(t *testing.T) {
	if _, err := Decode(`{"kind":"failure","message":"x"}`); err != nil {
		t.Errorf("bare event: %v", err)
	}
	for _, bad := range []string{`hello`, `{}`, `{"cluster":"demo"}`} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%s) succeeded", bad)
		}
	}
}
