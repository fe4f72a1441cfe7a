"""Helpers for tests/test_flows*.py: project directories to run flows in, and reading task runs back."""

from __future__ import annotations

import shutil

import yaml
from pathlib import Path


from conftest import REPO, repo_params


def make_project(root: Path, tiny_dir: Path, overrides: dict | None = None) -> Path:
    """A project directory at `root`: params.yaml (with overrides), dvc.yaml, the demo subject and the
    prebuilt tiny base model, as a user's checkout has after the first run."""
    root.mkdir(parents=True, exist_ok=True)
    params = repo_params(overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "data/subjects/demo", root / "data/subjects/demo")
    shutil.copytree(tiny_dir, root / "data/base/tiny")
    return root


def task_runs_of(client, flow_run_id) -> list:
    """The task runs of one flow run, oldest first."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                 sort=TaskRunSort.EXPECTED_START_TIME_ASC, limit=200, offset=0)
