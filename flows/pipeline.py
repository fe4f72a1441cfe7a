"""The `dreambooth_pipeline` flow: validate → priors → train → evaluate → register → generate as Prefect tasks.

Each task calls the very `stages.<name>.run` that `python -m stages.<name>` (and so `dvc repro`) runs; no
stage logic lives here. A task's cache key is what dvc.yaml says the stage reads (flows/stage_cache.py),
so a rerun after a crash in register reuses validate, priors, train and evaluate instead of retraining,
and a stage whose outputs were deleted runs again. Bad input fails the flow at once with the stage's
message (no retries); only failures a retry can fix are retried (flows/retries.py). GPU-heavy tasks carry
the `gpu` tag (flows/gpu.py).

    python -m flows.pipeline [--params FILE] [--workspace DIR]   # one run, here (deployments: prefect.yaml)
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from prefect import Task, flow, task

from boothline.errors import ParamsError
from boothline.params import Params, load_params
from boothline.paths import Workspace
from flows.gpu import GPU_TAG, ensure_gpu_limit
from flows.heartbeat import beating
from flows.retries import retry_if_transient
from flows.stage_cache import StageInputs, outputs_current, record_outputs, stage_key

STAGES = ("validate", "priors", "train", "evaluate", "register", "generate")
GPU_STAGES = frozenset({"priors", "train", "evaluate", "generate"})
# Retried only for transient failures; validate reads local files, where a retry cannot help.
RETRIES = {"validate": 0, "priors": 2, "train": 1, "evaluate": 2, "register": 3, "generate": 2}
RETRY_DELAYS_SECONDS = [10, 60, 180]


def run_stage(stage: str, params: Params, workspace: Workspace) -> dict:
    """`stages.<stage>.run(params, workspace)`, looked up at call time (so it is the function `dvc repro` calls)."""
    return importlib.import_module(f"stages.{stage}").run(params, workspace)


def stage_task(stage: str) -> Task:
    def run(params: Params, workspace: Workspace) -> dict:
        key = stage_key(stage, params, workspace)  # of the inputs as they were when the stage started
        summary = run_stage(stage, params, workspace)
        record_outputs(stage, key, params, workspace)
        return summary

    run.__name__ = run.__qualname__ = stage  # the task's key: one per stage
    return task(run, name=stage, cache_policy=StageInputs(stage=stage), retries=RETRIES[stage],
                retry_delay_seconds=RETRY_DELAYS_SECONDS, retry_condition_fn=retry_if_transient,
                tags={GPU_TAG} if stage in GPU_STAGES else set(), persist_result=True)


STAGE_TASKS = {stage: stage_task(stage) for stage in STAGES}


@flow(name="dreambooth-pipeline", log_prints=True)
def dreambooth_pipeline(params_file: str = "params.yaml", overrides: dict[str, Any] | None = None,
                        workspace: str = ".", stages: list[str] | None = None) -> dict[str, dict]:
    """Run every stage in order (or only `stages`, still in pipeline order); returns each stage's summary by name.

    params_file: the params file, relative to the project directory.
    overrides: params to change for this run only, shaped like the file, e.g. {"train": {"max_train_steps": 400}}.
    workspace: the directory whose data/ the stages read and write (default: the project directory).
    stages: a subset, e.g. ["validate", "priors", "train", "evaluate", "register"] (what the service trains).
    """
    unknown = sorted(set(stages or ()) - set(STAGES))
    if unknown:
        raise ParamsError(f"stages: {', '.join(unknown)} not a stage (stages: {', '.join(STAGES)})")
    params = load_params(params_file, overrides)  # a bad value fails here, before any task
    space = Workspace(workspace)
    ensure_gpu_limit()
    summaries = {}
    with beating(workspace):
        for stage, stage_run in STAGE_TASKS.items():
            if stages is not None and stage not in stages:
                continue
            # a stored result counts only while the outputs on disk are the ones it made; else run and store anew
            fresh = outputs_current(stage, params, space)
            summaries[stage] = stage_run.with_options(refresh_cache=not fresh)(params, space)
    return summaries


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description="Run dreambooth_pipeline once.")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--workspace", default=".", help="directory holding data/ (default: the current one)")
    args = parser.parse_args(argv)
    dreambooth_pipeline(params_file=args.params, workspace=args.workspace)


if __name__ == "__main__":
    main()
