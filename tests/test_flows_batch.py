"""The `batch_generate` flow: sharding by image id, the history log, the summary artifact, runner choice."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from boothline.io.files import sha256_file
from conftest import REPO
from flow_projects import make_project, task_runs_of

pytest_plugins = ["flows_fixtures"]

JOB = {"prompts": ["{subject} on the beach"], "styles": ["anime", "watercolor"], "seeds": 2,
       "settings": {"steps": 2, "batch_size": 1}}  # 4 images in 4 batches: shards get whole batches


@dataclass
class BatchRuns:
    single: Path  # project where the job ran as one shard
    sharded: Path  # project where it ran as two
    single_state: object
    sharded_state: object


@pytest.fixture(scope="module")
def batch_runs(prefect_server, tmp_path_factory, tiny_dir) -> BatchRuns:
    from flows.batch import batch_generate

    single = make_project(tmp_path_factory.mktemp("one-shard") / "project", tiny_dir)
    sharded = make_project(tmp_path_factory.mktemp("two-shards") / "project", tiny_dir)
    with contextlib.chdir(single):
        single_state = batch_generate(**JOB, shards=1, return_state=True)
    with contextlib.chdir(sharded):
        sharded_state = batch_generate(**JOB, shards=2, return_state=True)
    return BatchRuns(single, sharded, single_state, sharded_state)


def history(project: Path):
    from boothline.generation.history import read_history

    return read_history(project / "data/history")


def test_two_shards_render_the_same_images_as_one(batch_runs, prefect_client):
    one, two = batch_runs.single_state.result(), batch_runs.sharded_state.result()
    assert one["images"] == two["images"] == 4 and one["missing"] == two["missing"] == 0
    assert (one["shards"], two["shards"]) == (1, 2)
    assert one["files"] == two["files"]  # same image ids, same files
    for file in one["files"].values():
        assert sha256_file(batch_runs.single / file) == sha256_file(batch_runs.sharded / file)
    shard_tasks = task_runs_of(prefect_client, batch_runs.sharded_state.state_details.flow_run_id)
    assert sorted(run.name for run in shard_tasks) == ["render-shard-0", "render-shard-1"]
    assert all(run.state.is_completed() for run in shard_tasks)


def test_gpu_tagged_shards_never_run_at_once(batch_runs, prefect_client):
    assert prefect_client.read_concurrency_limit_by_tag("gpu").concurrency_limit == 1  # the flow created it
    first, second = sorted(task_runs_of(prefect_client, batch_runs.sharded_state.state_details.flow_run_id),
                           key=lambda run: run.start_time)
    assert "gpu" in first.tags and "gpu" in second.tags
    assert first.end_time <= second.start_time


def test_every_image_is_logged_once_to_the_history(batch_runs):
    for project, state in ((batch_runs.single, batch_runs.single_state),
                           (batch_runs.sharded, batch_runs.sharded_state)):
        rows = history(project)
        assert sorted(rows.image_id) == sorted(state.result()["files"])
        assert set(rows.job_id) == {state.result()["job_id"]}


def test_each_run_publishes_a_summary_artifact(batch_runs, prefect_client):
    summary = batch_runs.sharded_state.result()
    artifacts = prefect_client.read_artifacts(limit=50, offset=0)
    [artifact] = [a for a in artifacts if a.flow_run_id == batch_runs.sharded_state.state_details.flow_run_id]
    assert artifact.type == "markdown" and artifact.key == f"batch-{summary['job_id']}"
    assert "| 4 | 4 | 0 | 0 | 2 |" in artifact.data  # images, rendered, reused, missing, shards
    assert summary["images_per_second"] > 0 and str(summary["images_per_second"]) in artifact.data
    for sheet in summary["sheets"]:
        assert str((batch_runs.sharded / sheet).resolve()) in artifact.data


def test_rerun_renders_nothing_and_logs_nothing_twice(batch_runs):
    from flows.batch import batch_generate

    with contextlib.chdir(batch_runs.single):
        again = batch_generate(**JOB, shards=2)
    assert (again["rendered"], again["reused"]) == (0, 4)
    assert len(history(batch_runs.single)) == 4


def test_unknown_style_fails_before_rendering(prefect_server, prefect_client, tmp_path, tiny_dir):
    from flows.batch import batch_generate

    project = make_project(tmp_path / "project", tiny_dir)
    with contextlib.chdir(project):
        state = batch_generate(prompts=["{subject}"], styles=["no-such-style"], return_state=True)
    assert state.is_failed()
    assert "no-such-style" in state.message and "anime" in state.message  # names the known styles
    assert task_runs_of(prefect_client, state.state_details.flow_run_id) == []
    assert not (project / "data/jobs").exists()


def shard_requests_plugin(scheduler):
    """A Dask scheduler plugin recording the resources each task asked for when it was scheduled."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class ShardRequests(SchedulerPlugin):
        name = "boothline-shard-requests"

        def __init__(self):
            self.scheduler, self.seen = scheduler, []

        def transition(self, key, start, finish, *args, **kwargs):
            task = self.scheduler.tasks.get(key)
            if finish == "processing" and task is not None:
                self.seen.append((str(key), dict(task.resource_restrictions or {})))

    return ShardRequests()


@pytest.fixture
def environment_after():
    """Puts this process's environment back after a test's own cluster (Dask's sets OMP_NUM_THREADS=1 and
    PYTHONHASHSEED for its workers), so later tests' subprocesses render with the same threads."""
    from flows.batch import environment_kept

    with environment_kept():
        yield


def test_dask_cluster_on_loopback_gives_each_shard_a_gpu_and_the_same_images(batch_runs, prefect_client, tmp_path,
                                                                             tiny_dir, environment_after):
    """A cluster as GPU users start it (`dask worker --resources GPU=1`, one per GPU), here with two CPU
    workers; the shards reserve one GPU each, so two never share one."""
    from distributed import LocalCluster

    from flows.batch import batch_generate

    project = make_project(tmp_path / "project", tiny_dir)
    with contextlib.chdir(project):  # the workers start here, so they share the project
        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                          resources={"GPU": 1}) as cluster:
            requests = shard_requests_plugin(cluster.scheduler)
            cluster.scheduler.add_plugin(requests)
            state = batch_generate(**JOB, shards=2, task_runner="dask", cluster_address=cluster.scheduler_address,
                                   gpu_per_shard=True, return_state=True)
    assert [asked for _, asked in requests.seen] == [{"GPU": 1}, {"GPU": 1}], requests.seen
    # Same image ids and files; not the same bytes: Dask workers run torch with one thread, and CPU float
    # sums (so pixels) depend on the thread count.
    assert state.result()["files"] == batch_runs.single_state.result()["files"]
    assert all((project / file).is_file() for file in state.result()["files"].values())
    shards = task_runs_of(prefect_client, state.state_details.flow_run_id)
    assert sorted(run.name for run in shards) == ["render-shard-0", "render-shard-1"]


def test_a_local_dask_cluster_of_the_flow_leaves_the_environment_as_it_was(batch_runs, tmp_path, tiny_dir):
    from flows.batch import batch_generate

    project = make_project(tmp_path / "project", tiny_dir)
    before = dict(os.environ)
    with contextlib.chdir(project):
        state = batch_generate(**JOB, shards=2, task_runner="dask", return_state=True)
    assert dict(os.environ) == before
    assert state.result()["files"] == batch_runs.single_state.result()["files"]


def test_ray_gives_each_shard_a_gpu_and_renders_the_same_images(batch_runs, tmp_path, tiny_dir, environment_after):
    """A local Ray instance (two CPUs, two GPUs declared, as `ray start --num-gpus` does on a GPU node)."""
    import ray
    from ray.util.state import list_tasks

    from flows.batch import batch_generate

    project = make_project(tmp_path / "project", tiny_dir)
    with contextlib.chdir(project):  # Ray's workers start here
        ray.init(num_cpus=2, num_gpus=2, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
        try:
            state = batch_generate(**JOB, shards=2, task_runner="ray", gpu_per_shard=True, return_state=True)
            shards = list_tasks(filters=[("name", "=", "render-shard")], detail=True)
        finally:
            ray.shutdown()
    assert state.result()["files"] == batch_runs.single_state.result()["files"]
    assert all((project / file).is_file() for file in state.result()["files"].values())
    assert len(shards) == 2 and all(task.required_resources.get("GPU") == 1 for task in shards)


def test_shards_ask_for_a_gpu_only_when_the_job_renders_on_cuda(tmp_path, tiny_dir, monkeypatch):
    import flows.batch
    from boothline.errors import ParamsError
    from boothline.generation.planning import build_job
    from boothline.params import load_params
    from flows.batch import job_overrides, make_task_runner, shard_needs_gpu, shard_resources

    project = make_project(tmp_path / "project", tiny_dir)
    with contextlib.chdir(project):
        job = build_job(load_params("params.yaml"), overrides=job_overrides(model=None, **JOB))
    assert shard_needs_gpu(job, None) is False  # renders on this CPU
    monkeypatch.setattr(flows.batch, "render_numerics", lambda settings: ("fp16", "cuda"))
    assert shard_needs_gpu(job, None) is True and shard_needs_gpu(job, False) is False
    assert isinstance(shard_resources("threads", True), contextlib.nullcontext)
    runner = make_task_runner("dask")
    assert runner.cluster_kwargs["host"] == "127.0.0.1"  # a new local cluster stays on loopback
    with pytest.raises(ParamsError, match="cluster_address"):
        make_task_runner("dask", gpu_shards=True)  # no GPU here for a local GPU cluster


def test_cluster_task_runners_are_optional_extras():
    from prefect.task_runners import ThreadPoolTaskRunner

    from boothline.errors import ParamsError
    from flows.batch import make_task_runner

    check = ("import sys, flows.batch, flows.pipeline, flows.serve\n"
             "assert not {'prefect_dask', 'prefect_ray'} & set(sys.modules), 'imported a cluster runner'\n")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert isinstance(make_task_runner("threads"), ThreadPoolTaskRunner)
    for name in ("dask", "ray"):
        if f"prefect_{name}" in sys.modules or _installed(f"prefect_{name}"):
            continue  # the extra is installed here: nothing to refuse
        with pytest.raises(ParamsError, match=rf"pip install 'boothline\[{name}\]'"):
            make_task_runner(name)
    with pytest.raises(ParamsError, match="choose threads, dask or ray"):
        make_task_runner("spark")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
