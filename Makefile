# SmartScale. `make help` lists the targets.
SHELL := bash
GO ?= go
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(PATH)
SCENARIO ?= flash-sale
SEED ?= 1

.PHONY: help build test test-go test-deploy lint lint-scripts check-k3s sim report bench lambda chaos tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build and vet every package
	$(GO) build ./...
	$(GO) vet ./...

tools: ## install what the tests need: prometheus+promtool, shellcheck (Debian), dynalite (npm), Lambda RIE, kube-apiserver/controller-manager/scheduler, kine, kwok (Go; versions in scripts/tools.sh)
	@bash scripts/tools.sh

test: tools ## the whole test suite (installs its tools first): Go tests with real Prometheus, dynalite and Kubernetes control plane, deploy mocks, script and manifest checks
	$(MAKE) test-go test-deploy lint-scripts check-k3s

# CGO_ENABLED=0: the Lambda is built without cgo (the RIE test builds it), so the tests are
# too and every dependency is compiled once, not twice.
test-go:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 30m ./...

test-deploy:
	@if [ -f deploy/go.mod ]; then cd deploy && CGO_ENABLED=0 $(GO) test -count=1 -timeout 30m ./...; fi

lint-scripts: ## shellcheck every script
	@files=$$(git ls-files '*.sh' .ci/run); if [ -n "$$files" ]; then shellcheck -x $$files; fi

check-k3s: ## promtool checks of the Prometheus config and alert rules
	@if [ -f k3s/monitoring/prometheus-config.yml ]; then promtool check config --syntax-only k3s/monitoring/prometheus-config.yml; fi
	@for f in $$(git ls-files 'k3s/monitoring/*rules*.yml'); do promtool check rules $$f; done
	@tmp=$$(mktemp -d); sed -e "s#/etc/alertmanager/#$(CURDIR)/k3s/monitoring/#" -e 's#SMARTSCALE_ALERT_TOPIC_ARN#arn:aws:sns:us-east-1:123456789012:check#' -e 's#SMARTSCALE_REGION#us-east-1#' \
	  k3s/monitoring/alertmanager.yml >$$tmp/alertmanager.yml && amtool check-config $$tmp/alertmanager.yml >/dev/null && echo "alertmanager.yml: SUCCESS"; rc=$$?; rm -rf $$tmp; exit $$rc

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

sim: ## run the simulator: make sim SCENARIO=flash-sale SEED=1
	$(GO) run ./sim -scenario $(SCENARIO) -seed $(SEED)

report: ## every built-in scenario with every baseline -> out/report/index.html
	$(GO) run ./sim -report out/report

bench: ## benchmarks (simulated seconds per wall second, per-tick compute, ...)
	$(GO) test -run '^$$' -bench . -benchmem ./...

CHAOS_SEEDS ?= 1 2 3 4 5
chaos: ## long property-based chaos run: 5 gopter seeds x (20,000 cases + 4,000 under every fault), with the time
	@start=$$(date +%s); for s in $(CHAOS_SEEDS); do \
	  echo "chaos: gopter seed $$s"; \
	  CHAOS_SEED=$$s CHAOS_CASES=20000 $(GO) test -count=1 -run 'Property|Chaos' -timeout 120m ./sim/chaos || exit 1; \
	done; echo "chaos: $(words $(CHAOS_SEEDS)) seeds, $$(( $(words $(CHAOS_SEEDS)) * 24000 )) generated cases, 0 violations, in $$(( $$(date +%s) - start )) s"

lambda: ## build dist/bootstrap.zip (provided.al2023, arm64; ARCH=amd64 for x86)
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=$${ARCH:-arm64} $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o dist/bootstrap ./runtime/lambda
	cd dist && rm -f bootstrap.zip && zip -q -X bootstrap.zip bootstrap && ls -l bootstrap.zip

clean: ## remove generated outputs
	rm -rf out dist
