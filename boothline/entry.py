"""The shared `python -m stages.<name>` entry: parse `--params` and `--workspace`, run the stage, report bad
input cleanly.

Known user errors (bad params, bad data, a model that cannot be loaded) print their message to stderr
and exit 1 without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

from boothline.errors import USER_ERRORS
from boothline.params import Params, load_params
from boothline.paths import Workspace


def run_stage(name: str, run: Callable[[Params, Workspace], object], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{name}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--workspace", default=".", help="directory whose data/ the stage reads and writes "
                                                         "(default: the current directory)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.INFO, format=f"[{name}] %(message)s")
    try:
        run(load_params(args.params), Workspace(args.workspace))
    except USER_ERRORS as err:
        print(str(err), file=sys.stderr)
        return 1
    return 0
