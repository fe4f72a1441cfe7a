"""Deployments: prefect.yaml through `prefect deploy --all` and a process worker, and `python -m flows.serve`,
on the session's temporary Prefect server. Each triggered run renders one image."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from flow_projects import make_project

pytest_plugins = ["flows_fixtures"]

POOL = "boothline"
FLOW_NAMES = {"retrain": "dreambooth-pipeline", "nightly-batch": "batch-generate",
              "service-training": "dreambooth-pipeline", "service-generation": "batch-generate"}
SCHEDULED = ("retrain", "nightly-batch")
ONE_IMAGE = {"prompts": ["{subject}"], "styles": ["anime"], "seeds": 1, "settings": {"steps": 2}}


def declared() -> dict[str, dict]:
    return {spec["name"]: spec for spec in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}


def prefect_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def wait_for_final_state(client, flow_run_id, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.read_flow_run(flow_run_id).state
        if state.is_final():
            return state
        time.sleep(1)
    raise AssertionError(f"flow run {flow_run_id} still {state.name} after {timeout} s")


def test_prefect_yaml_declares_scheduled_nightly_batch_and_retrain():
    from flows.serve import load_flow

    specs = declared()
    assert set(specs) == set(FLOW_NAMES)
    for name, spec in specs.items():
        assert bool(spec.get("schedules")) == (name in SCHEDULED), name  # the service's jobs come from the API
        assert spec["work_pool"]["name"] == POOL
        flow = load_flow(spec["entrypoint"])
        assert flow.name == FLOW_NAMES[name]
        flow.validate_parameters(spec.get("parameters") or {})  # the defaults are parameters the flow accepts


def test_served_deployments_carry_prefect_yaml_schedules_and_parameters():
    from flows.serve import deployments

    served = {d.name: d for d in deployments(REPO / "prefect.yaml")}
    for name, spec in declared().items():
        deployment = served[name]
        schedules = spec.get("schedules") or []
        assert [s.schedule.cron for s in deployment.schedules] == [s["cron"] for s in schedules]
        assert [s.schedule.timezone for s in deployment.schedules] == [s["timezone"] for s in schedules]
        assert deployment.parameters == (spec.get("parameters") or {})
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.concurrency_limit == spec.get("concurrency_limit")
    assert [d.name for d in deployments(REPO / "prefect.yaml", ["service-training"])] == ["service-training"]


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory, tiny_dir) -> Path:
    """A project where the README's commands ran: create the process pool, `prefect deploy --all`."""
    project = make_project(tmp_path_factory.mktemp("deployed") / "project", tiny_dir)
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    prefect_cli("work-pool", "create", POOL, "--type", "process", cwd=project)
    prefect_cli("deploy", "--all", cwd=project)
    return project


def test_prefect_deploy_registers_the_schedules_and_parameters(deployed, prefect_client):
    for name, spec in declared().items():
        deployment = prefect_client.read_deployment_by_name(f"{FLOW_NAMES[name]}/{name}")
        assert [s.schedule.cron for s in deployment.schedules] == [s["cron"] for s in spec.get("schedules") or []]
        assert all(s.active for s in deployment.schedules)
        assert deployment.parameters == (spec.get("parameters") or {})
        assert deployment.work_pool_name == POOL
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(deployed.resolve())}}]


def test_worker_executes_a_triggered_deployment_run(deployed, prefect_client):
    from prefect.deployments import run_deployment

    flow_run = run_deployment("batch-generate/nightly-batch", parameters=ONE_IMAGE, timeout=0)
    prefect_cli("worker", "start", "--pool", POOL, "--run-once", cwd=deployed)
    state = wait_for_final_state(prefect_client, flow_run.id)
    assert state.is_completed(), state.message
    assert len(list((deployed / "data/jobs").glob("*/*/*.png"))) == 1  # the one image, in the project


def test_flows_serve_runs_a_triggered_deployment_run(prefect_server, prefect_client, tmp_path, tiny_dir):
    from prefect.deployments import run_deployment

    project = make_project(tmp_path / "project", tiny_dir)
    before = last_update(prefect_client, "batch-generate/nightly-batch")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=project, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_until_served(prefect_client, "batch-generate/nightly-batch", before, server, tmp_path / "serve.log")
        assert prefect_client.read_concurrency_limit_by_tag("gpu").concurrency_limit == 1
        flow_run = run_deployment("batch-generate/nightly-batch", parameters=ONE_IMAGE, timeout=0)
        state = wait_for_final_state(prefect_client, flow_run.id)
        assert state.is_completed(), state.message + (tmp_path / "serve.log").read_text()[-4000:]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert len(list((project / "data/jobs").glob("*/*/*.png"))) == 1


def last_update(client, name: str):
    """When the deployment was last created or updated; None if there is none."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name).updated
    except ObjectNotFound:
        return None


def wait_until_served(client, name: str, before, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Until `flows.serve` has registered (created or updated) the deployment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"flows.serve exited:\n{log.read_text()[-4000:]}"
        updated = last_update(client, name)
        if updated is not None and updated != before:
            return
        time.sleep(0.5)
    raise AssertionError(f"flows.serve did not register {name} within {timeout} s:\n{log.read_text()[-4000:]}")
