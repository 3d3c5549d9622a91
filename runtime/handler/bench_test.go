package handler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/runtime/config"
	"github.com/smartscale/smartscale/runtime/emf"
	"github.com/smartscale/smartscale/runtime/internal/fakes"
)

// benchHandler is a handler over in-memory ports: the compute of a tick (engine step,
// flight-record JSON, EMF lines) without any network.
func benchHandler(values map[string]float64, workers int) (*Handler, *fakes.Store, *fakes.Cloud) {
	p := engine.DefaultPolicy()
	at := start.Add(-24 * time.Hour)
	cloud := &fakes.Cloud{Now: func() time.Time { return start }}
	var ids []string
	for i := range workers {
		id := fmt.Sprintf("i-%017x", 0xb000+i)
		ids = append(ids, id)
		cloud.Insts = append(cloud.Insts, engine.Instance{ID: id, State: engine.InstanceRunning, LaunchedAt: at})
	}
	store := &fakes.Store{}
	cfg := config.Config{ClusterID: "demo", Policy: p, Roles: []config.Role{config.RoleTick},
		Offerings: []engine.Offering{{InstanceType: "t3.medium", Zone: "us-east-1a", Subnet: "subnet-a"}}}
	a := Adapters{Metrics: fakes.NewMetrics(p, values), Cloud: cloud, Cluster: &fakes.Cluster{List: fakes.Workers(at, ids...)}, Store: store}
	h := &Handler{Cfg: cfg, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)), EMF: emf.New(io.Discard),
		BuildStep: func(context.Context) (*engine.Step, error) { return NewStep(cfg, a), nil },
		Now:       func() time.Time { return start }}
	return h, store, cloud
}

func readings(cpu, mem, pending, nodes float64) map[string]float64 {
	return map[string]float64{
		engine.ReadingCPU: cpu, engine.ReadingCPUHighMin: cpu - 2, engine.ReadingCPULowMax: cpu + 2, engine.ReadingMemory: mem,
		engine.ReadingPending: pending, engine.ReadingPendingMin: pending, engine.ReadingNodes: nodes, engine.ReadingMetricAge: 12,
	}
}

// BenchmarkTick is the compute per tick, excluding network: go test -bench Tick ./runtime/handler
func BenchmarkTick(b *testing.B) {
	b.Run("steady_5_workers", func(b *testing.B) {
		h, _, _ := benchHandler(readings(50, 60, 0, 6), 5)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if rec, err := h.Tick(ctx); err != nil || rec.Decision.Action != engine.ActionNone {
				b.Fatalf("%v %+v", err, rec.Decision)
			}
		}
	})
	b.Run("scale_up_10_workers_max", func(b *testing.B) {
		h, _, _ := benchHandler(readings(85, 60, 3, 11), 10)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if rec, err := h.Tick(ctx); err != nil || rec.Decision.Action != engine.ActionAtMax {
				b.Fatalf("%v %+v", err, rec.Decision)
			}
		}
	})
	b.Run("scale_up_launch", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			h, _, _ := benchHandler(readings(85, 60, 3, 4), 3)
			b.StartTimer()
			if rec, err := h.Tick(ctx); err != nil || rec.Decision.Action != engine.ActionScaleUp {
				b.Fatalf("%v %+v", err, rec.Decision)
			}
		}
	})
}
