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
# FROM scratch images of those servers, for tests that run containers
# (testcontainers-go) when a Docker engine is reachable.
MINIO_IMAGE := strata-test/minio:$(MINIO_VERSION)

export CGO_ENABLED := 0

.PHONY: build run test test-long bench lint clean servers images

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

# No image can be pulled: each is built FROM scratch around a static
# binary. Without a Docker engine this does nothing and the tests run the
# servers as processes.
images: servers
	@if docker info >/dev/null 2>&1; then \
		mkdir -p $(CACHE)/images/minio && cp $(MINIO) $(CACHE)/images/minio/minio && \
		printf 'FROM scratch\nCOPY minio /minio\nENTRYPOINT ["/minio"]\n' > $(CACHE)/images/minio/Dockerfile && \
		{ docker build -q -t $(MINIO_IMAGE) $(CACHE)/images/minio >$(CACHE)/images/minio/build.log 2>&1 || \
			{ cat $(CACHE)/images/minio/build.log; exit 1; }; } && echo "image $(MINIO_IMAGE) ready"; \
	else echo "no Docker engine reachable: tests run MinIO as a process"; fi

# The image's name when it exists, for the tests.
image_env = STRATA_MINIO_IMAGE=$$(docker image inspect $(MINIO_IMAGE) >/dev/null 2>&1 && echo $(MINIO_IMAGE)) \
	TESTCONTAINERS_RYUK_DISABLED=true

# The race detector needs cgo.
test: lint build images
	$(image_env) CGO_ENABLED=1 STRATA_MINIO_BIN=$(MINIO) $(GO) test -race -count=1 -timeout 20m $(PKGS)

# Long fuzzing and crash rounds; bounded, they stop by themselves.
FUZZTIME ?= 60s
test-long: lint images
	$(image_env) CGO_ENABLED=1 STRATA_MINIO_BIN=$(MINIO) STRATA_CRASH_ROUNDS=40 $(GO) test -race -count=1 -timeout 60m -run Crash ./node/log/
	$(GO) test -run '^$$' -fuzz '^FuzzValidateBatch$$' -fuzztime $(FUZZTIME) ./node/log/
	$(GO) test -run '^$$' -fuzz '^FuzzRecovery$$' -fuzztime $(FUZZTIME) ./node/log/
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./gateway/
	$(GO) test -run '^$$' -fuzz '^FuzzListener$$' -fuzztime $(FUZZTIME) ./gateway/

BENCH ?= .
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count=1 -timeout 30m ./node/log/ ./meta/

clean:
	rm -rf bin $(CACHE)
	-docker rmi $(MINIO_IMAGE) >/dev/null 2>&1 || true
