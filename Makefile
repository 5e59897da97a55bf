# The two commands of the README: `make run` and `make test`.
# Both create .venv, install the pinned dependencies from requirements.lock and the
# Debian packages listed below when they are missing, and say what they are doing.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Build: python-ldap compiles against OpenLDAP and Cyrus SASL headers.
# Tests: PostgreSQL client tools (the suite also needs a reachable server, see README),
# OpenLDAP's slapd and tools (the LDAP tests start their own slapd on a loopback port),
# and the third-party clients the interop tests drive: swaks, curl, fetchmail, mbsync.
DEB_PACKAGES := gcc python3-dev python3-venv libldap2-dev libsasl2-dev postgresql-client \
	slapd ldap-utils swaks curl fetchmail isync
# Benchmarks only: the peers they measure beside the gateway (each started by the
# benchmark itself on a loopback port with a temporary configuration).
BENCH_DEB_PACKAGES := postfix dovecot-imapd dovecot-pop3d
PYTEST_ARGS ?=

.PHONY: run test test-quick lint setup deb bench-deps clean help

help:
	@echo "make run         start the gateway on its embedded defaults (data in ./var)"
	@echo "make test        lint, type-check and run the whole test suite"
	@echo "make test-quick  the fast subset for the edit-test loop (no slow tests)"
	@echo "make lint        ruff, mypy and the import rules only"
	@echo "make bench-deps  install the benchmark peers (Postfix, Dovecot); see bench/README.md"

run: setup
	@echo "==> starting the gateway on embedded defaults (Ctrl-C stops it)"
	$(VENV)/bin/gateway serve

test: setup lint
	@echo "==> running the test suite"
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: setup
	@echo "==> running the quick subset (no slow tests)"
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

lint: setup
	@echo "==> ruff"
	$(VENV)/bin/ruff check gateway auth protocols tests bench
	@echo "==> mypy"
	$(VENV)/bin/mypy
	@echo "==> import rules (docs/architecture.md)"
	$(VENV)/bin/lint-imports

setup: deb $(VENV)/.installed

bench-deps:
	@$(MAKE) --no-print-directory deb DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"

deb:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages:" $$missing; \
		SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: requirements.lock pyproject.toml
	@echo "==> creating the virtual environment in $(VENV)"
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@echo "==> installing pinned dependencies from requirements.lock"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
