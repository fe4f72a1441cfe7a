"""`python -m flows.serve`: serve the deployments of prefect.yaml from this process, without a work pool.

Same names, schedules, parameters and limits as `prefect deploy --all` creates (both read prefect.yaml), so
the two ways cannot drift apart. Run it in the project directory, against a running Prefect server
(`prefect server start`; PREFECT_API_URL set): the server keeps the schedules and this process runs each
flow run in a subprocess here. It also creates the `gpu` tag concurrency limit if the server has none.

    python -m flows.serve [--prefect-yaml FILE] [--names a,b] [--gpu-slots N] [--limit N]
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import yaml
from prefect import Flow, serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Schedule

from flows.gpu import DEFAULT_GPU_SLOTS, ensure_gpu_limit
from flows.stage_cache import CODE_ROOT

PREFECT_YAML = "prefect.yaml"


def prefect_yaml() -> Path:
    """The project's prefect.yaml; the one shipped beside the code when the project directory has none."""
    local = Path(PREFECT_YAML)
    return local if local.is_file() else CODE_ROOT / PREFECT_YAML


def load_flow(entrypoint: str) -> Flow:
    """The flow object of `flows.batch.batch_generate` (or `flows/batch.py:batch_generate`), imported as a
    module of the installed package."""
    if ":" in entrypoint:
        file, _, name = entrypoint.partition(":")
        module = Path(file).with_suffix("").as_posix().replace("/", ".")
    else:
        module, _, name = entrypoint.rpartition(".")
    return getattr(importlib.import_module(module), name)


def deployments(path: Path | None = None, names: list[str] | None = None) -> list[RunnerDeployment]:
    config = yaml.safe_load((path or prefect_yaml()).read_text())
    known = [spec["name"] for spec in config["deployments"]]
    if names and (unknown := sorted(set(names) - set(known))):
        raise SystemExit(f"--names: no deployment {', '.join(unknown)} in prefect.yaml (known: {', '.join(known)})")
    return [
        load_flow(spec["entrypoint"]).to_deployment(
            name=spec["name"],
            description=spec.get("description"),
            tags=spec.get("tags"),
            parameters=spec.get("parameters") or {},
            schedules=[Schedule(**schedule) for schedule in spec.get("schedules") or []],
            concurrency_limit=spec.get("concurrency_limit"),
            # by module path, so the served runs import the installed package from any project directory
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for spec in config["deployments"] if not names or spec["name"] in names
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefect-yaml", type=Path, help="deployments file (default: ./prefect.yaml)")
    parser.add_argument("--names", help="only these deployments, comma-separated (default: all)")
    parser.add_argument("--gpu-slots", type=int, default=DEFAULT_GPU_SLOTS,
                        help="slots of the `gpu` tag limit, if the server has no such limit yet (default: 1)")
    parser.add_argument("--limit", type=int, help="at most this many flow runs at once in this process")
    args = parser.parse_args(argv)
    slots = ensure_gpu_limit(args.gpu_slots)
    print(f"gpu tag concurrency limit: {slots} slot(s)")
    names = [n.strip() for n in args.names.split(",") if n.strip()] if args.names else None
    serve(*deployments(args.prefect_yaml, names), limit=args.limit)


if __name__ == "__main__":
    main()
