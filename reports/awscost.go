package reports

import "time"

// Unit prices of the services the production autoscaler uses, us-east-1, in USD. Sources and
// the date they were taken are in docs/costs.md; change both together.
const (
	LambdaPerRequestUSD       = 0.20 / 1e6   // per invocation
	LambdaPerGBSecondArm64USD = 0.0000133334 // per GB-second, arm64, first pricing tier
	DynamoPerWriteUnitUSD     = 0.625 / 1e6  // per on-demand write request unit
	DynamoPerReadUnitUSD      = 0.125 / 1e6  // per on-demand read request unit
	LogsPerGBIngestedUSD      = 0.50         // CloudWatch Logs standard ingestion
	LogsPerGBMonthStoredUSD   = 0.03         // CloudWatch Logs storage
	MetricPerMonthUSD         = 0.30         // custom metric (EMF creates them), first 10,000
	SecretPerMonthUSD         = 0.40         // Secrets Manager secret
	SecretPer10kCallsUSD      = 0.05         // Secrets Manager API calls
	SNSPerMillionPublishesUSD = 0.50         // SNS publishes (first million free; ignored)
	monthSeconds              = 30 * 24 * 3600
	bytesPerGB                = 1 << 30
)

// SelfUsage is what one autoscaler invocation uses. The defaults are estimates written in
// docs/costs.md, not measurements.
type SelfUsage struct {
	Every           time.Duration // EventBridge schedule
	MemoryMB        float64       // Lambda memory
	BilledSeconds   float64       // mean billed duration per invocation
	WriteUnits      float64       // DynamoDB write request units per invocation
	ReadUnits       float64       // DynamoDB read request units per invocation
	LogBytes        float64       // CloudWatch Logs bytes per invocation (flight record + EMF)
	RetentionMonths float64       // log retention
	Metrics         int           // custom metric-months published with EMF (metrics are billed by the hour they are published)
	Secrets         int           // secrets read (Slack webhook)
	SecretCalls     float64       // GetSecretValue calls per invocation (cached per container)
}

// DefaultSelfUsage returns the estimates of docs/costs.md.
func DefaultSelfUsage() SelfUsage {
	return SelfUsage{Every: 2 * time.Minute, MemoryMB: 256, BilledSeconds: 1.5, WriteUnits: 4, ReadUnits: 1,
		LogBytes: 8 << 10, RetentionMonths: 1, Metrics: 6, Secrets: 1, SecretCalls: 0.1}
}

// SelfCostLine is one service's monthly cost.
type SelfCostLine struct {
	Service string  `json:"service"`
	Basis   string  `json:"basis"`
	USD     float64 `json:"usd_per_month"`
}

// SelfCost is the autoscaler's own monthly AWS cost (30 days), line by line.
func SelfCost(u SelfUsage) ([]SelfCostLine, float64) {
	inv := monthSeconds / u.Every.Seconds()
	gbs := inv * u.BilledSeconds * u.MemoryMB / 1024
	logGB := inv * u.LogBytes / bytesPerGB
	lines := []SelfCostLine{
		{"Lambda requests", fmtf("%.0f invocations", inv), inv * LambdaPerRequestUSD},
		{"Lambda compute (arm64)", fmtf("%.0f GB-s (%.0f MB x %.1f s)", gbs, u.MemoryMB, u.BilledSeconds), gbs * LambdaPerGBSecondArm64USD},
		{"DynamoDB writes (on-demand)", fmtf("%.0f WRU", inv*u.WriteUnits), inv * u.WriteUnits * DynamoPerWriteUnitUSD},
		{"DynamoDB reads (on-demand)", fmtf("%.0f RRU", inv*u.ReadUnits), inv * u.ReadUnits * DynamoPerReadUnitUSD},
		{"CloudWatch Logs ingestion", fmtf("%.3f GB", logGB), logGB * LogsPerGBIngestedUSD},
		{"CloudWatch Logs storage", fmtf("%.3f GB-month", logGB*u.RetentionMonths), logGB * u.RetentionMonths * LogsPerGBMonthStoredUSD},
		{"CloudWatch custom metrics (EMF)", fmtf("%d metric-months", u.Metrics), float64(u.Metrics) * MetricPerMonthUSD},
		{"Secrets Manager", fmtf("%d secret, %.0f calls", u.Secrets, inv*u.SecretCalls),
			float64(u.Secrets)*SecretPerMonthUSD + inv*u.SecretCalls/1e4*SecretPer10kCallsUSD},
	}
	total := 0.0
	for i := range lines {
		lines[i].USD = round(lines[i].USD, 4)
		total += lines[i].USD
	}
	return lines, round(total, 4)
}
