"""The `dreambooth_pipeline` flow on a temporary Prefect server, with the tiny model and small params.

One pipeline project is shared by most tests: the flow runs once with register crashing, then again (it
must reuse the cached stages up to evaluate). Meanwhile a second project runs, in another process, the
functions `dvc repro` runs (`stages.<name>.run` on params.yaml, in dvc.yaml's order) to compare outputs with.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from conftest import REPO
from flow_projects import make_project, task_runs_of

pytest_plugins = ["flows_fixtures"]

STAGES = ("validate", "priors", "train", "evaluate", "register", "generate")
SMALL = {
    "priors": {"num_images": 2, "steps": 2},
    "train": {"max_train_steps": 4, "checkpoint_every": 4, "validate_every": 0},
    "eval": {"max_prompts": 1, "steps": 2, "checkpoints": [], "baseline": False, "fidelity_seeds": 1},
    "generate": {"styles": ["anime"], "seeds": 1, "steps": 2},
}

RUN_STAGES = (
    "import importlib\n"
    "from boothline.params import load_params\n"
    f"for stage in {STAGES!r}:\n"
    "    importlib.import_module(f'stages.{stage}').run(load_params('params.yaml'))\n"
)


@dataclass
class PipelineRuns:
    project: Path
    direct: Path  # the same stage functions run without Prefect
    crashed: object  # flow run state with register crashing
    completed: object  # flow run state of the rerun
    train_calls: int


def task_states(client, state) -> dict[str, str]:
    return {run.name.rsplit("-", 1)[0]: run.state.name for run in task_runs_of(client, state.state_details.flow_run_id)}


@pytest.fixture(scope="module")
def pipeline_runs(prefect_server, tmp_path_factory, tiny_dir) -> PipelineRuns:
    import stages.register
    import stages.train
    from flows.pipeline import dreambooth_pipeline

    project = make_project(tmp_path_factory.mktemp("flow") / "project", tiny_dir, SMALL)
    direct = make_project(tmp_path_factory.mktemp("direct") / "project", tiny_dir, SMALL)
    # One process (imports cost seconds each), in the background: it overlaps the flow's waits on the API.
    reference_log = direct.parent / "stages.log"
    with reference_log.open("w") as log:
        reference = subprocess.Popen([sys.executable, "-c", RUN_STAGES], cwd=direct, stdout=log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
    train_calls = []
    real_train, real_register = stages.train.run, stages.register.run

    def counting_train(params, workspace):
        train_calls.append(1)
        return real_train(params, workspace)

    def crashing_register(params, workspace):
        raise RuntimeError("simulated crash in register")

    with contextlib.chdir(project), pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages.train, "run", counting_train)
        patch.setattr(stages.register, "run", crashing_register)
        started = time.perf_counter()
        crashed = dreambooth_pipeline(return_state=True)
        print(f"\nflow run crashing in register: {time.perf_counter() - started:.1f} s")
        patch.setattr(stages.register, "run", real_register)
        started = time.perf_counter()
        completed = dreambooth_pipeline(return_state=True)
        print(f"flow rerun: {time.perf_counter() - started:.1f} s")
    assert reference.wait(timeout=900) == 0, f"the stage functions failed:\n{reference_log.read_text()[-4000:]}"
    return PipelineRuns(project, direct, crashed, completed, len(train_calls))


def test_crash_in_register_fails_the_flow_after_evaluate(pipeline_runs, prefect_client):
    crashed = pipeline_runs.crashed
    assert crashed.is_failed()
    with pytest.raises(RuntimeError, match="simulated crash in register"):
        crashed.result()
    states = task_states(prefect_client, crashed)
    assert list(states) == ["validate", "priors", "train", "evaluate", "register"]  # generate never ran
    assert states["register"] == "Failed"
    assert all(states[s] == "Completed" for s in ("validate", "priors", "train", "evaluate"))


def test_rerun_after_the_crash_reuses_cached_stages(pipeline_runs, prefect_client):
    assert pipeline_runs.completed.is_completed()
    states = task_states(prefect_client, pipeline_runs.completed)
    assert states == {"validate": "Cached", "priors": "Cached", "train": "Cached", "evaluate": "Cached",
                      "register": "Completed", "generate": "Completed"}
    assert pipeline_runs.train_calls == 1
    summaries = pipeline_runs.completed.result()
    assert set(summaries) == set(STAGES)


def frame(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def weights(model_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(model_dir).as_posix(): p.read_bytes() for p in sorted(model_dir.rglob("*.safetensors"))}


def test_flow_outputs_match_the_stage_functions_dvc_runs(pipeline_runs):
    flow, direct = pipeline_runs.project, pipeline_runs.direct
    for manifest in ("data/validated/manifest.parquet", "data/priors/manifest.parquet"):
        pd.testing.assert_frame_equal(frame(flow / manifest), frame(direct / manifest))
    assert weights(flow / "data/model") and weights(flow / "data/model") == weights(direct / "data/model")
    assert json.loads((flow / "data/eval/metrics.json").read_text()) == \
        json.loads((direct / "data/eval/metrics.json").read_text())
    flow_registry = json.loads((flow / "data/registry.json").read_text())
    direct_registry = json.loads((direct / "data/registry.json").read_text())
    for key in ("model_name", "version", "aliases", "promoted"):
        assert flow_registry[key] == direct_registry[key], key
    flow_summary = json.loads((flow / "data/generations/summary.json").read_text())
    assert flow_summary == json.loads((direct / "data/generations/summary.json").read_text())
    for file in flow_summary["files"].values():
        assert Image.open(flow / file).tobytes() == Image.open(direct / file).tobytes()


def test_a_stage_whose_outputs_were_deleted_runs_again(pipeline_runs, prefect_client):
    from flows.pipeline import dreambooth_pipeline

    generations = pipeline_runs.project / "data/generations"
    before = json.loads((generations / "summary.json").read_text())
    shutil.rmtree(generations)
    with contextlib.chdir(pipeline_runs.project):
        state = dreambooth_pipeline(return_state=True)
    assert state.is_completed()
    states = task_states(prefect_client, state)
    assert states["generate"] == "Completed"
    assert all(states[s] == "Cached" for s in ("validate", "priors", "train", "evaluate", "register"))
    assert json.loads((generations / "summary.json").read_text()) == before


def test_bad_photo_fails_in_validate_and_runs_nothing_after(prefect_server, prefect_client, tmp_path, tiny_dir):
    from boothline.errors import StageError
    from flows.pipeline import dreambooth_pipeline

    project = make_project(tmp_path / "project", tiny_dir, SMALL)
    (project / "data/subjects/demo/broken.jpg").write_bytes(b"not an image")
    with contextlib.chdir(project):
        state = dreambooth_pipeline(return_state=True)
    assert state.is_failed()
    with pytest.raises(StageError, match="broken.jpg"):
        state.result()
    assert "broken.jpg" in state.message
    runs = task_runs_of(prefect_client, state.state_details.flow_run_id)
    assert [run.name.rsplit("-", 1)[0] for run in runs] == ["validate"]
    assert runs[0].run_count == 1  # bad input is not retried
    assert not (project / "data/priors").exists()


def test_invalid_override_fails_before_any_task(prefect_server, prefect_client, tmp_path, tiny_dir):
    from boothline.errors import ParamsError
    from flows.pipeline import dreambooth_pipeline

    project = make_project(tmp_path / "project", tiny_dir, SMALL)
    with contextlib.chdir(project):
        state = dreambooth_pipeline(overrides={"train": {"resolution": 60}}, return_state=True)
    assert state.is_failed()
    with pytest.raises(ParamsError, match="train.resolution"):
        state.result()
    assert task_runs_of(prefect_client, state.state_details.flow_run_id) == []
    assert not (project / "data/validated").exists()


def test_cache_key_follows_what_dvc_yaml_says_a_stage_reads(workdir, params):
    from flows.stage_cache import stage_key

    base = params()
    assert stage_key("priors", params({"generate": {"steps": 3}})) == stage_key("priors", base)
    assert stage_key("priors", params({"priors": {"steps": 3}})) != stage_key("priors", base)
    validate_key = stage_key("validate", base)
    assert stage_key("validate", params({"priors": {"steps": 3}})) == validate_key
    photo = sorted((workdir / "data/subjects/demo").iterdir())[0]
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo)
    assert stage_key("validate", base) != validate_key  # a changed photo is a changed input


def test_stored_results_count_only_for_the_outputs_their_inputs_made(workdir, params):
    """Run with P1, then P2, then P1 again: the outputs on disk are P2's, so P1's stored result must not count."""
    from flows.stage_cache import outputs_current, record_outputs, stage_key
    from stages import validate

    p1, p2 = params(), params({"subject": {"max_images": 19}})
    assert not outputs_current("validate", p1)  # nothing on disk
    for p in (p1, p2):
        validate.run(p)
        record_outputs("validate", stage_key("validate", p), p)
    assert outputs_current("validate", p2) and not outputs_current("validate", p1)
    Path("data/validated/report.json").write_text("{}")  # changed by hand (or by `dvc repro`)
    assert not outputs_current("validate", p2)


def test_gpu_limit_is_created_once_and_never_overwritten(prefect_client):
    from flows.gpu import GPU_TAG, ensure_gpu_limit

    assert ensure_gpu_limit() == prefect_client.read_concurrency_limit_by_tag(GPU_TAG).concurrency_limit
    prefect_client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=4)  # e.g. a 4-GPU cluster
    try:
        assert ensure_gpu_limit() == 4
        assert prefect_client.read_concurrency_limit_by_tag(GPU_TAG).concurrency_limit == 4
    finally:
        prefect_client.create_concurrency_limit(tag=GPU_TAG, concurrency_limit=1)


def test_the_dvc_path_never_imports_prefect(tmp_path):
    check = ("import sys, pkgutil, importlib, boothline, stages\n"
             "for pkg in (boothline, stages):\n"
             "    for mod in pkgutil.iter_modules(pkg.__path__):\n"
             "        importlib.import_module(f'{pkg.__name__}.{mod.name}')\n"
             "assert not [m for m in sys.modules if m.split('.')[0] == 'prefect'], 'prefect imported'\n")
    proc = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_dropped_connection_is_retried(prefect_server, params, monkeypatch):
    import stages.register
    from boothline.paths import Workspace
    from prefect import flow
    from prefect.cache_policies import NO_CACHE
    from flows.pipeline import STAGE_TASKS

    attempts = []

    def flaky_register(p, workspace):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionResetError("the tracking server went away")
        return {"version": 1}

    monkeypatch.setattr(stages.register, "run", flaky_register)
    register = STAGE_TASKS["register"].with_options(retry_delay_seconds=0, cache_policy=NO_CACHE)

    @flow
    def register_once():
        return register(params(), Workspace())

    assert register_once() == {"version": 1}
    assert len(attempts) == 2


def test_only_transient_failures_are_retried():
    from boothline.errors import ModelError, ParamsError, StageError
    from flows.retries import is_transient

    assert is_transient(ConnectionResetError("peer reset"))
    assert is_transient(TimeoutError("read timed out"))
    assert is_transient(OSError("stale file handle"))
    for permanent in (StageError("x.jpg: not an image"), ParamsError("bad"), ModelError("no such model"),
                      FileNotFoundError("data/model"), PermissionError("read-only"), RuntimeError("bug")):
        assert not is_transient(permanent), permanent
