"""Stage 6, generate: the configured prompts x styles x seeds into <workspace>/data/generations/ (a DVC output).

Images, one contact sheet per prompt (`*-sheet.png`) and summary.json. The output is `persist: true`:
images already there are kept and skipped, a killed run renders only what is missing, and files the
current params no longer produce are deleted. It does not append to the history log (that is for
`boothline generate` and Prefect batch jobs). Runs as one process, or sharded under
`accelerate launch --num_processes N -m stages.generate` (on a CPU-only machine add `--multi_gpu`).
"""

from __future__ import annotations

import logging
import sys

from boothline.entry import run_stage
from boothline.generation.planning import build_job
from boothline.generation.running import run_launched
from boothline.params import Params
from boothline.paths import Workspace

log = logging.getLogger(__name__)


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    job = build_job(params, for_stage=True, workspace=workspace)
    log.info("%d images (%d prompts) with model %s (%s) into %s", len(job.images), len(job.sheets), job.model.uri,
             job.model.version, job.out_dir)
    summary = run_launched(job)
    if "sheets" in summary:  # process 0 (or the only one)
        speed = f" ({summary['images_per_second']} images/s)" if summary["images_per_second"] else ""
        log.info("%d rendered%s, %d reused; sheets: %s", summary["rendered"], speed, summary["reused"],
                 ", ".join(summary["sheets"]))
    return summary


def main() -> None:
    sys.exit(run_stage("generate", run))


if __name__ == "__main__":
    main()
