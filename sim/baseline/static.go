package baseline

import (
	"context"
	"fmt"
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// Static is the factory of a fixed fleet: the world starts with the fleet (Config.
// InitialWorkers) and the autoscaler never acts.
func Static(w *world.World) (world.Autoscaler, error) { return &static{w: w}, nil }

type static struct{ w *world.World }

func (s *static) Tick(_ context.Context, now time.Time) (engine.Record, error) {
	f := look(s.w)
	rec := record(now, f)
	rec.Decision.Reason = fmt.Sprintf("static fleet of %d workers", f.active)
	return rec, nil
}
