# Local development and CI entry points. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PYTHON := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
PYTEST_ARGS ?=
BENCH_ARGS ?=
SOAK_SECONDS ?= 600
SOAK_SEED ?= 1
SOAK_USERS ?= 20
SCALE ?=

.PHONY: help bootstrap venv run test test-unit lint bench soak clean backup

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

bootstrap: ## install and start MariaDB, RabbitMQ, ffmpeg; create the venv
	bash scripts/bootstrap.sh

venv: ## create or update .venv only (no servers started)
	bash scripts/bootstrap.sh venv

run: bootstrap ## start the whole stack (auth :5000, gateway :8080, SMTP sink :1025); MONITOR=1 adds Prometheus; SCALE="gateway=2 converter=3" runs replicas
	$(PYTHON) -m tools.devstack run $(if $(filter 1,$(MONITOR)),--monitor) $(if $(strip $(SCALE)),--scale "$(strip $(SCALE))")

test: bootstrap ## the whole test suite, every marker
	$(PYTEST) $(PYTEST_ARGS)

test-unit: venv ## unit tests (tests/unit): no servers, about a minute
	$(PYTEST) tests/unit $(PYTEST_ARGS)

lint: bootstrap ## ruff
	$(VENV)/bin/ruff check .

bench: bootstrap ## benchmarks (bench/), results in bench/out/
	$(PYTHON) -m bench $(BENCH_ARGS)

soak: venv ## chaos soak: SOAK_SECONDS (600) of seeded load and faults (SOAK_SEED, SOAK_USERS), then nothing lost or duplicated; report in var/soak/
	$(PYTHON) -m tools.soak --seconds $(SOAK_SECONDS) --seed $(SOAK_SEED) --users $(SOAK_USERS)

backup: venv ## one verified backup set of `make run`'s databases into BACKUP_DIR (var/backups)
	BACKUP_DIR=$${BACKUP_DIR:-var/backups} MYSQL_PASSWORD=$${MYSQL_PASSWORD-auth_password} \
	  $(PYTHON) -m ops backup --verify

clean: ## remove local state (var/), test output and caches; keeps .venv
	rm -rf var test-output .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# --- Kubernetes ---
include mk/kubernetes.mk
