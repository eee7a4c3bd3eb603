# The two commands of the README:  `make demo`  and  `make test`.
# Each sets up its own virtual environment on a fresh machine. torch is installed first and pinned
# (TORCH=torch==2.13.0, a CPU build on this project's machines) so no later step can pull a CUDA build.
VENV ?= .venv
PYTHON ?= python3
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.biomamba-installed
# mamba-ssm as the reference implementation the contract tests load our checkpoints with (not a dependency)
MAMBA_SSM_REF := $(VENV)/mamba-ssm-ref
MAMBA_SSM_STAMP := $(MAMBA_SSM_REF)/.complete-2.3.2.post1-2
# fla-core for the `kernels: fla` tests (its Triton kernels run on CPU under Triton's interpreter; triton itself
# comes from the mamba-ssm reference install): a 1.1 MB pure-Python wheel, installed once
FLA_REF := $(VENV)/fla-ref
FLA_STAMP := $(FLA_REF)/.complete-0.6.0

.PHONY: setup demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

$(MAMBA_SSM_STAMP): $(STAMP) scripts/mamba-ssm-reference.sh
	bash scripts/mamba-ssm-reference.sh $(MAMBA_SSM_REF) $(PY)

$(FLA_STAMP): $(STAMP) scripts/fla-reference.sh
	bash scripts/fla-reference.sh $(FLA_REF) $(PY)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/biomamba demo

test: $(STAMP) $(MAMBA_SSM_STAMP) $(FLA_STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks
	$(VENV)/bin/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
