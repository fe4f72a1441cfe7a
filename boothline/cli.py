"""The `boothline` command: ad-hoc batch generation, the style list, the history log, regeneration.

    boothline generate --prompt P [--styles a,b] [--seeds N] [--model URI|DIR] [--job FILE] [...]
    boothline styles
    boothline history [--prompt TEXT] [--style S] [--model M] [--since DATE] [--until DATE] [--job ID]
    boothline regenerate ID [--out FILE]
    boothline users create NAME [--daily-credits N] | grant NAME N | list
    boothline keys create NAME | revoke KEY-ID
    boothline serve [--host H] [--port P]       (make serve: with a Prefect server and worker)

Every command takes `--workspace DIR` (default: the current directory): the `data/` tree it reads and writes.

Settings collide in the order: these flags > the job file > style settings > params.yaml (`generate`).
A flag given comma-separated values (`--guidance 5,7.5`) sweeps them. Images go to data/jobs/<job-id>/ and
one row per image to the history log. Runs sharded under `accelerate launch -m boothline.cli generate ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Callable

from boothline.errors import USER_ERRORS
from boothline.params import Params, load_params
from boothline.paths import Workspace
from boothline.service.admin import add_admin_commands, cmd_keys, cmd_serve, cmd_users


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _overrides(args: argparse.Namespace) -> dict:
    """Only what was given on the command line; a comma list for steps/guidance/scheduler is a sweep."""
    given: dict = {}
    if args.prompt:
        given["prompts"] = args.prompt
    if args.styles:
        given["styles"] = "all" if args.styles == "all" else _csv(args.styles)
    sweep = {}
    for key in ("steps", "guidance", "scheduler"):
        value = getattr(args, key)
        if value is not None:
            values = _csv(value)
            if len(values) > 1:
                sweep[key] = values
            else:
                given[key] = values[0] if values else value
    if sweep:
        given["sweep"] = sweep
    plain = {"seeds": "seeds", "seed": "seed", "batch_size": "batch_size", "width": "width", "height": "height",
             "negative": "negative_prompt", "format": "image_format", "model": "model", "extra_styles": "extra_styles"}
    given.update({key: getattr(args, flag) for flag, key in plain.items() if getattr(args, flag) is not None})
    if args.no_quality:
        given["quality_tokens"] = []
    if args.zip:
        given["export_zip"] = True
    return given


def cmd_generate(args: argparse.Namespace, load: Callable[[], Params]) -> int:
    from boothline.generation.running import run_launched
    from boothline.generation.planning import build_job

    params = load()
    job = build_job(params, job_file=args.job, overrides=_overrides(args), workspace=Workspace(args.workspace))
    summary = run_launched(job)
    if "sheets" in summary:  # process 0 (or the only one) reports
        speed = f", {summary['images_per_second']} images/s" if summary["images_per_second"] else ""
        print(f"{job.out_dir}: {summary['images']} images ({summary['rendered']} rendered, {summary['reused']} "
              f"reused){speed}")
        for sheet in summary["sheets"]:
            print(sheet)
    return 0


def cmd_styles(args: argparse.Namespace, load: Callable[[], Params]) -> int:
    from boothline.generation.styles import load_styles

    # Listing styles needs no project: params only matter for their extra_styles file.
    extra = args.extra_styles or (load().generate.extra_styles if Path(args.params).is_file() else None)
    for style in load_styles(extra).values():
        print(f"{style.name}\t{style.description}")
    return 0


HISTORY_SHOWN = ["created_at", "image_id", "style", "seed", "model_version", "file", "prompt"]


def cmd_history(args: argparse.Namespace, load: Callable[[], Params]) -> int:
    from boothline.generation.history import query, read_history

    directory = args.dir or load().generate.history_dir or Workspace(args.workspace).history_dir
    rows = query(read_history(directory), prompt=args.prompt, style=args.style,
                 model=args.model, since=args.since, until=args.until, job=args.job, image_id=args.id)
    if args.limit:
        rows = rows.tail(args.limit)
    if args.json:
        for row in rows.astype(object).where(rows.notna(), None).to_dict("records"):  # NaN/NaT are not JSON
            print(json.dumps({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()},
                             allow_nan=False))
        return 0
    print("\t".join(HISTORY_SHOWN))
    for row in rows[HISTORY_SHOWN].itertuples(index=False):
        print("\t".join(v.isoformat(timespec="seconds") if hasattr(v, "isoformat") else str(v) for v in row))
    return 0


def cmd_regenerate(args: argparse.Namespace, load: Callable[[], Params]) -> int:
    from boothline.generation.regenerate import regenerate

    params = load()
    result = regenerate(args.image_id, params, out=args.out, history_dir=args.dir,
                        workspace=Workspace(args.workspace))
    verdict = "pixels identical to the logged image" if result["identical"] else "PIXELS DIFFER from the logged image"
    print(f"{result['file']}: {verdict} ({result['original']})")
    return 0 if result["identical"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boothline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--workspace", default=".", help="directory holding data/ (default: the current one)")
    # --params and --workspace are accepted after the command too (`boothline generate --params x.yaml ...`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=argparse.SUPPRESS, help="params file (default: params.yaml)")
    common.add_argument("--workspace", default=argparse.SUPPRESS, help="directory holding data/ (default: .)")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", parents=[common],
                         help="render prompts x styles x seeds into <workspace>/data/jobs/<job-id>/")
    gen.add_argument("--prompt", action="append", help="a prompt; repeat for several ({subject} = token + class)")
    gen.add_argument("--styles", help="comma-separated style names, or 'all' (default: generate.styles)")
    gen.add_argument("--seeds", type=int, help="N seeds, from generate.seed (or --seed)")
    gen.add_argument("--seed", type=int, help="first seed")
    gen.add_argument("--model", help="model directory, builtin:world, hub id or models:/name@alias "
                                     "(default: the workspace's data/model if it exists, else model.base)")
    gen.add_argument("--job", help="job file (YAML or JSON) with generate keys")
    gen.add_argument("--steps", help="sampling steps; comma-separated to sweep")
    gen.add_argument("--guidance", help="CFG scale; comma-separated to sweep")
    gen.add_argument("--scheduler", help="sampler (dpm++, euler, euler-a, ddim, unipc, ...); comma-separated to sweep")
    gen.add_argument("--batch-size", type=int)
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--negative", help="default negative prompt (merged with each style's)")
    gen.add_argument("--no-quality", action="store_true", help="no quality tokens")
    gen.add_argument("--format", choices=["png", "jpeg", "webp"])
    gen.add_argument("--zip", action="store_true", help="also bundle the images and a metadata CSV into a zip")
    gen.add_argument("--extra-styles", help="a YAML file of your own styles")

    styles = sub.add_parser("styles", parents=[common], help="list styles: name<TAB>description")
    styles.add_argument("--extra-styles", help="a YAML file of your own styles")

    history = sub.add_parser("history", parents=[common], help="query the history log")
    history.add_argument("--prompt", help="text in the prompt (case-insensitive)")
    history.add_argument("--style", help="style name(s), comma-separated")
    history.add_argument("--model", help="text in the model version or URI")
    history.add_argument("--since", help="date or time, inclusive (e.g. 2026-11-23)")
    history.add_argument("--until", help="date or time, inclusive")
    history.add_argument("--job", help="job id")
    history.add_argument("--id", help="image id or prefix")
    history.add_argument("--limit", type=int, help="only the latest N rows")
    history.add_argument("--json", action="store_true", help="full rows as JSON lines")
    history.add_argument("--dir", help="history directory (default: generate.history_dir, else the workspace's)")

    regen = sub.add_parser("regenerate", parents=[common], help="render a logged image again, bit for bit")
    regen.add_argument("image_id")
    regen.add_argument("--out", help="output file (default: data/regenerated/<id>.<ext>)")
    regen.add_argument("--dir", help="history directory (default: generate.history_dir, else the workspace's)")
    add_admin_commands(sub, common)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Callable[[], Params]], int]] = {
    "generate": cmd_generate, "styles": cmd_styles, "history": cmd_history, "regenerate": cmd_regenerate,
    "users": cmd_users, "keys": cmd_keys, "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.basicConfig(level=logging.INFO, format="[boothline] %(message)s")
    try:
        return COMMANDS[args.command](args, lambda: load_params(args.params))
    except USER_ERRORS as err:
        print(str(err), file=sys.stderr)
        return 1
    except BrokenPipeError:  # `boothline history | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
