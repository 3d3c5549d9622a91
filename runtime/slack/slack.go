// Package slack renders engine events as Slack Block Kit messages and posts them to an
// incoming webhook: 🟢 scale-up, 🔵 scale-down, 🔴 failure, ⚠️ warning, with the event's
// message in the brief's wording (e.g. "Added 2 nodes (CPU: 78%) → Total: 5 nodes").
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/smartscale/smartscale/engine"
)

// Emoji returns the emoji of an event kind.
func Emoji(k engine.EventKind) string {
	switch k {
	case engine.EventScaleUp:
		return "🟢"
	case engine.EventScaleDown:
		return "🔵"
	case engine.EventFailure:
		return "🔴"
	case engine.EventWarning:
		return "⚠️"
	}
	return "ℹ️"
}

func title(k engine.EventKind) string {
	switch k {
	case engine.EventScaleUp:
		return "Scale up"
	case engine.EventScaleDown:
		return "Scale down"
	case engine.EventFailure:
		return "Scaling failure"
	case engine.EventWarning:
		return "Warning"
	}
	return string(k)
}

// Payload is a Slack incoming-webhook message.
type Payload struct {
	Text   string  `json:"text"` // fallback for notifications
	Blocks []Block `json:"blocks"`
}

// Block is one Block Kit block (the subset used here).
type Block struct {
	Type     string `json:"type"`
	Text     *Text  `json:"text,omitempty"`
	Elements []Text `json:"elements,omitempty"`
}

// Text is a Block Kit text object.
type Text struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Render builds the Block Kit message of one event.
func Render(cluster string, ev engine.Event) Payload {
	emoji := Emoji(ev.Kind)
	msg := ev.Message
	if msg == "" {
		msg = ev.Decision.Reason
	}
	head := fmt.Sprintf("%s *%s* · `%s`\n%s", emoji, title(ev.Kind), escape(cluster), escape(msg))
	var ctx []string
	if r := ev.Decision.Reason; r != "" && r != msg {
		ctx = append(ctx, "Reason: "+escape(r))
	}
	if ev.Error != "" && ev.Error != msg {
		ctx = append(ctx, "Error: "+escape(ev.Error))
	}
	if !ev.Time.IsZero() {
		ctx = append(ctx, fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", ev.Time.Unix(), ev.Time.UTC().Format(time.RFC3339)))
	}
	p := Payload{
		Text:   fmt.Sprintf("%s %s: %s", emoji, cluster, msg),
		Blocks: []Block{{Type: "section", Text: &Text{Type: "mrkdwn", Text: head}}},
	}
	if len(ctx) > 0 {
		b := Block{Type: "context"}
		for _, c := range ctx {
			b.Elements = append(b.Elements, Text{Type: "mrkdwn", Text: c})
		}
		p.Blocks = append(p.Blocks, b)
	}
	return p
}

// escape escapes Slack's control characters in mrkdwn text.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Post sends a payload to an incoming webhook. A non-2xx answer is an error with the body.
func Post(ctx context.Context, client *http.Client, webhook string, p Payload) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("slack webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to slack: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting to slack: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
