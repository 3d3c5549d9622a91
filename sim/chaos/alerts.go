package chaos

import (
	"time"

	"github.com/smartscale/smartscale/engine"
	"github.com/smartscale/smartscale/sim/world"
)

// The alert faults: they act on the alert path only, so they inject nothing into a run whose
// policy takes no alert ticks.

// AlertStorm is the alert fault kind's name.
const AlertStorm = "alert-storm"

var alertCatalogue = []Kind{
	{AlertStorm, "alerts", "Alertmanager and SNS flood the Lambda: a notification every 1-5 s, a third of them delivered twice, beside the ones the rules send",
		"every alert tick is an ordinary tick under the lease: no two scale actions at one instant; cooldowns and bounds hold"},
}

// stormAlerts are the alerts a storm's notifications name, in turn.
var stormAlerts = [][]string{
	{engine.AlertHPAUnmet},
	{engine.AlertPodsUnschedulable, engine.AlertHPAUnmet},
	{engine.AlertCPUHigh},
}

// installAlertWindow schedules the alert faults of one schedule entry.
func (h *Harness) installAlertWindow(f Fault) {
	if f.Kind != AlertStorm {
		return
	}
	w := h.w
	start, end := world.Epoch.Add(f.At), world.Epoch.Add(f.End())
	every := time.Duration(1+f.Param%5) * time.Second
	n := 0
	var beat func()
	beat = func() {
		if !w.Loop.Now().Before(end) {
			return
		}
		alerts := stormAlerts[n%len(stormAlerts)]
		n++
		if w.DeliverAlert(alerts) {
			h.inject(AlertStorm)
			if h.chance(3) {
				w.DeliverAlert(alerts) // SNS delivers at least once
			}
		}
		w.Loop.After(every, beat)
	}
	w.Loop.At(start, beat)
}
