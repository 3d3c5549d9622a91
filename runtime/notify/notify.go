// Package notify is the engine.Notifier adapter on Amazon SNS: each engine.Event is
// published as JSON (the message body) with a short subject and a "kind" message attribute.
// The Slack forwarder (runtime/slack) subscribes to the topic and renders the event.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/smartscale/smartscale/engine"
)

// API lists the SNS calls the notifier uses.
type API interface {
	Publish(ctx context.Context, in *sns.PublishInput, opts ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// Message is what is published: the event and the cluster it belongs to.
type Message struct {
	Cluster string       `json:"cluster"`
	Event   engine.Event `json:"event"`
}

// SNS publishes events to a topic.
type SNS struct {
	api     API
	topic   string
	cluster string
}

var _ engine.Notifier = (*SNS)(nil)

// New returns a notifier publishing to topic (an ARN).
func New(api API, topic, cluster string) *SNS { return &SNS{api: api, topic: topic, cluster: cluster} }

// Notify publishes one event.
func (s *SNS) Notify(ctx context.Context, ev engine.Event) error {
	body, err := json.Marshal(Message{Cluster: s.cluster, Event: ev})
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	_, err = s.api.Publish(ctx, &sns.PublishInput{
		TopicArn: aws.String(s.topic),
		Subject:  aws.String(Subject(s.cluster, ev)),
		Message:  aws.String(string(body)),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"kind":    {DataType: aws.String("String"), StringValue: aws.String(string(ev.Kind))},
			"cluster": {DataType: aws.String("String"), StringValue: aws.String(s.cluster)},
		},
	})
	if err != nil {
		return fmt.Errorf("publishing %s event to %s: %w", ev.Kind, s.topic, err)
	}
	return nil
}

// Subject is the SNS subject of an event: ASCII, one line, at most 100 characters (SNS's
// rules), e.g. "SmartScale demo: scale_up".
func Subject(cluster string, ev engine.Event) string {
	s := "SmartScale " + cluster + ": " + string(ev.Kind)
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}

// Decode reads a published message. A bare engine.Event (no envelope) is accepted too.
func Decode(body string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return m, fmt.Errorf("decoding SNS message: %w", err)
	}
	if m.Event.Kind == "" {
		var ev engine.Event
		if err := json.Unmarshal([]byte(body), &ev); err == nil && ev.Kind != "" {
			m.Event = ev
		}
	}
	if m.Event.Kind == "" {
		return m, fmt.Errorf("decoding SNS message: no event kind in %.200q", body)
	}
	return m, nil
}
