# The project's two commands: `make run` (install, then the whole pipeline via `dvc repro`) and
# `make test` (install, then the test suite). Both work on a fresh clone with package registries only.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GIT_ID := -c user.name=boothline -c user.email=boothline@localhost
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TRANSFORMERS_VERBOSITY := error
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install run test repo clean

# torch first, pinned to the CPU wheel: a bare range would resolve to the multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	touch $(STAMP)

install: $(STAMP)

# dvc repro needs a git + DVC repository; a fresh copy without history gets one (and a first commit).
repo: install
	@test -d .git || git init -q
	@test -d .dvc || $(VENV)/bin/dvc init -q
	@$(VENV)/bin/dvc config core.analytics false
	@git rev-parse -q --verify HEAD >/dev/null || { git add -A && git $(GIT_ID) commit -qm "boothline: initial commit"; }

run: repo
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1} dvc repro

test: install
	$(PY) -m pytest

clean:
	rm -rf data/validated data/priors data/checkpoints data/model data/train data/eval data/generations \
	       data/base data/registry.json
