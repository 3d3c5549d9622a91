package scenarios

// DefaultSim returns the simulator settings a scenario file may override: a t3.medium
// worker, a t3.medium K3s master, the demo app and its HPA, the SLO, and EC2 latencies.
//
// Sources of the defaults: t3.medium has 2 vCPU and 4 GiB (about 3.8 GiB visible to the
// OS); K3s reserves about 100m CPU and 500 MiB; EC2 reports "running" 15-40 s after
// RunInstances and a K3s agent joins 30-90 s after boot on a stock AMI, so a worker is Ready
// about 60-120 s after launch. The HPA values are Kubernetes' defaults (tolerance 0.1, 15 s
// sync, 5 min scale-down stabilization).
func DefaultSim() Sim {
	return Sim{
		Node: Node{
			InstanceType:      "t3.medium",
			CPUMillicores:     2000,
			MemoryMiB:         3912,
			AllocatableCPUm:   1900,
			AllocatableMemMiB: 3400,
			SystemCPUm:        150,
			SystemMemMiB:      200,
			SystemCPUUsePct:   4,
			SystemMemUseMiB:   700,
			CPUCores:          2,
		},
		ControlPlane: ControlPlane{
			InstanceType:  "t3.medium",
			CPUMillicores: 2000,
			MemoryMiB:     3912,
			CPUUsePct:     18,
			MemoryUseMiB:  2300,
		},
		InitialWorkers: 2,
		App: App{
			CPUMsPerRequest:   10,
			BaseLatencyMs:     8,
			CPURequestm:       250,
			CPULimitm:         1000,
			MemoryRequestMiB:  256,
			MemoryBaseMiB:     90,
			MemoryPerRPSMiB:   2,
			MinReplicas:       2,
			MaxReplicas:       80,
			StartSeconds:      12,
			TerminationGraceS: 30,
			PDBMaxUnavailable: 1,
		},
		HPA: HPA{
			TargetCPUPercent: 60,
			Tolerance:        0.1,
			SyncPeriodRaw:    "15s",
			StabilizationRaw: "5m",
		},
		SLO:           SLO{P95Ms: 500, MaxDropPercent: 1},
		Cloud:         Cloud{BootMedianS: 22, BootP90S: 35, JoinMedianS: 45, JoinP90S: 80, ReadyDelayS: 8, ShutdownS: 10, MaxInstances: 20},
		NoiseFraction: 0.05,
	}
}
