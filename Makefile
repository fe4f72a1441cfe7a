# The project's two commands: `make run` (install, then the whole pipeline via `dvc repro`) and
# `make test` (install, then the test suite). Both work on a fresh clone with package registries only.

VENV ?= .venv
PY := $(VENV)/bin/python
GIT_ID := -c user.name=boothline -c user.email=boothline@localhost
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export TRANSFORMERS_VERBOSITY := error
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install install-test lock run test repo pretrain serve clean

# Every installed version comes from a lock (requirements/*.txt, made by `make lock`): run.txt for the
# pipeline, test.txt for it plus the tests and the dask/ray extras, with the same versions. --no-deps: the
# lock is the whole environment; hashes: what installs is byte for byte what was tested. uv installs it (pip
# bootstraps uv from installer.txt): from cold caches on 2 cores uv took 82 s where pip took 268 s.
# Bytecode is compiled at install: these machines set PYTHONDONTWRITEBYTECODE=1, so Python never caches
# what it compiles, and without it every process compiles torch again (measured: the suite 2074 s instead
# of 1612). torch is the local +cpu wheel here, in pip's find-links, which uv is handed (it reads none of
# pip's configuration); pip's own configuration is what reaches the registry for the bootstrap.
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell python3 -m pip config get global.find-links 2>/dev/null))
UV_INSTALL := $(VENV)/bin/uv pip install -q --python $(PY) --no-deps --require-hashes --compile-bytecode \
	$(foreach link,$(FIND_LINKS),--find-links $(link))
$(VENV)/.installed-%: pyproject.toml requirements/%.txt requirements/installer.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements/installer.txt
	$(UV_INSTALL) -r requirements/$*.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $@

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

# Re-resolves pyproject.toml (plus requirements/lock.in) to the newest versions the registry serves.
# Commit a new lock only after `make test` passes on it.
LOCK_VENV := .venv-lock
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q --upgrade --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { python3 -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install -q pip==26.3 pip-tools==7.6.2; }
	$(PIP_COMPILE) --extra dask --extra ray --extra test -o requirements/test.txt pyproject.toml requirements/lock.in
	$(PIP_COMPILE) -c requirements/test.txt -o requirements/run.txt pyproject.toml requirements/lock.in
	$(PIP_COMPILE) -c requirements/test.txt -o requirements/installer.txt requirements/installer.in

# dvc repro needs a git + DVC repository; a fresh copy without history gets one (and a first commit).
repo: install
	@test -d .git || git init -q
	@test -d .dvc || $(VENV)/bin/dvc init -q
	@$(VENV)/bin/dvc config core.analytics false
	@git rev-parse -q --verify HEAD >/dev/null || { git add -A && git $(GIT_ID) commit -qm "boothline: initial commit"; }

run: repo
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1} dvc repro

# Rebuilds the built-in world model and encoders in pretrained/ (about 3 hours on 2 CPU cores; resumable:
# interrupted, it continues from its last checkpoint). `make run` never needs it: the results are committed.
pretrain: repo
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro pretrain/dvc.yaml

# The studio service on loopback: a Prefect server, the service's deployments and the API (boothline serve).
# Ctrl-C stops all three. Make accounts first: .venv/bin/boothline users create NAME; ... keys create NAME.
PORT ?= 8000
PREFECT_PORT ?= 4200
serve: repo
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m boothline.service.launch --port $(PORT) --prefect-port $(PREFECT_PORT)

# Two workers (pytest-xdist), each taking whole test files. One torch thread per process (OMP_NUM_THREADS):
# two workers' processes of two threads each on two cores spin-wait on each other's cores; measured, two
# tiny training steps side by side took 5.7 s each with 2 threads, 1.0 s with 1 (0.6 s alone with 2).
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: install-test
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf data/validated data/priors data/checkpoints data/model data/train data/eval data/generations \
	       data/base data/registry.json
