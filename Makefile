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
NATS_VERSION := v2.15.2
NATS_SERVER := $(CACHE)/bin/nats-server
# FROM scratch images of those servers, for tests that run containers
# (testcontainers-go) when a Docker engine is reachable.
MINIO_IMAGE := strata-test/minio:$(MINIO_VERSION)
NATS_IMAGE  := strata-test/nats:$(NATS_VERSION)
STRATA_IMAGE := strata-test/strata:dev

export CGO_ENABLED := 0

.PHONY: build run test test-long bench lint clean servers images chromium kcat pyclients

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

$(NATS_SERVER):
	GOBIN=$(CACHE)/bin $(GO) install -ldflags='-s -w' github.com/nats-io/nats-server/v2@$(NATS_VERSION)

servers: $(MINIO) $(NATS_SERVER)

# Debian packages the tests drive (headless Chromium for the console's
# browser test, kcat for librdkafka), with their libraries, unpacked into
# the cache (nothing installed on the system); a wrapper points each at
# its libraries. Where apt cannot fetch one, its tests skip.
# unpack_debian: directory, package, program inside the package's root.
define unpack_debian
	@mkdir -p $(1)/archives/partial $(1)/root
	@echo "unpacking Debian's $(2) into $(1) (once)"
	@{ apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=$(1)/archives $(2) \
		>$(1)/apt.log 2>&1 || { apt-get update -qq >>$(1)/apt.log 2>&1 && \
		apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=$(1)/archives $(2) \
		>>$(1)/apt.log 2>&1; }; } && \
	for d in $(1)/archives/*.deb; do dpkg -x $$d $(1)/root || exit 1; done && \
	printf '#!/bin/sh\nroot=$$(dirname "$$0")/root\nlib=$$root/usr/lib/x86_64-linux-gnu\nexport LD_LIBRARY_PATH="$$lib:$$lib/pulseaudio:$$root/lib/x86_64-linux-gnu$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"\nexec "$$root/$(3)" "$$@"\n' >$@ && \
	chmod +x $@ && rm -rf $(1)/archives || \
	echo "$(2) could not be fetched (see $(1)/apt.log): its tests will skip"
endef

CHROMIUM_DIR := $(CACHE)/chromium
CHROMIUM := $(CHROMIUM_DIR)/chromium.sh
SCREENSHOTS := $(CACHE)/screenshots
KCAT_DIR := $(CACHE)/kcat
KCAT := $(KCAT_DIR)/kcat.sh

$(CHROMIUM):
	$(call unpack_debian,$(CHROMIUM_DIR),chromium,usr/lib/chromium/chromium)

$(KCAT):
	$(call unpack_debian,$(KCAT_DIR),kcat,usr/bin/kcat)

kcat: $(KCAT)

# Python's Kafka clients (kafka-python, confluent-kafka) for the
# compatibility tests: Debian's packages unpacked beside the others, run
# by Debian's Python (or the first python3) with a wrapper that points it
# at them.
PYCLIENTS_DIR := $(CACHE)/pyclients
PYTHON := $(PYCLIENTS_DIR)/python.sh

$(PYTHON):
	@mkdir -p $(PYCLIENTS_DIR)/archives/partial $(PYCLIENTS_DIR)/root
	@echo "unpacking Debian's python3-kafka and python3-confluent-kafka into $(PYCLIENTS_DIR) (once)"
	@{ apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=$(PYCLIENTS_DIR)/archives \
		python3-kafka python3-confluent-kafka librdkafka1 >$(PYCLIENTS_DIR)/apt.log 2>&1 || { apt-get update -qq >>$(PYCLIENTS_DIR)/apt.log 2>&1 && \
		apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=$(PYCLIENTS_DIR)/archives \
		python3-kafka python3-confluent-kafka librdkafka1 >>$(PYCLIENTS_DIR)/apt.log 2>&1; }; } && \
	for d in $(PYCLIENTS_DIR)/archives/*.deb; do [ -e "$$d" ] || continue; dpkg -x $$d $(PYCLIENTS_DIR)/root || exit 1; done && \
	printf '#!/bin/sh\nroot=$$(dirname "$$0")/root\npy=/usr/bin/python3\n[ -x $$py ] || py=python3\nexport PYTHONPATH="$$root/usr/lib/python3/dist-packages$${PYTHONPATH:+:$$PYTHONPATH}"\nexport LD_LIBRARY_PATH="$$root/usr/lib/x86_64-linux-gnu$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"\nexec $$py "$$@"\n' >$@ && \
	chmod +x $@ && rm -rf $(PYCLIENTS_DIR)/archives || \
	echo "the Python clients could not be fetched (see $(PYCLIENTS_DIR)/apt.log): their tests will skip"

pyclients: $(PYTHON)

chromium: $(CHROMIUM)

# No image can be pulled: each is built FROM scratch around a static
# binary (an empty /data and /tmp are made for it). Without a Docker
# engine this does nothing: tests run the servers as processes, and the
# container tests skip.
define scratch_image # name, binary, image
	mkdir -p $(CACHE)/images/$(1)/data $(CACHE)/images/$(1)/tmp && cp $(2) $(CACHE)/images/$(1)/$(1) && \
	printf 'FROM scratch\nCOPY $(1) /$(1)\nCOPY data /data\nCOPY tmp /tmp\nENTRYPOINT ["/$(1)"]\n' > $(CACHE)/images/$(1)/Dockerfile && \
	{ docker build -q -t $(3) $(CACHE)/images/$(1) >$(CACHE)/images/$(1)/build.log 2>&1 || \
		{ cat $(CACHE)/images/$(1)/build.log; exit 1; }; } && echo "image $(3) ready"
endef

images: servers build
	@if docker info >/dev/null 2>&1; then \
		$(call scratch_image,minio,$(MINIO),$(MINIO_IMAGE)) && \
		$(call scratch_image,nats-server,$(NATS_SERVER),$(NATS_IMAGE)) && \
		$(call scratch_image,strata,$(BIN),$(STRATA_IMAGE)); \
	else echo "no Docker engine reachable: tests run MinIO as a process; container tests skip"; fi

# The images' names when they exist, for the tests.
has_image = $$(docker image inspect $(1) >/dev/null 2>&1 && echo $(1))
image_env = STRATA_MINIO_IMAGE=$(call has_image,$(MINIO_IMAGE)) STRATA_NATS_IMAGE=$(call has_image,$(NATS_IMAGE)) \
	STRATA_IMAGE=$(call has_image,$(STRATA_IMAGE)) TESTCONTAINERS_RYUK_DISABLED=true

# Every fuzz target, as package:Target:runs. Each one's seed corpus runs
# with the unit tests; `make test` also fuzzes each for its runs (about
# ten seconds' worth on 2 cores: a count, not a duration, since Go 1.26's
# fuzz coordinator can fail a duration-bounded run at its deadline with
# "context deadline exceeded" and no crasher, golang/go#75804), and
# `make test-long` for FUZZTIME each.
FUZZ_TARGETS := ./node/log/:FuzzValidateBatch:500000x ./node/log/:FuzzRecovery:400x ./gateway/:FuzzParseRequest:20000x \
	./gateway/:FuzzListener:10x ./meta/:FuzzApply:30000x ./tier/:FuzzDecodeManifest:50000x ./internal/rpc/:FuzzGather:5000x \
	./internal/rpc/:FuzzCallerReply:5000x ./auth/:FuzzExchange:100000x
FUZZTIME ?= 10m
# The fault suite: `make test` runs one seed with FAULT_SECONDS_SHORT of
# the faults in FAULTS_SHORT (about two and a half minutes in all): those
# that move no partition leadership, so that CI stays quick and steady;
# `make test-long` runs FAULT_SEEDS seeds one after another, each with
# FAULT_SECONDS of every kind of fault (docs/testing.md lists the seeds
# run and what they found).
FAULT_SECONDS_SHORT ?= 90
FAULTS_SHORT ?= kill-gateway,store-down,store-503,disk-full
FAULT_SEEDS ?= 10
FAULT_SECONDS ?= 180

# Fuzz each target for $(1) (empty: its own runs), one after another;
# bounded, they stop by themselves. A crash leaves its input under the
# package's testdata/fuzz.
define fuzz_all
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; runs=$${rest#*:}; \
		budget=$(1); budget=$${budget:-$$runs}; \
		echo "fuzz $$name ($$pkg) for $$budget"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $$budget $$pkg || exit 1; done
endef

# The race detector needs cgo.
test: lint build images chromium kcat pyclients
	$(image_env) CGO_ENABLED=1 STRATA_MINIO_BIN=$(MINIO) STRATA_CHROMIUM=$(CHROMIUM) STRATA_KCAT=$(KCAT) STRATA_PYTHON=$(PYTHON) STRATA_SCREENSHOTS=$(SCREENSHOTS) \
		$(GO) test -race -count=1 -timeout 20m $(PKGS)
	@echo "console screenshots: $(SCREENSHOTS)"
	# The fault suite, one seed, on its own: the packages' tests would
	# load the machine under it.
	CGO_ENABLED=1 STRATA_FAULTS=$(FAULTS_SHORT) STRATA_FAULT_SECONDS=$(FAULT_SECONDS_SHORT) $(GO) test -race -count=1 -timeout 10m -run '^TestFaultSuite$$' -v ./node/
	$(call fuzz_all,)

# Long fuzzing and crash rounds; bounded, they stop by themselves.
test-long: lint images
	$(image_env) CGO_ENABLED=1 STRATA_MINIO_BIN=$(MINIO) STRATA_CRASH_ROUNDS=40 $(GO) test -race -count=1 -timeout 60m -run Crash ./node/log/
	STRATA_RETENTION_ROUNDS=200 $(GO) test -count=1 -timeout 30m -run TestRetentionKeepsUncoveredRandom ./node/log/
	STRATA_EOS_RECORDS=100000 $(GO) test -count=1 -timeout 30m -run TestExactlyOncePipelineKilled ./node/
	STRATA_FRANZ_THREE_NODES=1 STRATA_FRANZ_SHARE_RECORDS=500000 $(GO) test -count=1 -timeout 30m -run TestFranzGoIntegration ./gateway/
	STRATA_FAULT_SECONDS=$(FAULT_SECONDS) STRATA_FAULT_SEEDS=$(FAULT_SEEDS) $(GO) test -count=1 -timeout 80m -run '^TestFaultSuite$$' -v ./node/
	$(call fuzz_all,$(FUZZTIME))

BENCH ?= .
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count=1 -timeout 30m ./node/log/ ./meta/

clean:
	rm -rf bin $(CACHE)
	-docker rmi $(MINIO_IMAGE) $(NATS_IMAGE) $(STRATA_IMAGE) >/dev/null 2>&1 || true
