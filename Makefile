# The README's commands. `make run` starts everything on the embedded defaults;
# `make test` runs the whole suite; `make bench` prints the performance figures.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# honcho gives each Procfile line after the first its own PORT (+100 each): what every process must
# agree on is exported here, from the web server's port (links in emails, the simulator's own server).
WEB_PORT ?= $(PORT)
SIMULATOR_PORT ?= $(shell expr $(PORT) + 1)
export PORT WEB_PORT SIMULATOR_PORT

NODE_SDK := tests/node/node_modules/.package-lock.json

.PHONY: install run test bench chromium lint node

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensure_setup
	$(BIN)/honcho --procfile Procfile start --port $(PORT)

# Browser tests drive Debian's chromium; Playwright's own browser download cannot work offline.
chromium:
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The simulator's conformance tests drive it through the official Node SDK too: node and npm from
# Debian if missing, and the SDK at the version tests/node/package-lock.json pins (from npm's registry).
node:
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "Installing Debian's nodejs and npm for the Node SDK conformance tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

$(NODE_SDK): tests/node/package.json tests/node/package-lock.json
	$(MAKE) node
	cd tests/node && npm ci --no-audit --no-fund
	touch $@

test: install chromium $(NODE_SDK)
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/bandit --quiet --configfile pyproject.toml --recursive batchdash jobs simulator
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench
