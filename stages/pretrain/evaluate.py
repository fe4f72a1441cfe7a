"""Pretraining stage 7, evaluate: the shipped models against the issue's targets
(boothline.pretraining.evaluation). Outputs: `data_dir/eval/metrics.json` (every figure, with confusion
tables), `base-grid.png` (the base model's images of the grammar prompts) and `base-prompts.txt`."""

from __future__ import annotations

import json
import logging
import sys

from boothline.pretraining.entry import run_pretrain_stage
from boothline.pretraining.evaluation import evaluate_world, summary
from boothline.pretraining.settings import PretrainParams

log = logging.getLogger(__name__)


def run(params: PretrainParams) -> None:
    metrics = evaluate_world(params, params.data_dir / "eval")
    log.info("%s", json.dumps(summary(metrics), indent=1))


def main() -> None:
    sys.exit(run_pretrain_stage("evaluate", run))


if __name__ == "__main__":
    main()
