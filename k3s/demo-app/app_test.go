package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// fakeBurn records the requested burn instead of spinning.
func fakeApp(t *testing.T) (*app, *[]time.Duration) {
	t.Helper()
	a := newApp(2 * time.Second)
	var asked []time.Duration
	a.burn = func(d time.Duration, _ <-chan struct{}) time.Duration {
		asked = append(asked, d)
		return d
	}
	return a, &asked
}

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func TestWork(t *testing.T) {
	tests := []struct {
		target string
		code   int
		burn   time.Duration // -1: no burn expected
	}{
		{"/work", 200, defaultCPU},
		{"/work?cpu_ms=25", 200, 25 * time.Millisecond},
		{"/work?cpu_ms=0.5", 200, 500 * time.Microsecond},
		{"/work?cpu_ms=0", 200, 0},
		{"/work?cpu_ms=-1", 400, -1},
		{"/work?cpu_ms=abc", 400, -1},
		{"/work?cpu_ms=NaN", 400, -1},
		{"/work?cpu_ms=2001", 400, -1},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			a, asked := fakeApp(t)
			rec := get(t, a, tt.target)
			if rec.Code != tt.code {
				t.Fatalf("code %d, want %d (body %q)", rec.Code, tt.code, rec.Body.String())
			}
			if tt.burn < 0 {
				if len(*asked) != 0 {
					t.Fatalf("burned %v on a bad request", *asked)
				}
				return
			}
			if len(*asked) != 1 || (*asked)[0] != tt.burn {
				t.Fatalf("burn %v, want [%v]", *asked, tt.burn)
			}
		})
	}
}

func TestWorkRejectsOtherMethods(t *testing.T) {
	a, _ := fakeApp(t)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/work", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /work: code %d, want 405", rec.Code)
	}
}

func TestBurnCPUUsesAboutTheAskedCPU(t *testing.T) {
	start := time.Now()
	used := burnCPU(30*time.Millisecond, nil)
	if used < 30*time.Millisecond || used > 200*time.Millisecond {
		t.Fatalf("burnCPU(30ms) used %v", used)
	}
	if el := time.Since(start); el < 25*time.Millisecond {
		t.Fatalf("burnCPU(30ms) returned after %v of wall time", el)
	}
	if got := burnCPU(0, nil); got != 0 {
		t.Fatalf("burnCPU(0) = %v", got)
	}
}

func TestBurnCPUStopsWhenCancelled(t *testing.T) {
	done := make(chan struct{})
	close(done)
	start := time.Now()
	burnCPU(5*time.Second, done)
	if el := time.Since(start); el > time.Second {
		t.Fatalf("a cancelled burn ran %v", el)
	}
}

func TestHealthzTurnsUnavailableOnShutdown(t *testing.T) {
	a, _ := fakeApp(t)
	if rec := get(t, a, "/healthz"); rec.Code != 200 {
		t.Fatalf("healthz %d, want 200", rec.Code)
	}
	a.shuttingDown.Store(true)
	if rec := get(t, a, "/healthz"); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz during shutdown %d, want 503", rec.Code)
	}
}
