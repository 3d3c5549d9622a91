package replay

import (
	"bytes"
	"fmt"
	"os"
)

// Format is a recording's file format.
type Format string

const (
	FormatJSON        Format = "json"        // Prometheus query_range response(s)
	FormatOpenMetrics Format = "openmetrics" // promtool tsdb dump-openmetrics
)

// ParseError is a malformed recording: where (line) and what.
type ParseError struct {
	Line int // 1-based; 0 when the problem is not tied to one line
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	}
	return e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// ReadFile parses the recording at path, detecting its format.
func ReadFile(path string) (*Recording, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading recording: %w", err)
	}
	r, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Detect returns the format of a recording: JSON when its first non-blank byte is '{',
// else OpenMetrics.
func Detect(data []byte) Format {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return FormatJSON
	}
	return FormatOpenMetrics
}

// Parse parses a recording in either format.
func Parse(data []byte) (*Recording, error) {
	if Detect(data) == FormatJSON {
		return ParseJSON(data)
	}
	return ParseOpenMetrics(data)
}

// maxMillis rejects timestamps in milliseconds passed as seconds (year 5138 onwards).
const maxMillis = 1e14

// checkTime returns an error for a timestamp (in milliseconds, read as seconds) that cannot be
// a recorded sample's.
func checkTime(ms int64) error {
	switch {
	case ms > maxMillis:
		return fmt.Errorf("timestamp %s s is not in seconds (milliseconds? OpenMetrics and the HTTP API use seconds)", formatSeconds(ms))
	case ms < 0:
		return fmt.Errorf("timestamp %s s is before 1970", formatSeconds(ms))
	}
	return nil
}
