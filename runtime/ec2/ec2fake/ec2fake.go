// Package ec2fake is an httptest server speaking the EC2 Query API (XML) for the calls the
// ec2 adapter makes: RunInstances, DescribeInstances, TerminateInstances and
// DescribeSpotPriceHistory. It keeps instances in memory, honours ClientToken, can hide new
// instances from DescribeInstances for a number of calls (EC2's eventual consistency), can
// answer with EC2's error codes, and launches spot instances with their one-time spot
// requests (spot.go).
package ec2fake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tag is an EC2 tag.
type Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// Instance is one fake instance.
type Instance struct {
	ID          string
	Type        string
	Subnet      string
	Zone        string
	State       string // pending, running, shutting-down, terminated, ...
	LaunchTime  time.Time
	Tags        []Tag
	Token       string
	Template    string
	Lifecycle   string // "spot" for a spot instance, "" on-demand
	SpotRequest string // its spot request (sir-...)
	hiddenCalls int    // DescribeInstances calls that still do not show it
}

// Server is the fake EC2 endpoint.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	insts    []*Instance
	tokens   map[string][]string
	seq      int
	errs     map[string][]string // action -> queued error codes
	requests []url.Values
	// Lag is how many DescribeInstances calls a new instance stays invisible to.
	Lag int
	// Now stamps launch times; default time.Now.
	Now func() time.Time
	// SubnetZones maps subnets to zones; unknown subnets are in us-east-1a.
	SubnetZones map[string]string
	// SpotPrices maps "type/zone" to the current spot price (DescribeSpotPriceHistory).
	SpotPrices map[string]float64
	spotReqs   []*SpotRequest
}

// New starts a fake EC2 on 127.0.0.1. It is closed by the caller (or t.Cleanup).
func New() *Server {
	s := &Server{tokens: map[string][]string{}, errs: map[string][]string{}, Now: time.Now}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// FailNext makes the next call of action answer with the EC2 error code.
func (s *Server) FailNext(action, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[action] = append(s.errs[action], code)
}

// Add puts an instance in the fake (e.g. an unmanaged one, or a worker launched earlier).
func (s *Server) Add(in Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := in
	s.insts = append(s.insts, &cp)
}

// SetState sets an instance's state (a spot instance set to shutting-down or terminated
// was reclaimed: its spot request closes).
func (s *Server) SetState(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.insts {
		if in.ID == id {
			in.State = state
			if state == "shutting-down" || state == "terminated" {
				s.closeSpotRequest(id, "instance-terminated-by-service")
			}
		}
	}
}

// Instances returns a copy of every instance, terminated included.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, in := range s.insts {
		out = append(out, *in)
	}
	return out
}

// Requests returns the form values of every request so far.
func (s *Server) Requests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count returns the number of requests of one action.
func (s *Server) Count(action string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Get("Action") == action {
			n++
		}
	}
	return n
}

var errStatus = map[string]int{
	"RequestLimitExceeded": http.StatusServiceUnavailable,
	"Throttling":           http.StatusBadRequest,
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.fail(w, "MalformedQueryString", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.PostForm)
	action := r.PostForm.Get("Action")
	if q := s.errs[action]; len(q) > 0 {
		s.errs[action] = q[1:]
		s.fail(w, q[0], "injected "+q[0])
		return
	}
	switch action {
	case "RunInstances":
		s.run(w, r.PostForm)
	case "DescribeInstances":
		s.describe(w, r.PostForm)
	case "TerminateInstances":
		s.terminate(w, r.PostForm)
	case "DescribeSpotPriceHistory":
		s.spotPrices(w, r.PostForm)
	default:
		s.fail(w, "InvalidAction", "unsupported action "+action)
	}
}

func (s *Server) fail(w http.ResponseWriter, code, msg string) {
	status := http.StatusBadRequest
	if st, ok := errStatus[code]; ok {
		status = st
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-%d</RequestID></Response>`,
		code, xmlEscape(msg), len(s.requests))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// list reads the flattened list prefix.1, prefix.2, ...
func list(v url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		x, ok := v[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, x[0])
	}
}

func (s *Server) run(w http.ResponseWriter, v url.Values) {
	token := v.Get("ClientToken")
	if ids, ok := s.tokens[token]; ok && token != "" {
		s.writeRun(w, s.byIDs(ids))
		return
	}
	tmpl := v.Get("LaunchTemplate.LaunchTemplateId") + v.Get("LaunchTemplate.LaunchTemplateName")
	if tmpl == "" && v.Get("ImageId") == "" {
		s.fail(w, "MissingParameter", "The request must contain the parameter ImageId or LaunchTemplate")
		return
	}
	minC, _ := strconv.Atoi(v.Get("MinCount"))
	maxC, _ := strconv.Atoi(v.Get("MaxCount"))
	if minC < 1 || maxC < minC {
		s.fail(w, "InvalidParameterValue", "bad MinCount/MaxCount")
		return
	}
	var tags []Tag
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt, ok := v[p+".ResourceType"]
		if !ok {
			break
		}
		if rt[0] != "instance" {
			continue
		}
		for j := 1; ; j++ {
			k, ok := v[p+".Tag."+strconv.Itoa(j)+".Key"]
			if !ok {
				break
			}
			tags = append(tags, Tag{Key: k[0], Value: v.Get(p + ".Tag." + strconv.Itoa(j) + ".Value")})
		}
	}
	typ := v.Get("InstanceType")
	if typ == "" {
		typ = "t3.medium"
	}
	subnet := v.Get("SubnetId")
	zone := "us-east-1a"
	if z, ok := s.SubnetZones[subnet]; ok {
		zone = z
	}
	spot, err := spotMarket(v)
	if err != "" {
		s.fail(w, "InvalidParameterValue", err)
		return
	}
	var ids []string
	for range maxC {
		s.seq++
		in := &Instance{ID: fmt.Sprintf("i-%017x", 0xa000+s.seq), Type: typ, Subnet: subnet, Zone: zone, State: "pending",
			LaunchTime: s.Now().UTC().Truncate(time.Second), Tags: tags, Token: token, Template: tmpl, hiddenCalls: s.Lag}
		if spot {
			s.openSpotRequest(in, v)
		}
		s.insts = append(s.insts, in)
		ids = append(ids, in.ID)
	}
	if token != "" {
		s.tokens[token] = ids
	}
	s.writeRun(w, s.byIDs(ids))
}

func (s *Server) byIDs(ids []string) []*Instance {
	var out []*Instance
	for _, in := range s.insts {
		if slices.Contains(ids, in.ID) {
			out = append(out, in)
		}
	}
	return out
}

func (s *Server) describe(w http.ResponseWriter, v url.Values) {
	ids := list(v, "InstanceId")
	filters := map[string][]string{}
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		n, ok := v[p+".Name"]
		if !ok {
			break
		}
		filters[n[0]] = list(v, p+".Value")
	}
	var out []*Instance
	if len(ids) > 0 {
		var missing []string
		for _, id := range ids {
			i := slices.IndexFunc(s.insts, func(in *Instance) bool { return in.ID == id })
			if i < 0 || s.insts[i].hiddenCalls > 0 {
				missing = append(missing, id)
				continue
			}
			out = append(out, s.insts[i])
		}
		if len(missing) > 0 {
			s.fail(w, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", ")))
			return
		}
	} else {
		for _, in := range s.insts {
			if in.hiddenCalls > 0 {
				in.hiddenCalls--
				continue
			}
			if matches(in, filters) {
				out = append(out, in)
			}
		}
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet>`)
	for _, in := range out {
		fmt.Fprintf(&b, `<item><reservationId>r-%s</reservationId><ownerId>123456789012</ownerId><instancesSet>%s</instancesSet></item>`, in.ID[2:], instanceXML(in))
	}
	b.WriteString(`</reservationSet></DescribeInstancesResponse>`)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}

func matches(in *Instance, filters map[string][]string) bool {
	for name, vals := range filters {
		var got string
		switch {
		case name == "instance-state-name":
			got = in.State
		case strings.HasPrefix(name, "tag:"):
			key := strings.TrimPrefix(name, "tag:")
			i := slices.IndexFunc(in.Tags, func(t Tag) bool { return t.Key == key })
			if i < 0 {
				return false
			}
			got = in.Tags[i].Value
		default:
			continue
		}
		if !slices.Contains(vals, got) {
			return false
		}
	}
	return true
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func instanceXML(in *Instance) string {
	var tags strings.Builder
	for _, t := range in.Tags {
		fmt.Fprintf(&tags, `<item><key>%s</key><value>%s</value></item>`, xmlEscape(t.Key), xmlEscape(t.Value))
	}
	var spot string
	if in.Lifecycle != "" {
		spot = fmt.Sprintf(`<instanceLifecycle>%s</instanceLifecycle><spotInstanceRequestId>%s</spotInstanceRequestId>`, in.Lifecycle, in.SpotRequest)
	}
	return fmt.Sprintf(`<item><instanceId>%s</instanceId><imageId>ami-12345678</imageId><instanceState><code>%d</code><name>%s</name></instanceState><instanceType>%s</instanceType><launchTime>%s</launchTime><placement><availabilityZone>%s</availabilityZone></placement><subnetId>%s</subnetId>%s<tagSet>%s</tagSet></item>`,
		in.ID, stateCodes[in.State], in.State, in.Type, in.LaunchTime.Format("2006-01-02T15:04:05.000Z"), in.Zone, in.Subnet, spot, tags.String())
}

func (s *Server) writeRun(w http.ResponseWriter, insts []*Instance) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet>`)
	for _, in := range insts {
		b.WriteString(instanceXML(in))
	}
	b.WriteString(`</instancesSet></RunInstancesResponse>`)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) terminate(w http.ResponseWriter, v url.Values) {
	ids := list(v, "InstanceId")
	var missing []string
	for _, id := range ids {
		if !slices.ContainsFunc(s.insts, func(in *Instance) bool { return in.ID == id }) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		s.fail(w, "InvalidInstanceID.NotFound", fmt.Sprintf("The instance IDs '%s' do not exist", strings.Join(missing, ", ")))
		return
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<TerminateInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><instancesSet>`)
	for _, in := range s.byIDs(ids) {
		prev := in.State
		if in.State != "terminated" {
			in.State = "shutting-down"
		}
		s.closeSpotRequest(in.ID, "instance-terminated-by-user")
		fmt.Fprintf(&b, `<item><instanceId>%s</instanceId><currentState><code>%d</code><name>%s</name></currentState><previousState><code>%d</code><name>%s</name></previousState></item>`,
			in.ID, stateCodes[in.State], in.State, stateCodes[prev], prev)
	}
	b.WriteString(`</instancesSet></TerminateInstancesResponse>`)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(b.String()))
}
