"""Shared fixtures: every test runs offline, in its own working directory, on the tiny model."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from boothline.params import deep_merge

os.environ["HF_HUB_OFFLINE"] = "1"  # a test that reaches for the hub fails instead of downloading
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

REPO = Path(__file__).resolve().parents[1]
# Unit tests run on the tiny random model (fast, and what they were sized for); the end-to-end `dvc repro`
# test and the world tests use params.yaml as shipped (builtin:world and its encoders).
UNIT_TEST_MODEL = {"model": {"base": "builtin:tiny"}, "train": {"learning_rate": 1e-3},
                   "eval": {"clip_model": None, "dino_model": None}, "register": {"primary_metric": "latent_fidelity"}}


# The longest modules (one `dvc repro` of the pipeline; the service's processes, its training and its faults)
# go first: `make test` runs the suite on two workers, file by file, and neither should be left for the end.
LONGEST_FIRST = ("test_dvc_pipeline.py", "test_journey.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def repo_params(overrides: dict | None = None, shipped: bool = False) -> dict:
    """params.yaml of the checkout as a dict: on the unit-test model unless `shipped`, then `overrides`."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    return deep_merge(data if shipped else deep_merge(data, UNIT_TEST_MODEL), overrides or {})


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """The tiny base pipeline, built once per test session."""
    from boothline.pipelines.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("base") / "tiny")


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_dir) -> Path:
    """A fresh project directory (params.yaml, demo subject, prebuilt tiny model) as the cwd."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(repo_params(), sort_keys=False))
    shutil.copytree(REPO / "data/subjects/demo", tmp_path / "data/subjects/demo")
    shutil.copytree(tiny_dir, tmp_path / "data/base/tiny")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def write_params(workdir):
    """write_params({"train": {"max_train_steps": 3}}) -> path of params.yaml with those overrides."""

    def write(overrides: dict | None = None, name: str = "params.yaml") -> Path:
        data = repo_params(overrides)
        path = workdir / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def params(write_params):
    """load(overrides) -> typed Params, with params.yaml written to the workdir."""
    from boothline.params import load_params

    return lambda overrides=None: load_params(write_params(overrides))


def free_port() -> int:
    """A loopback port that is free now, for a server a test starts the way users start it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_module(module: str, *args: str, cwd: Path, check: bool = False, env: dict | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m module args` in `cwd` as a user would, capturing output."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def compile_for_tests(monkeypatch):
    """torch.compile's graph capture and autograd without inductor's code generation (minutes on 2 cores);
    returns a function giving the graph breaks seen, so a test can require none."""
    import torch

    from boothline.pipelines import compiling

    monkeypatch.setattr(compiling, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield lambda: dict(torch._dynamo.utils.counters["graph_break"])
    torch._dynamo.reset()


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow sqlite store, created once: migrations cost seconds per database.

    Kept at a fixed path of the session's temp root."""
    from mlflow import MlflowClient

    path = tmp_path_factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not path.is_file():
        building = path.with_name("building.db")
        building.parent.mkdir(exist_ok=True)
        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()
        building.rename(path)
    return path


@pytest.fixture
def store(workdir, mlflow_template) -> str:
    """The default tracking URI (sqlite:///registry/mlflow.db) in the workdir, a copy of the template."""
    Path("registry").mkdir(exist_ok=True)
    shutil.copy(mlflow_template, "registry/mlflow.db")
    return "sqlite:///registry/mlflow.db"
