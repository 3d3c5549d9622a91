package replay

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// WriteJSON writes the recording as one Prometheus query_range response, one series per
// line so that errors and diffs point at a series:
//
//	{"status":"success","data":{"resultType":"matrix","result":[
//	{"metric":{"__name__":"kube_node_info",...},"values":[[1767571200,"1"],...]},
//	...
//	]}}
//
// Timestamps are seconds with up to 3 decimals, values strings, as Prometheus writes them.
// The output is deterministic: series sorted by labels.
func (r *Recording) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"status":"success","data":{"resultType":"matrix","result":[` + "\n")
	for i, s := range r.Series {
		m := map[string]string{}
		s.Labels.Range(func(l labels.Label) { m[l.Name] = l.Value })
		mb, err := json.Marshal(m) // keys sorted
		if err != nil {
			return err
		}
		bw.WriteString(`{"metric":`)
		bw.Write(mb)
		bw.WriteString(`,"values":[`)
		for j, smp := range s.Samples {
			if j > 0 {
				bw.WriteByte(',')
			}
			bw.WriteByte('[')
			bw.WriteString(formatSeconds(smp.T))
			bw.WriteString(`,"`)
			bw.WriteString(formatValue(smp.V))
			bw.WriteString(`"]`)
		}
		bw.WriteString("]}")
		if i < len(r.Series)-1 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	bw.WriteString("]}}\n")
	return bw.Flush()
}

// WriteOpenMetrics writes the recording as OpenMetrics text, the way `promtool tsdb
// dump-openmetrics` does (series by series, timestamps in seconds) with a # TYPE line per
// metric family, ending with "# EOF". `promtool tsdb create-blocks-from openmetrics` backfills
// it into a Prometheus.
func (r *Recording) WriteOpenMetrics(w io.Writer) error {
	bw := bufio.NewWriter(w)
	lastName := ""
	for _, s := range r.Series {
		name := s.Labels.Get(labels.MetricName)
		if name != lastName {
			family, typ := name, "gauge"
			if strings.HasSuffix(name, "_total") {
				family, typ = strings.TrimSuffix(name, "_total"), "counter"
			}
			fmt.Fprintf(bw, "# TYPE %s %s\n", family, typ)
			lastName = name
		}
		var lb strings.Builder
		lb.WriteString(name)
		lb.WriteByte('{')
		i := 0
		s.Labels.Range(func(l labels.Label) {
			if l.Name == labels.MetricName {
				return
			}
			if i > 0 {
				lb.WriteByte(',')
			}
			lb.WriteString(l.Name)
			lb.WriteByte('=')
			lb.WriteString(quoteOM(l.Value))
			i++
		})
		lb.WriteString("} ")
		prefix := lb.String()
		for _, smp := range s.Samples {
			bw.WriteString(prefix)
			bw.WriteString(formatValue(smp.V))
			bw.WriteByte(' ')
			bw.WriteString(formatSeconds(smp.T))
			bw.WriteByte('\n')
		}
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}

// quoteOM quotes a label value with OpenMetrics escapes (\\, \", \n).
func quoteOM(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v) + `"`
}

// formatSeconds writes milliseconds as seconds: "1767571200", "1767571200.5", "1767571200.005".
func formatSeconds(ms int64) string {
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	s := strconv.FormatInt(sec, 10)
	if frac == 0 {
		return s
	}
	return s + "." + strings.TrimRight(fmt.Sprintf("%03d", frac), "0")
}

// formatValue writes a value the way Prometheus does: shortest exact decimal, NaN, +Inf, -Inf.
func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
