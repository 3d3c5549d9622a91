package ec2fake

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// SpotRequest is the one-time spot request behind a fake spot instance.
type SpotRequest struct {
	ID       string
	Instance string
	Type     string // one-time
	State    string // active while the instance lives, closed after
	Status   string // fulfilled, instance-terminated-by-user, instance-terminated-by-service
	Tags     []Tag
}

// SpotRequests returns a copy of every spot request.
func (s *Server) SpotRequests() []SpotRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SpotRequest, len(s.spotReqs))
	for i, r := range s.spotReqs {
		out[i] = *r
	}
	return out
}

// spotMarket reads RunInstances' InstanceMarketOptions: spot or not, or what is wrong. Only
// what the adapter must send is accepted: a one-time request terminated on interruption.
func spotMarket(v url.Values) (spot bool, problem string) {
	switch mt := v.Get("InstanceMarketOptions.MarketType"); mt {
	case "":
		return false, ""
	case "spot":
	default:
		return false, "unsupported MarketType " + mt
	}
	if t := v.Get("InstanceMarketOptions.SpotOptions.SpotInstanceType"); t != "one-time" {
		return false, fmt.Sprintf("ec2fake takes one-time spot requests only, got SpotInstanceType %q", t)
	}
	if b := v.Get("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"); b != "terminate" {
		return false, fmt.Sprintf("ec2fake takes InstanceInterruptionBehavior terminate only, got %q", b)
	}
	return true, ""
}

func (s *Server) openSpotRequest(in *Instance, v url.Values) {
	r := &SpotRequest{ID: fmt.Sprintf("sir-%08x", len(s.spotReqs)+1), Instance: in.ID, Type: "one-time", State: "active", Status: "fulfilled"}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt, ok := v[p+".ResourceType"]
		if !ok {
			break
		}
		if rt[0] != "spot-instances-request" {
			continue
		}
		for j := 1; ; j++ {
			k, ok := v[p+".Tag."+strconv.Itoa(j)+".Key"]
			if !ok {
				break
			}
			r.Tags = append(r.Tags, Tag{Key: k[0], Value: v.Get(p + ".Tag." + strconv.Itoa(j) + ".Value")})
		}
	}
	s.spotReqs = append(s.spotReqs, r)
	in.Lifecycle, in.SpotRequest = "spot", r.ID
}

func (s *Server) closeSpotRequest(instance, status string) {
	for _, r := range s.spotReqs {
		if r.Instance == instance && r.State == "active" {
			r.State, r.Status = "closed", status
		}
	}
}

// spotPrices answers DescribeSpotPriceHistory from SpotPrices: one entry per type and zone
// asked for (InstanceType.N, Filter availability-zone), newest first as EC2 lists them.
func (s *Server) spotPrices(w http.ResponseWriter, v url.Values) {
	types := list(v, "InstanceType")
	var zones []string
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		n, ok := v[p+".Name"]
		if !ok {
			break
		}
		if n[0] == "availability-zone" {
			zones = append(zones, list(v, p+".Value")...)
		}
	}
	if pd := list(v, "ProductDescription"); len(pd) > 0 && !slices.Contains(pd, "Linux/UNIX") {
		types = nil
	}
	var keys []string
	for k := range s.SpotPrices {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<DescribeSpotPriceHistoryResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><spotPriceHistorySet>`)
	ts := s.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	for _, k := range keys {
		typ, zone, _ := strings.Cut(k, "/")
		if (len(types) > 0 && !slices.Contains(types, typ)) || (len(zones) > 0 && !slices.Contains(zones, zone)) {
			continue
		}
		fmt.Fprintf(&b, `<item><instanceType>%s</instanceType><productDescription>Linux/UNIX</productDescription><spotPrice>%.6f</spotPrice><timestamp>%s</timestamp><availabilityZone>%s</availabilityZone></item>`,
			typ, s.SpotPrices[k], ts, zone)
	}
	b.WriteString(`</spotPriceHistorySet><nextToken></nextToken></DescribeSpotPriceHistoryResponse>`)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}
