"""The shared `python -m stages.<name>` entry: parse `--params`, run the stage, report bad input cleanly.

Known user errors (bad params, bad data, a model that cannot be loaded) print their message to stderr
and exit 1 without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from boothline.params import Params, ParamsError, load_params


class StageError(Exception):
    """Bad input found by a stage; the message is for the user, one problem per line."""


def user_errors() -> tuple[type[BaseException], ...]:
    from boothline.pipelines.loading import ModelError

    return (ParamsError, StageError, ModelError)


def run_stage(name: str, run: Callable[[Params], object], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    try:
        run(load_params(args.params))
    except user_errors() as err:
        print(str(err), file=sys.stderr)
        return 1
    return 0
