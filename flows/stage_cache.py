"""Cache keys for the pipeline's tasks, read from dvc.yaml, so Prefect reruns a stage exactly when `dvc repro` would.

A stage's key hashes what dvc.yaml declares the stage depends on: its command, the values of the params keys
it lists (after the flow's overrides) and the contents of its deps (code and data, files or whole
directories). A stored result only counts while the stage's outputs on disk are the ones those inputs made:
after each run the stage's key and output hashes are recorded (as dvc.lock does), and the flow asks
`outputs_current`, refreshing the cache of a stage whose outputs are gone or came from other inputs.

Paths that dvc.yaml writes out under data/ (the pipeline's own outputs and inputs) resolve inside the run's
workspace; paths taken from the params (`${subject.instance_dir}`) and other files resolve from the project
directory (the cwd); deps inside the code packages (stages/, boothline/, flows/) are hashed where the running
code was imported from. A key also names its workspace, so two workspaces never share a cached result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from boothline.io.files import atomic_write_text, sha256_file
from boothline.params import Params
from boothline.paths import Workspace

CODE_ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("boothline", "stages", "flows")
DVC_FILE = "dvc.yaml"
DEFAULT_PARAMS_FILE = "params.yaml"
INTERPOLATION = re.compile(r"\$\{\s*([^}\s]+)\s*\}")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageDeclaration:
    """One stage of dvc.yaml, with `${...}` left uninterpolated (values depend on the run's params)."""
    name: str
    cmd: str
    params: tuple[str, ...]  # dotted keys or whole sections of the params file
    deps: tuple[str, ...]  # files and directories, including other params files listed by path
    outputs: tuple[str, ...]  # outs, metrics and plots


def dvc_file() -> Path:
    """The project's dvc.yaml; the one shipped beside the code when the project directory has none."""
    local = Path(DVC_FILE)
    return local if local.is_file() else CODE_ROOT / DVC_FILE


def _paths(entries: list[Any] | None) -> list[str]:
    """dvc.yaml lists a path either bare or as a one-key mapping to its options."""
    paths = []
    for entry in entries or []:
        paths.extend(entry.keys() if isinstance(entry, dict) else [entry])
    return [str(p) for p in paths]


def read_declarations(path: Path | None = None) -> dict[str, StageDeclaration]:
    path = path or dvc_file()
    if not path.is_file():
        return {}
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    declarations = {}
    for name, spec in stages.items():
        keys, param_files = [], []
        for entry in spec.get("params") or []:
            if not isinstance(entry, dict):
                keys.append(str(entry))
                continue
            for file, file_keys in entry.items():
                if file == DEFAULT_PARAMS_FILE and file_keys:
                    keys.extend(str(k) for k in file_keys)
                else:  # another params file (or all of params.yaml): its whole content counts
                    param_files.append(str(file))
        outputs = _paths(spec.get("outs")) + _paths(spec.get("metrics")) + _paths(spec.get("plots"))
        declarations[name] = StageDeclaration(name=name, cmd=str(spec.get("cmd", "")), params=tuple(keys),
                                              deps=tuple(_paths(spec.get("deps")) + param_files),
                                              outputs=tuple(outputs))
    return declarations


def param_value(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def interpolate(text: str, values: dict[str, Any]) -> str:
    return INTERPOLATION.sub(lambda m: str(param_value(values, m.group(1))), text)


def locate(declared: str, values: dict[str, Any], workspace: Workspace) -> Path:
    """Where a dep or output dvc.yaml declares is, for this run (see the module docstring)."""
    path = Path(interpolate(declared, values))
    if path.is_absolute() or INTERPOLATION.search(declared):
        return path
    if path.parts and path.parts[0] in CODE_PACKAGES:
        return CODE_ROOT / path
    return workspace.resolve(path) if path.parts and path.parts[0] == "data" else path


# (path, inode, size, mtime) -> sha256: a multi-GB model directory is read once per process, not once per stage.
_file_hashes: dict[tuple[str, int, int, int], str] = {}


def file_hash(path: Path) -> str:
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if memo_key not in _file_hashes:
        _file_hashes[memo_key] = sha256_file(path)
    return _file_hashes[memo_key]


def content_hash(path: Path) -> str:
    """sha256 of a file, of a directory's (relative path, file hash) list, or "missing"."""
    if path.is_file():
        return file_hash(path)
    if not path.is_dir():
        return "missing"
    listing = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")  # as .dvcignore has it: bytecode is not code
        for name in sorted(f for f in files if not f.endswith(".pyc")):
            file = Path(root) / name
            listing.append((file.relative_to(path).as_posix(), file_hash(file)))
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def stage_key(stage: str, params: Params, workspace: Workspace = Workspace(),
              declarations: dict[str, StageDeclaration] | None = None) -> str | None:
    """What the stage reads, hashed; None (never cached) for a stage dvc.yaml does not declare."""
    declaration = (declarations if declarations is not None else read_declarations()).get(stage)
    if declaration is None:
        log.warning("%s: no stage %r in %s, so it is not cached and always runs", dvc_file(), stage, DVC_FILE)
        return None
    values = params.model_dump(mode="json")
    deps = {dep: content_hash(locate(dep, values, workspace)) for dep in declaration.deps}
    fingerprint = {"stage": stage, "cmd": declaration.cmd, "deps": deps, "workspace": str(workspace.root.resolve()),
                   "params": {key: param_value(values, key) for key in declaration.params}}
    return f"{stage}-{hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()}"


def output_hashes(stage: str, params: Params, workspace: Workspace) -> dict[str, str] | None:
    """The content hash of every output dvc.yaml declares for the stage (None: not declared)."""
    declaration = read_declarations().get(stage)
    if declaration is None:
        return None
    values = params.model_dump(mode="json")
    return {out: content_hash(locate(out, values, workspace)) for out in declaration.outputs}


def _records(workspace: Workspace) -> dict[str, dict]:
    try:
        return json.loads(workspace.stage_outputs_record.read_text())
    except (OSError, ValueError):
        return {}


def record_outputs(stage: str, key: str | None, params: Params, workspace: Workspace = Workspace()) -> None:
    """After a stage ran: the inputs' key and the outputs it left, as dvc.lock records them for `dvc repro`."""
    records = _records(workspace)
    records[stage] = {"key": key, "outputs": output_hashes(stage, params, workspace)}
    atomic_write_text(workspace.stage_outputs_record, json.dumps(records, indent=2, sort_keys=True) + "\n")


def outputs_current(stage: str, params: Params, workspace: Workspace = Workspace()) -> bool:
    """Whether the stage's outputs on disk are the ones its present inputs produced. A stored result alone is
    not enough: after runs with other params (or `dvc repro`), the files may come from other inputs."""
    outputs = output_hashes(stage, params, workspace)
    if outputs is None or "missing" in outputs.values():
        return False
    record = _records(workspace).get(stage) or {}
    return record.get("key") == stage_key(stage, params, workspace) and record.get("outputs") == outputs


@dataclass
class StageInputs(CachePolicy):
    """Prefect cache policy for a task `fn(params: Params, workspace: Workspace)` that runs the dvc.yaml stage."""
    stage: str = ""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        return stage_key(self.stage, inputs["params"], inputs["workspace"])
