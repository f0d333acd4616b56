# berth — build, test, benchmark and demo.
GO      ?= go
BIN     := $(CURDIR)/bin
TAGS    := netgo osusergo
LDFLAGS := -s -w -extldflags "-static"
SOURCES := $(shell find . -path ./bin -prune -o \( -name '*.go' -o -name '*.c' -o -name '*.h' \) -print) go.mod go.sum Makefile

export CGO_ENABLED := 1
# encoding/json backed by the v2 implementation: the first decode of a
# config.json (paid by every berth-runc process) is about twice as fast.
export GOEXPERIMENT := jsonv2

.PHONY: all build test test-fuzz test-interop test-conformance bench bench-runtime bench-engine bench-containers bench-images bench-network demo deps clean fmt vet

all: build

build: $(BIN)/berth-runc $(BIN)/berth

$(BIN)/berth-runc: $(SOURCES)
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $@ ./cmd/berth-runc

$(BIN)/berth: $(SOURCES)
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $@ ./cmd/berth

# System packages the tests and demo need (Debian). Installs only what is missing.
deps:
	@scripts/deps.sh

vet:
	$(GO) vet -tags '$(TAGS)' ./...

# The engine's end-to-end tests run after the rest: both they and the
# runtime's integration tests check the host for leftovers.
test: deps build vet
	BERTH_RUNC=$(BIN)/berth-runc $(GO) test -tags '$(TAGS)' -count=1 -timeout 20m $$($(GO) list ./... | grep -v /tests/e2e)
	BERTH=$(BIN)/berth $(GO) test -tags '$(TAGS)' -count=1 -timeout 20m ./tests/e2e/

# A short run of each fuzz target (the corpora in testdata/ grow with every crash found).
# Every target runs a number of inputs, not a time: a -fuzztime duration that ends
# while the fuzzer is still minimising a new input makes it report "context deadline
# exceeded" and fail (CI hit this with FuzzRegister, FuzzLoad and FuzzCompile).
test-fuzz:
	$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz FuzzApply -fuzztime=20000x -fuzzminimizetime=50x ./storage/archive/
	$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz FuzzCompile -fuzztime=300000x -fuzzminimizetime=50x ./runtime/seccomp/
	$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz FuzzLoad -fuzztime=3000x -fuzzminimizetime=50x ./image/archive/
	$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz FuzzRegister -fuzztime=3000x -fuzzminimizetime=50x ./image/
	$(GO) test -tags '$(TAGS)' -run '^$$' -fuzz FuzzHandle -fuzztime=300000x -fuzzminimizetime=50x ./network/dns/

test-interop: deps build
	BERTH_RUNC=$(BIN)/berth-runc tests/interop/run.sh

test-conformance: deps build
	BERTH_RUNC=$(BIN)/berth-runc tests/conformance/run.sh

# make bench runs both benchmarks; BENCH_ARGS goes to the runtime bench,
# BENCH_ENGINE_ARGS to the engine bench (go run ./bench/enginebench -h).
bench: bench-runtime bench-engine

# Twice: on runc's default spec (capabilities, cgroups), then on berth-runc's
# (Docker's confinement: capabilities, cgroups and the seccomp profile),
# each config applied by both runtimes.
bench-runtime: deps $(BIN)/berth-runc
	BERTH_RUNC=$(BIN)/berth-runc bench/run.sh
	BERTH_RUNC=$(BIN)/berth-runc BENCH_OUT=bench/out/seccomp bench/run.sh -spec $(BIN)/berth-runc

bench-engine: deps $(BIN)/berth
	BERTH=$(BIN)/berth bench/engine.sh

bench-containers: deps $(BIN)/berth
	BERTH=$(BIN)/berth bench/engine.sh -only run,churn,mem

bench-images: deps $(BIN)/berth
	BERTH=$(BIN)/berth bench/engine.sh -only pull,load

bench-network: deps $(BIN)/berth
	BERTH=$(BIN)/berth bench/engine.sh -only net,run

demo: deps build
	BERTH=$(BIN)/berth scripts/demo.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
