# The two commands of the README: `make run` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
# uv comes from the Python that runs make when it has it (or pip may install it there); where that Python
# refuses `pip install` (PEP 668: an "externally managed" system Python), `make install` puts uv into a
# virtual environment of its own under .local/uv instead (or, without the venv module, `pip install
# --target` there, which PEP 668 allows). Recursive (=), so a recipe run after `make install` sees it.
UV_HOME := .local/uv
UV = $(shell if $(PYTHON) -m uv --version >/dev/null 2>&1; then echo "$(PYTHON) -m uv"; else echo "$(UV_HOME)/bin/uv"; fi)
INFRA := deploy/local/infra.sh
SERVICES := deploy/local/services.sh
PACKAGES := -p oms_events -p oms_runtime -p order_service -p inventory_service -p payment_service -p fulfilment_service -p notification_service -p oms_cli -p oms_console
TEST_DIRS := libs/events/tests libs/runtime/tests $(wildcard services/*/tests) tools/oms-cli/tests console/tests tests/deploy tests/integration tests/chaos
# kustomize for the offline manifest checks: built once from its Go module into .local/bin (about 2 min on
# a fresh machine, then cached; the checks themselves take ~10 s).
KUSTOMIZE_VERSION := v5.7.1
KUSTOMIZE := .local/bin/kustomize
# The console's browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM := /usr/bin/chromium
# The AsyncAPI 3.0 JSON Schema the contract's document is validated against (libs/events/tests), from the
# AsyncAPI initiative's own npm package, unpacked once into .local.
ASYNCAPI_SPECS_VERSION := 6.11.1
ASYNCAPI_SCHEMA := .local/asyncapi-specs/$(ASYNCAPI_SPECS_VERSION)/asyncapi-3.0.0.json

.PHONY: help uv uv-sync install asyncapi-schema infra infra-down run demo down test lint types schemas openapi manifests kustomize chromium unit integration bench chaos logs

help:
	@echo "make run     install, start Kafka/PostgreSQL/Redis, the five services and the ops console"
	@echo "             (http://127.0.0.1:8080/), place demo orders"
	@echo "             KAFKA_SECURITY=sasl_ssl: the broker on SASL_SSL (SCRAM-SHA-512, a local CA), the services too"
	@echo "make test    install, start the infrastructure, run lint, types, unit and integration tests"
	@echo "make bench   start a fresh system, place N=2000 orders (or RATE=75 a second), print throughput, latency,"
	@echo "             CPU and memory per process, messages per order, the raw Kafka client ceiling (docs/benchmarks.md)"
	@echo "make chaos   start a fresh system and place N=1000 orders at RATE=5/s while every service is killed, the broker"
	@echo "             and the database restart, records are re-published and poison injected; SEED=1; the invariants"
	@echo "             as a table (docs/chaos.md)"
	@echo "make down    stop what make run started"
	@echo "make schemas / make openapi / make manifests   regenerate the JSON Schemas + AsyncAPI / every service's OpenAPI document / the Kubernetes base"

uv:
	@if $(PYTHON) -m uv --version >/dev/null 2>&1 || [ -x $(UV_HOME)/bin/uv ]; then exit 0; fi; \
	pip="--quiet --disable-pip-version-check"; \
	if $(PYTHON) -m pip install $$pip "uv==$(UV_VERSION)" 2>/dev/null; then exit 0; fi; \
	echo "[install] $(PYTHON) refuses pip install (PEP 668?): uv $(UV_VERSION) goes into $(UV_HOME)"; \
	if $(PYTHON) -m venv $(UV_HOME) 2>/dev/null; then $(UV_HOME)/bin/python -m pip install $$pip "uv==$(UV_VERSION)"; \
	else rm -rf $(UV_HOME); $(PYTHON) -m pip install $$pip --target $(UV_HOME) "uv==$(UV_VERSION)"; fi; \
	$(UV_HOME)/bin/uv --version

install: uv
	@$(MAKE) --no-print-directory uv-sync

uv-sync:
	@$(UV) sync --frozen --quiet

infra:
	@bash $(INFRA) start

run: install infra
	@bash $(SERVICES) start
	@$(UV) run --frozen python deploy/local/demo.py

demo:
	@$(UV) run --frozen python deploy/local/demo.py

down:
	@bash $(SERVICES) stop || true
	@bash $(INFRA) stop

logs:
	@tail -n 50 .local/logs/*.log

lint:
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

types:
	$(UV) run --frozen mypy $(PACKAGES)
	$(UV) run --frozen mypy deploy/local/bench.py deploy/local/benchkit
	@for dir in $(TEST_DIRS); do if [ -d $$dir ]; then echo "mypy $$dir"; $(UV) run --frozen mypy $$dir; fi; done

schemas:
	$(UV) run --frozen python -m oms_events.schema --write

openapi:
	$(UV) run --frozen python -m oms_runtime.openapi --write

manifests:
	$(UV) run --frozen python deploy/k8s/manifests.py --write

$(KUSTOMIZE):
	@mkdir -p $(dir $@)
	GOBIN=$(CURDIR)/$(dir $@) GOTOOLCHAIN=local go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

kustomize: $(KUSTOMIZE)

$(CHROMIUM):
	@if [ "$$(id -u)" -ne 0 ]; then echo "Chromium is missing: run as root, or: sudo apt-get install -y chromium"; exit 1; fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

$(ASYNCAPI_SCHEMA):
	@mkdir -p $(dir $@)
	cd $(dir $@) && npm pack --silent "@asyncapi/specs@$(ASYNCAPI_SPECS_VERSION)" >/dev/null \
		&& tar -xzf asyncapi-specs-$(ASYNCAPI_SPECS_VERSION).tgz package/schemas/3.0.0-without-\$$id.json \
		&& mv 'package/schemas/3.0.0-without-$$id.json' $(notdir $@) && rm -rf package asyncapi-specs-*.tgz

asyncapi-schema: $(ASYNCAPI_SCHEMA)

chromium: $(CHROMIUM)

unit: $(KUSTOMIZE) $(ASYNCAPI_SCHEMA)
	$(UV) run --frozen pytest libs services tools console tests/deploy -q

integration: infra $(CHROMIUM)
	@bash $(SERVICES) stop >/dev/null 2>&1 || true
	$(UV) run --frozen pytest tests/integration -q

test: install infra lint types $(KUSTOMIZE) $(ASYNCAPI_SCHEMA) $(CHROMIUM)
	@# The tests run their own copies of the services on the same topics: make run's would compete.
	@bash $(SERVICES) stop >/dev/null 2>&1 || true
	$(UV) run --frozen python -m oms_events.schema --check
	$(UV) run --frozen python deploy/k8s/manifests.py --check
	$(UV) run --frozen pytest libs services tools console tests/deploy tests/integration -q -ra
	@# The small chaos run restarts the broker and runs the services' own consumer groups: a session of its own.
	$(UV) run --frozen pytest tests/chaos -q -ra

# make bench [N=2000] [CLIENTS=32] [RATE=75 DURATION=60] [REPLICAS=1] [PARTITIONS=12] [BENCH_ARGS=...]
# (docs/benchmarks.md). The bench starts its own services on a fresh database; make run's would share
# their consumer groups and take part of the load, so they are stopped first.
N ?= 2000
CLIENTS ?= 32
RATE ?=
DURATION ?= 60
REPLICAS ?= 1
PARTITIONS ?= $(or $(KAFKA_TOPIC_PARTITIONS),12)
BENCH_ARGS ?=
bench: install infra
	@bash $(SERVICES) stop >/dev/null 2>&1 || true
	eval "$$(bash $(INFRA) env --export)"; $(UV) run --frozen python deploy/local/bench.py --orders $(N) --clients $(CLIENTS) \
		$(if $(RATE),--rate $(RATE) --duration $(DURATION)) --replicas $(REPLICAS) --partitions $(PARTITIONS) $(BENCH_ARGS)

# make chaos [N=1000] [RATE=5] [SEED=1] [CHAOS_ARGS=...] (docs/chaos.md). It restarts the broker and the
# database of infra.sh and runs the services' consumer groups: make run's services are stopped first.
CHAOS_ORDERS = $(if $(filter command line environment,$(origin N)),$(N),1000)
SEED ?= 1
CHAOS_ARGS ?=
chaos: install infra
	@bash $(SERVICES) stop >/dev/null 2>&1 || true
	eval "$$(bash $(INFRA) env --export)"; PYTHONPATH=deploy/local:tests/chaos $(UV) run --frozen python tests/chaos/chaos.py \
		--orders $(CHAOS_ORDERS) --rate $(or $(RATE),5) --seed $(SEED) $(CHAOS_ARGS)
