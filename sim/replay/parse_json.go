package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// response is a Prometheus HTTP API response; its result is decoded series by series (into
// client_golang's model.SampleStream) so an error can name the line of its series.
type response struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      *struct {
		ResultType model.ValueType `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// ParseJSON parses one or more Prometheus query_range (or range-vector query) responses,
// one after the other: {"status":"success","data":{"resultType":"matrix","result":[...]}}.
// A series split over several responses (chunks) is joined.
func ParseJSON(data []byte) (*Recording, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	b := newBuilder()
	fail := func(off int64, err error) error { return &ParseError{Line: lineAt(data, off), Err: err} }
	docs := 0
	for {
		start := skipSpace(data, dec.InputOffset())
		var resp response
		err := dec.Decode(&resp)
		if err == io.EOF {
			break
		}
		docs++
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return nil, fail(start, fmt.Errorf("want a JSON object (a query_range response), got a JSON %s", te.Value))
		case err != nil:
			return nil, jsonFail(data, dec, err)
		case resp.Status != "success":
			return nil, fail(start, fmt.Errorf("response %d: status is %q, not \"success\" %s", docs, resp.Status,
				strings.TrimSpace(resp.ErrorType+" "+resp.Error)))
		case resp.Data == nil:
			return nil, fail(start, fmt.Errorf("response %d has no \"data\"", docs))
		case resp.Data.ResultType != model.ValMatrix:
			return nil, fail(start, fmt.Errorf("resultType is %q: a recording needs a \"matrix\" (query_range of a selector)", resp.Data.ResultType))
		}
		// The result is a verbatim part of the document: find it, then read its series.
		base := start + int64(bytes.Index(data[start:dec.InputOffset()], resp.Data.Result))
		rd := json.NewDecoder(bytes.NewReader(resp.Data.Result))
		if tok, err := rd.Token(); err != nil || tok != json.Delim('[') {
			return nil, fail(base, errors.New(`"result" must be a list of series`))
		}
		for i := 1; rd.More(); i++ {
			off := base + skipSpace(resp.Data.Result, rd.InputOffset())
			var ss model.SampleStream
			if err := rd.Decode(&ss); err != nil {
				return nil, fail(off, fmt.Errorf("response %d, series %d: %w", docs, i, err))
			}
			if err := addStream(b, docs, &ss); err != nil {
				return nil, fail(off, err)
			}
		}
	}
	if docs == 0 {
		return nil, &ParseError{Err: errors.New("empty file: no query_range response")}
	}
	return b.recording(), nil
}

func addStream(b *builder, doc int, ss *model.SampleStream) error {
	lb := labels.NewScratchBuilder(len(ss.Metric))
	for k, v := range ss.Metric {
		if v != "" { // an empty value is an absent label
			lb.Add(string(k), string(v))
		}
	}
	lb.Sort()
	lset := lb.Labels()
	if len(ss.Histograms) > 0 {
		return fmt.Errorf("series %s: native histograms are not supported", SeriesName(lset))
	}
	if err := checkLabels(lset); err != nil {
		return err
	}
	for i, sp := range ss.Values {
		if err := checkTime(int64(sp.Timestamp)); err != nil {
			return fmt.Errorf("series %s: value %d: %w", SeriesName(lset), i, err)
		}
		if err := b.add(lset, doc, int64(sp.Timestamp), float64(sp.Value)); err != nil {
			return err
		}
	}
	return nil
}

// skipSpace moves off past the separators (a comma, white space) before the next JSON value.
func skipSpace(data []byte, off int64) int64 {
	for off < int64(len(data)) && strings.IndexByte(", \t\r\n", data[off]) >= 0 {
		off++
	}
	return off
}

func lineAt(data []byte, off int64) int {
	return 1 + bytes.Count(data[:min(int(off), len(data))], []byte("\n"))
}

func jsonFail(data []byte, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &ParseError{Line: lineAt(data, off), Err: errors.New("unexpected end of file: the JSON is truncated")}
	case errors.As(err, &se):
		return &ParseError{Line: lineAt(data, se.Offset), Err: fmt.Errorf("malformed JSON: %v", err)}
	}
	return &ParseError{Line: lineAt(data, off), Err: err}
}
