package replay

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// benchRecording is the shipped 24 h recording in both formats.
func benchRecording(b *testing.B) (jsonData, omData []byte, samples int) {
	b.Helper()
	data, err := os.ReadFile(filepath.Join(recordingsDir, "diurnal-day.json"))
	if err != nil {
		b.Fatal(err)
	}
	rec, err := ParseJSON(data)
	if err != nil {
		b.Fatal(err)
	}
	var om bytes.Buffer
	if err := rec.WriteOpenMetrics(&om); err != nil {
		b.Fatal(err)
	}
	return data, om.Bytes(), rec.NumSamples()
}

// BenchmarkParseJSON parses the 24 h recording from query_range JSON.
func BenchmarkParseJSON(b *testing.B) {
	data, _, n := benchRecording(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkParseOpenMetrics parses the same 24 h recording from OpenMetrics text.
func BenchmarkParseOpenMetrics(b *testing.B) {
	_, data, n := benchRecording(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseOpenMetrics(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
