# Strata build and test entry points. `make test` is what CI runs.
GO      ?= go
BIN     := bin/strata
# Everything the tests build or download for themselves lives here; `make
# clean` removes it.
CACHE   ?= $(CURDIR)/.cache
PKGS    := ./...
# Real servers the tests run, built once into the cache (versions as in
# ../shared/DEPENDENCIES.md).
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
MINIO   := $(CACHE)/bin/minio

export CGO_ENABLED := 0

.PHONY: build run test test-long bench lint clean servers

build:
	$(GO) build -trimpath -ldflags='-s -w' -o $(BIN) .

run: build
	@echo "Strata dev: one process on 127.0.0.1:9092, data in ./strata-data (Ctrl-C stops it)."
	@echo "Connect any Kafka client, e.g.: kcat -b 127.0.0.1:9092 -L"
	./$(BIN) dev

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# MinIO for the tier tests: 2-3 minutes cold, reused while the cache lasts.
$(MINIO):
	@echo "building MinIO $(MINIO_VERSION) into $(CACHE)/bin (once; a few minutes)"
	GOBIN=$(CACHE)/bin $(GO) install -ldflags='-s -w' github.com/minio/minio@$(MINIO_VERSION)

servers: $(MINIO)

# The race detector needs cgo.
test: lint build servers
	CGO_ENABLED=1 STRATA_MINIO_BIN=$(MINIO) $(GO) test -race -count=1 -timeout 20m $(PKGS)

# Long fuzzing and crash rounds; bounded, they stop by themselves.
FUZZTIME ?= 60s
test-long: lint servers
	CGO_ENABLED=1 STRATA_MINIO_BIN=$(MINIO) STRATA_CRASH_ROUNDS=40 $(GO) test -race -count=1 -timeout 60m -run Crash ./node/log/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateBatch$$' -fuzztime $(FUZZTIME) ./node/log/
	$(GO) test -run '^$$' -fuzz '^FuzzRecovery$$' -fuzztime $(FUZZTIME) ./node/log/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzListener$$' -fuzztime $(FUZZTIME) ./gateway/

BENCH ?= .
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count=1 -timeout 30m ./node/log/ ./meta/

clean:
	rm -rf bin $(CACHE)
