# Two commands matter (README): `make run` starts crucible locally, `make test` runs every check.
# Everything built or downloaded lives in $(CACHE), outside the repo, and is reused when present.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CACHE ?= $(HOME)/.cache/crucible
VENV ?= $(CACHE)/venv
PY := $(VENV)/bin/python
# The install is editable: key it on this checkout's path too, so another clone re-points it.
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(CURDIR)) | sha256sum | cut -c1-16)
PYTHON ?= python3

.PHONY: run test venv lint chart-check unit integration e2e tools cluster-up cluster-down \
	images bench clean-venv wrapper-oldest chart-test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

## run: start crucible (local backend, embedded Redis) on http://127.0.0.1:8080
run: venv
	$(VENV)/bin/crucible serve

## test: lint, chart checks, unit + integration tests, end-to-end tests (skip without a cluster)
test: lint chart-check wrapper-oldest
	$(PY) -m pytest tests
	$(MAKE) redis-cluster-test

## redis-cluster-test: the integration suite again, on a real 3-master Redis Cluster
redis-cluster-test: venv
	CRUCIBLE_TEST_REDIS=cluster $(PY) -m pytest tests/integration tests/unit/kube

# The wrapper runs under the executor image's python (3.8+): run its tests under the oldest one
# this machine has as well (pyenv installs on these machines; skipped where there is none).
OLDEST_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3 /usr/bin/python3.8))
wrapper-oldest: venv
	@if [ -n "$(OLDEST_PYTHON)" ]; then \
	  CRUCIBLE_TEST_WRAPPER_PYTHON=$(OLDEST_PYTHON) $(PY) -m pytest -q tests/unit/wrapper; \
	else echo "wrapper-oldest: no python3.8 on this machine, wrapper tested under $$($(PY) -V) only"; fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/vermin --target=3.8- --violations --no-tips --eval-annotations wrapper/ wire/__init__.py wire/channel.py wire/hardening.py

chart-check: venv
	tests/cluster/build-tools.sh helm ct actionlint
	PATH=$(VENV)/bin:$$PATH tests/chart/check.sh
	. tests/cluster/versions.sh && "$$CRUCIBLE_BIN/actionlint-$$ACTIONLINT_VERSION" \
	  -shellcheck= -pyflakes= .github/workflows/*.yaml

unit: venv
	$(PY) -m pytest tests/unit

integration: venv
	$(PY) -m pytest tests/integration

e2e: venv
	$(PY) -m pytest tests/e2e

tools:
	tests/cluster/build-tools.sh

images: venv
	PATH=$(VENV)/bin:$$PATH tests/cluster/images.sh

cluster-up: tools images
	tests/cluster/up.sh

cluster-down:
	tests/cluster/down.sh

## chart-test: ct lint + ct install of every ci/*-values.yaml scenario (needs the cluster)
chart-test: tools
	tests/cluster/chart-test.sh all

bench: venv
	for b in bench/*.py; do $(PY) $$b; done

clean-venv:
	rm -rf $(VENV)
