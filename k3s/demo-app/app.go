package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// defaultCPU is the burn of a /work request without cpu_ms (the k6 script's default too).
const defaultCPU = 10 * time.Millisecond

// app is the HTTP handler with its metrics.
type app struct {
	mux          *http.ServeMux
	instrumented http.Handler // mux, counted and timed
	metrics      *metrics
	maxCPU       time.Duration
	shuttingDown atomic.Bool
	burn         func(d time.Duration, done <-chan struct{}) time.Duration
}

func newApp(maxCPU time.Duration) *app {
	a := &app{mux: http.NewServeMux(), metrics: newMetrics(), maxCPU: maxCPU, burn: burnCPU}
	a.mux.HandleFunc("GET /work", a.work)
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.Handle("GET /metrics", a.metrics.handler())
	a.instrumented = a.metrics.instrument(a.mux)
	return a
}

// ServeHTTP records every request (except the metrics scrape itself, which promhttp counts
// apart) in the metrics, wrong methods and unknown paths included.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		a.mux.ServeHTTP(w, r)
		return
	}
	a.instrumented.ServeHTTP(w, r)
}

// routeOf bounds the path label to the known routes.
func routeOf(path string) string {
	switch path {
	case "/work", "/healthz":
		return path
	}
	return "other"
}

func (a *app) work(w http.ResponseWriter, r *http.Request) {
	d := defaultCPU
	if s := r.URL.Query().Get("cpu_ms"); s != "" {
		ms, err := strconv.ParseFloat(s, 64)
		if err != nil || ms < 0 || ms != ms {
			http.Error(w, "cpu_ms must be a non-negative number of milliseconds", http.StatusBadRequest)
			return
		}
		d = time.Duration(ms * float64(time.Millisecond))
	}
	if d > a.maxCPU {
		http.Error(w, fmt.Sprintf("cpu_ms above the limit of %d", a.maxCPU.Milliseconds()), http.StatusBadRequest)
		return
	}
	used := a.burn(d, r.Context().Done())
	a.metrics.cpu.Add(used.Seconds())
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"cpu_ms\":%.3f}\n", float64(used)/float64(time.Millisecond))
}

func (a *app) healthz(w http.ResponseWriter, _ *http.Request) {
	if a.shuttingDown.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// burnCPU spins until the calling thread has used d of CPU time (wall time where the
// platform cannot tell thread CPU time), or done is closed, and returns the CPU time used.
// A wall-clock cap of 20x d (at least 1 s) bounds it on an overloaded node.
func burnCPU(d time.Duration, done <-chan struct{}) time.Duration {
	if d <= 0 {
		return 0
	}
	stop := lockThreadClock()
	defer stop.release()
	start := stop.now()
	deadline := time.Now().Add(max(20*d, time.Second))
	var sum [32]byte
	for i := 0; ; i++ {
		for j := 0; j < 200; j++ {
			sum = sha256.Sum256(sum[:])
		}
		used := stop.now() - start
		if used >= d {
			return used
		}
		if i%16 == 0 {
			select {
			case <-done:
				return used
			default:
			}
			if time.Now().After(deadline) {
				return used
			}
		}
	}
}
