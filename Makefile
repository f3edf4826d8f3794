# Set-up and checks. PYTHON is the interpreter of the environment to install into (a venv is a good idea).
PYTHON ?= python3
PIP = $(PYTHON) -m pip
# torch first, pinned, and only when missing: an unpinned torch requirement on a CPU-only machine would pull
# gigabytes of CUDA packages; on a CUDA machine the same command installs PyPI's CUDA build.
TORCH ?= torch==2.13.0

.PHONY: install dev quickstart test lint

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH)"
	$(PIP) install -e .

dev:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH)"
	$(PIP) install -e ".[dev]"

# Install, train a small Transformer on the bundled Tatoeba eng->fra for 5 minutes; the run ends by translating
# the README's examples and printing the commands that come next.
quickstart: install
	$(PYTHON) -m nmt.cli.train experiment=quickstart

# Install the dev dependencies and run the whole test suite (slow learning tests included).
test: dev
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
