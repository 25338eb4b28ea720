# fapiao: two commands from a fresh machine.
#   make demo   installs what is missing, builds, runs the demo on ./demo.ledger
#   make test   installs what is missing, runs every test
SHELL := /bin/bash
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_LEDGER ?= ./demo.ledger

.PHONY: deps build test demo bench clean

# LMDB (library, headers, pkg-config file) and its command-line tools (mdb_stat, mdb_dump);
# jemalloc, the executables' allocator (Package.swift).
deps:
	@if ! pkg-config --exists lmdb jemalloc 2>/dev/null || ! command -v mdb_stat >/dev/null 2>&1; then \
		echo "installing liblmdb-dev lmdb-utils libjemalloc-dev"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq liblmdb-dev lmdb-utils libjemalloc-dev pkg-config; \
	fi
# Optional: the test suite validates docs/openapi.yaml with it, and skips that check without it.
	@python3 -c "import openapi_spec_validator" 2>/dev/null || pip install -q openapi-spec-validator 2>/dev/null \
		|| echo "openapi-spec-validator not installed: the OpenAPI validation test will be skipped"

build: deps
	$(SWIFT) build -c release --product fapiao
	$(SWIFT) build -c release --product fapiao-gen

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

demo: build
	@bash tools/demo.sh $(DEMO_LEDGER) .build/release

# Benchmarks print figures against the raw ceiling measured in the same run (docs/performance.md).
bench: deps
	$(SWIFT) build -c release --product ledger-bench
	$(SWIFT) build -c release --product import-bench
	$(SWIFT) build -c release --product forensics-bench
	$(SWIFT) build -c release --product audit-bench
	$(SWIFT) build -c release --product server-bench
	$(SWIFT) build -c release --product fapiao
	.build/release/ledger-bench
	.build/release/import-bench
	.build/release/forensics-bench
	.build/release/audit-bench
	.build/release/server-bench

clean:
	rm -rf .build $(DEMO_LEDGER)
