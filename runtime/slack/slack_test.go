package slack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
)

func TestRender(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		kind  engine.EventKind
		msg   string
		emoji string
	}{
		{engine.EventScaleUp, "Added 2 nodes (CPU: 78%) → Total: 5 nodes", "🟢"},
		{engine.EventScaleDown, "Removed 1 node (CPU: 22%) → Total: 4 nodes", "🔵"},
		{engine.EventFailure, "Scale-up failed: EC2 quota exceeded", "🔴"},
		{engine.EventWarning, "At max capacity (10 nodes), cannot scale further", "⚠️"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			p := Render("demo", engine.Event{Kind: tt.kind, Time: at, Message: tt.msg, Decision: engine.Decision{Reason: "cpu 78.0% > 70% <for> 3m"}})
			if !strings.HasPrefix(p.Text, tt.emoji) || !strings.Contains(p.Text, tt.msg) {
				t.Errorf("text %q", p.Text)
			}
			if len(p.Blocks) != 2 || p.Blocks[0].Type != "section" || p.Blocks[0].Text.Type != "mrkdwn" || p.Blocks[1].Type != "context" {
				t.Fatalf("blocks %+v", p.Blocks)
			}
			if !strings.HasPrefix(p.Blocks[0].Text.Text, tt.emoji) || !strings.Contains(p.Blocks[0].Text.Text, tt.msg) {
				t.Errorf("section %q", p.Blocks[0].Text.Text)
			}
			if ctx := p.Blocks[1].Elements[0].Text; !strings.Contains(ctx, "&lt;for&gt;") {
				t.Errorf("reason not escaped in %q", ctx)
			}
		})
	}
}

func TestPost(t *testing.T) {
	var got Payload
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("content type %q", r.Header.Get("Content-Type"))
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(status)
		_, _ = w.Write([]byte("invalid_payload"))
	}))
	defer srv.Close()
	p := Render("demo", engine.Event{Kind: engine.EventScaleUp, Message: "Added 1 node (CPU: 75%) → Total: 3 nodes"})
	if err := Post(context.Background(), nil, srv.URL, p); err != nil {
		t.Fatal(err)
	}
	if got.Text != p.Text {
		t.Errorf("posted %+v", got)
	}
	status = http.StatusBadRequest
	if err := Post(context.Background(), nil, srv.URL, p); err == nil || !strings.Contains(err.Error(), "invalid_payload") {
		t.Errorf("400: %v", err)
	}
}
