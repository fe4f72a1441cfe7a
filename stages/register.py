"""Stage 5, register: log the trained model, its training and its evaluation to MLflow, and gate promotion.

Registers `data/model/` (or, with `register.use_best_checkpoint`, the best-scoring checkpoint of
`data/eval/metrics.json`) under `register.model_name` (default `boothline-<subject folder>`) in the store at
`register.tracking_uri`. A model already registered (same training fingerprint and step) is not registered
again: its version is gated anew with the current thresholds. Writes `data/registry.json`. All paths are the
workspace's; a relative `register.tracking_uri` store lies inside it.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from boothline.entry import run_stage
from boothline.io.files import atomic_write_text
from boothline.params import Params
from boothline.paths import Workspace
from boothline.registry.registration import register_model

log = logging.getLogger(__name__)


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    started = time.perf_counter()
    record, decision = register_model(params, workspace)
    atomic_write_text(workspace.registry_file, json.dumps(record, indent=2) + "\n")
    seconds = round(time.perf_counter() - started, 2)
    log.info("%s version %s: %s (%s); %s s", record["model_name"], record["version"],
             "promoted to champion" if decision.promoted else "not promoted", "; ".join(decision.reasons), seconds)
    return {**record, "wall_time_s": seconds}


def main() -> None:
    sys.exit(run_stage("register", run))


if __name__ == "__main__":
    main()
