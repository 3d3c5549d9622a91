package engine

import "fmt"

// The scale-up triggers of the brief: CPU above its threshold for the up window, pods
// pending throughout it, memory above its threshold. The pod rules' triggers (unschedulable
// pods, the demand, its prediction) are in demand.go.

// upTriggers returns the scale-up rules that fire on usable readings, with their reasons.
func upTriggers(p Policy, r Readings) (triggers, why []string) {
	usage := p.ScaleUpOnUsage
	if usage && r.CPUHighMin.OK() && r.CPUHighMin.Value > p.ScaleUpCPUPercent {
		triggers = append(triggers, TriggerCPUHigh)
		why = append(why, fmt.Sprintf("cpu %.1f%% > %g%% for %v", r.CPUHighMin.Value, p.ScaleUpCPUPercent, p.ScaleUpSustain))
	}
	if r.PendingMin.OK() && r.PendingMin.Value >= 1 {
		triggers = append(triggers, TriggerPending)
		why = append(why, fmt.Sprintf("%.0f+ pods pending for %v", r.PendingMin.Value, p.ScaleUpSustain))
	}
	if usage && r.Memory.OK() && r.Memory.Value > p.ScaleUpMemoryPercent {
		triggers = append(triggers, TriggerMemHigh)
		why = append(why, fmt.Sprintf("memory %.1f%% > %g%%", r.Memory.Value, p.ScaleUpMemoryPercent))
	}
	return triggers, why
}
