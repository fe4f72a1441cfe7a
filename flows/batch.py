"""The `batch_generate` flow: a generation job (prompts x styles x seeds with a model, or a job file) rendered as
shard tasks, each image logged to the history log, with a summary artifact in the Prefect UI.

The job is planned once by `boothline.generation.planning.build_job` (bad input fails there, before anything
renders). Its fixed batches of deterministic image ids are split into `shards` tasks
(`boothline.generation.running.render_shard`), so the images are the same however many shards share the job. The
shards go through a task runner chosen per run: threads on this machine (default), or a Dask or Ray cluster with the
optional extras (`pip install 'boothline[dask]'` / `'boothline[ray]'`, imported only when chosen). Cluster workers
resolve the job's relative paths (the workspace's data/jobs/ and data/history/, the model) from their own working
directory: start them in the project directory, on storage every worker shares. Dask starts its workers with one
torch thread (OMP_NUM_THREADS=1); on CPU, float sums and so pixels depend on the thread count, so their images have
the same ids and files as a local run but may differ from it in the last bits.

On a cluster a shard of a job that renders on CUDA asks for one GPU (Dask: the worker resource `GPU`, so start GPU
workers with `--resources GPU=1`, one per GPU; Ray: `num_gpus=1`), so two shards never share a GPU; a CPU job asks
for none (`gpu_per_shard` overrides either way).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from boothline.errors import ParamsError
from boothline.generation.planning import Job, build_job
from boothline.generation.running import finalize_job, prepare_job, render_shard
from boothline.params import load_params
from boothline.paths import Workspace
from boothline.pipelines.loading import render_numerics
from flows.gpu import GPU_TAG, ensure_gpu_limit
from flows.heartbeat import beating
from flows.retries import retry_if_transient

TaskRunnerName = Literal["threads", "dask", "ray"]


def make_task_runner(name: str, cluster_address: str | None = None, gpu_shards: bool = False) -> TaskRunner:
    """threads: this machine. dask / ray: a new local cluster on loopback, or the running one at
    `cluster_address`. A new local Dask cluster for GPU shards has one worker per visible GPU."""
    if name == "threads":
        return ThreadPoolTaskRunner()
    if name == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise ParamsError("task_runner 'dask' needs the optional extra: pip install 'boothline[dask]'") from None
        if cluster_address:
            return DaskTaskRunner(address=cluster_address)
        cluster = {"host": "127.0.0.1", "dashboard_address": None}
        if gpu_shards:
            cluster.update(n_workers=visible_gpus(), threads_per_worker=1, resources={"GPU": 1})
        return DaskTaskRunner(cluster_kwargs=cluster)
    if name == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise ParamsError("task_runner 'ray' needs the optional extra: pip install 'boothline[ray]'") from None
        return RayTaskRunner(address=cluster_address) if cluster_address else RayTaskRunner()
    raise ParamsError(f"task_runner = {name!r}: choose threads, dask or ray")


def visible_gpus() -> int:
    import torch

    if not torch.cuda.device_count():
        raise ParamsError("the job's shards each need a GPU, and this machine has none for a local cluster: "
                          "pass the cluster_address of a cluster that has GPU workers")
    return torch.cuda.device_count()


def shard_needs_gpu(job: Job, asked: bool | None) -> bool:
    """Whether each shard reserves a GPU on a cluster: by default when the job renders on CUDA."""
    return asked if asked is not None else render_numerics(job.model_settings)[1] == "cuda"


@contextlib.contextmanager
def environment_kept():
    """Dask's local cluster sets OMP_NUM_THREADS=1, PYTHONHASHSEED and more in this process's environment for
    its workers and never restores them: every later child process would inherit them (one torch thread
    renders other pixels)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def shard_resources(task_runner: str, gpu: bool) -> contextlib.AbstractContextManager:
    """What shards submitted inside this context ask their cluster for: one GPU each, or nothing."""
    if not gpu or task_runner == "threads":
        return contextlib.nullcontext()  # on this machine the `gpu` tag limit keeps shards apart
    if task_runner == "dask":
        import dask

        return dask.annotate(resources={"GPU": 1})
    from prefect_ray.context import remote_options

    return remote_options(num_gpus=1)


# No Prefect cache: a rerun of a job already skips every image on disk (and logs any it had not logged).
@task(name="render-shard", task_run_name="render-shard-{shard_index}", tags={GPU_TAG}, cache_policy=NO_CACHE,
      retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=retry_if_transient)
def render_shard_task(job: Job, shard_index: int, num_shards: int) -> dict:
    return render_shard(job, shard_index, num_shards)


def job_overrides(prompts: list[str] | None, styles: list[str] | str | None, seeds: int | list[int] | None,
                  model: str | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    """The values this run sets, as `generate` keys; they take precedence over the job file and params."""
    given = dict(settings or {})
    named = {"prompts": prompts, "styles": styles, "seeds": seeds, "model": model}
    given.update({key: value for key, value in named.items() if value is not None})
    return given


def summary_markdown(summary: dict, wall_seconds: float) -> str:
    model = summary["model"]
    rendered = summary["rendered"]
    wall_rate = f"{rendered / wall_seconds:.3f}" if rendered and wall_seconds > 0 else "-"
    lines = [
        f"### Batch job `{summary['job_id']}`",
        f"Model `{model['uri']}` (version `{model['version']}`, hash `{model['hash']}`)",
        "",
        "| images | rendered | reused | missing | shards | images/s rendering | images/s wall clock |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['images']} | {rendered} | {summary['reused']} | {summary['missing']} | {summary['shards']} "
        f"| {summary['images_per_second'] or '-'} | {wall_rate} |",
        "",
        f"Prompts: {len(summary['prompts'])}, styles: {len(summary['styles'])}, seeds: {len(summary['seeds'])}",
        "",
        "Contact sheets:",
        *[f"- `{Path(sheet).resolve()}`" for sheet in summary["sheets"]],
    ]
    return "\n".join(lines) + "\n"


@flow(name="batch-generate", log_prints=True)
def batch_generate(prompts: list[str] | None = None, styles: list[str] | str | None = None,
                   seeds: int | list[int] | None = None, model: str | None = None, job_file: str | None = None,
                   settings: dict[str, Any] | None = None, shards: int = 1, task_runner: TaskRunnerName = "threads",
                   cluster_address: str | None = None, gpu_per_shard: bool | None = None,
                   params_file: str = "params.yaml", workspace: str = ".") -> dict:
    """Render a job into <workspace>/data/jobs/<job-id>/ and log every image; returns the job summary.

    prompts, styles ("all" or names), seeds (a count or a list), model (a directory, builtin:tiny, a hub id or
    models:/<name>@<alias>): override the job file, which overrides params.yaml's `generate` section.
    settings: any other `generate` keys, e.g. {"steps": 30, "sweep": {"guidance": [5, 7.5]}}.
    shards: how many tasks share the job; task_runner and cluster_address: where they run; gpu_per_shard:
    whether each shard reserves one GPU on a cluster (default: when the job renders on CUDA).
    workspace: the directory whose data/ the job writes (default: the flow's working directory).
    """
    if shards < 1:
        raise ParamsError(f"shards = {shards}: must be at least 1")
    params = load_params(params_file)
    job = build_job(params, job_file=job_file, overrides=job_overrides(prompts, styles, seeds, model, settings),
                    workspace=Workspace(workspace))
    num_shards = min(shards, len(job.batches()))  # a shard smaller than one batch would have nothing to do
    print(f"{job.job_id}: {len(job.images)} images with {job.model.uri} in {num_shards} shard(s) on {task_runner}")
    gpu = shard_needs_gpu(job, gpu_per_shard)
    runner = make_task_runner(task_runner, cluster_address, gpu)
    ensure_gpu_limit()
    with beating(workspace):
        prepare_job(job)
        start = time.perf_counter()
        with environment_kept(), runner, shard_resources(task_runner, gpu):
            futures = [runner.submit(render_shard_task, {"job": job, "shard_index": i, "num_shards": num_shards})
                       for i in range(num_shards)]
            results = [future.result() for future in futures]
        wall_seconds = time.perf_counter() - start
        summary = finalize_job(job, results)  # contact sheets of a large job take a while: still beating
        create_markdown_artifact(key=f"batch-{job.job_id}", markdown=summary_markdown(summary, wall_seconds),
                                 description=f"{summary['images']} images, {summary['rendered']} rendered")
    print(f"{job.out_dir}: {summary['rendered']} rendered, {summary['reused']} reused; "
          f"sheets: {', '.join(summary['sheets'])}")
    return summary
