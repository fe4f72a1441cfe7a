"""The `python -m stages.pretrain.<name>` entry: parse `--params`, run the stage, report bad input cleanly.

Separate from boothline.entry, which reads the pipeline's params.yaml: pretraining never imports the
pipeline's params, so changing those never makes `pretrain/dvc.yaml` retrain anything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from boothline.errors import USER_ERRORS
from boothline.pretraining.settings import PretrainParams, load_pretrain_params


def run_pretrain_stage(name: str, run: Callable[[PretrainParams], object], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m stages.pretrain.{name}")
    parser.add_argument("--params", default="pretrain/params.yaml", help="default: pretrain/params.yaml")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.INFO, format=f"[pretrain {name}] %(message)s")
    try:
        run(load_pretrain_params(args.params))
    except USER_ERRORS as err:
        print(str(err), file=sys.stderr)
        return 1
    return 0
