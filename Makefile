# pipeshare - everything goes through this Makefile. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# this machine's pip configuration names local package folders that may not exist: keep their warnings out of logs
QUIET_PIP := 2>&1 | { grep -v '^WARNING: Location' || true; }
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt pyproject.toml local/pyproject.toml | sha1sum | cut -c1-12)
# Offline, credential-free defaults: nothing here talks to a real AWS account.
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# sam build for python3.13 needs the interpreter on PATH (pyenv keeps it off by default)
export PYENV_VERSION ?= $(shell pyenv versions --bare 2>/dev/null | grep -E '^3\.(11|12|13)\.' | sort -V | tr '\n' ':' | sed 's/:$$//')

.PHONY: help dev demo test lint typecheck format cfn-lint validate test-unit test-integration test-infra bench build deploy clean

help:
	@echo "make help       - this list"
	@echo "make dev        - create .venv and install the product and the local stack (editable), pinned dev tools"
	@echo "make demo       - set up and play the two-account story on the local stack"
	@echo "make test       - lint, mypy --strict, template checks, unit + integration + infrastructure tests (offline)"
	@echo "make test-unit  - unit tests only"
	@echo "make test-integration - integration tests only (the local stack)"
	@echo "make test-infra - infrastructure tests only (template.yaml)"
	@echo "make lint       - ruff check"
	@echo "make format     - ruff format, then ruff check --fix"
	@echo "make typecheck  - mypy --strict on layers/common and functions"
	@echo "make cfn-lint   - cfn-lint template.yaml with the serverless rules"
	@echo "make validate   - sam validate --lint"
	@echo "make bench      - start-to-alert latency, cold init ratio, peak RSS, warm overhead, worst cases"
	@echo "make build      - sam build (needs python3.13, found through pyenv)"
	@echo "make deploy     - sam deploy --guided"
	@echo "make prices OFFER=index.json - rebuild the shipped price table from AWS Price List offer file(s)"
	@echo "make stackset-template PACKAGED=.aws-sam/packaged.yaml - the consumer StackSet's template (docs/fleet.md)"
	@echo "make clean      - remove .venv, .aws-sam and the tool caches"

# the product (pipeshare: pyproject.toml, layers/common) and the local stack (pipeshare-local: local/pyproject.toml, the
# `pipeshare` command), both editable
$(STAMP): requirements-dev.txt pyproject.toml local/pyproject.toml
	rm -f $(VENV)/.installed-*
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet --no-deps -e . $(QUIET_PIP)
	# apart, and after the product: an older all-in-one install's removal would take the `pipeshare` command with it
	$(BIN)/python -m pip install --quiet --no-deps -e local $(QUIET_PIP)
	touch $@

dev: $(STAMP)

demo: dev
	$(BIN)/pipeshare local run scenarios/demo.yaml

lint: dev
	$(BIN)/ruff check layers functions local tests tools

format: dev
	$(BIN)/ruff format layers functions local tests
	$(BIN)/ruff check --fix layers functions local tests

typecheck: dev
	$(BIN)/mypy

cfn-lint: dev
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(BIN)/cfn-lint deploy/*.yaml

validate: dev
	$(BIN)/sam validate --lint --region $(AWS_DEFAULT_REGION)

test-unit: dev
	$(BIN)/python -m pytest tests/unit -q

test-integration: dev
	$(BIN)/python -m pytest tests/integration -q

test-infra: dev
	$(BIN)/python -m pytest tests/infrastructure -q

# the suite on every core (at most 4 workers: each holds its own local stack, ~0.8 GB; tests sharing a scenario's run
# carry one xdist_group, kept in one worker by loadgroup); `PYTEST_WORKERS=0` runs it in one process
PYTEST_WORKERS ?= auto
test: lint typecheck cfn-lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadgroup

# this checkout's code first (a shared or stale editable install may point elsewhere); exits 1 when a stated target is
# missed; `$(BIN)/python -m pipeshare_local.bench --readme` prints the README's table from reports/bench.json
bench: dev
	PYTHONPATH=$(CURDIR)/local:$(CURDIR)/layers/common:$(CURDIR) $(BIN)/python -m pipeshare_local.bench

build: dev
	$(BIN)/sam build

deploy: build
	$(BIN)/sam deploy --guided

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache

# The shipped price table from AWS Price List bulk offer files (AmazonSageMaker index.json, whole-service or per
# region; several: OFFER="a.json b.json"). README, Prices.
.PHONY: prices
prices: dev
	@test -n "$(OFFER)" || { echo "usage: make prices OFFER=index.json [OFFER=\"a.json b.json\"]"; exit 2; }
	$(BIN)/python tools/build_price_table.py $(OFFER) -o layers/common/pipeshare/data/prices.json

# The template a service-managed StackSet can deploy (no transform, artifact buckets per Region) from `sam package`'s
# output. docs/fleet.md, deploy/consumer-stackset.yaml.
.PHONY: stackset-template
stackset-template: dev
	@test -n "$(PACKAGED)" || { echo "usage: make stackset-template PACKAGED=.aws-sam/packaged.yaml"; exit 2; }
	PYTHONPATH=$(CURDIR)/local:$(CURDIR)/layers/common:$(CURDIR) $(BIN)/python tools/stackset_template.py $(PACKAGED) \
		-o .aws-sam/stackset.json
