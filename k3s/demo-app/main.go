// Command demo-app is the load target of SmartScale's end-to-end tests: an HTTP service
// whose /work endpoint burns a requested amount of CPU, so that request rate turns into pod
// CPU the way the simulator models it (requests/s x CPU per request).
//
//	GET /work?cpu_ms=N  burn about N ms of CPU (default 10, at most -max-cpu-ms)
//	GET /healthz        200 while serving, 503 once shutdown has begun
//	GET /metrics        Prometheus metrics (client_golang): http_requests_total{code,method,route},
//	                    http_request_duration_seconds{method,route}, demo_cpu_seconds_total, go_*, process_*
//
// SIGTERM or SIGINT starts a graceful shutdown: /healthz turns 503 so the endpoint is taken
// out of the Service, in-flight requests finish, then the process exits.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", envOr("DEMO_ADDR", ":8080"), "listen address (env DEMO_ADDR)")
	maxCPU := flag.Duration("max-cpu", 2*time.Second, "largest CPU burn one request may ask for")
	drain := flag.Duration("drain", 5*time.Second, "after SIGTERM, keep serving (failing /healthz) this long before closing")
	grace := flag.Duration("grace", 20*time.Second, "time in-flight requests get to finish")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	app := newApp(*maxCPU)
	srv := &http.Server{Addr: *addr, Handler: app, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", *addr)

	select {
	case err := <-errc:
		log.Error("server failed", "err", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain", drain.String(), "grace", grace.String())
	app.shuttingDown.Store(true)
	time.Sleep(*drain)
	sctx, cancel := context.WithTimeout(context.Background(), *grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		os.Exit(1)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("server", "err", err)
		os.Exit(1)
	}
	log.Info("stopped")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
