"""Every project module a stage runs is one of its DVC deps, so editing it reruns the stage (`dvc repro` and the
Prefect stage cache, which reads the same lists). The imports are read from the source, function-level ones
included, and followed through every project module they reach."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import REPO

PACKAGES = ("boothline", "stages")
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
PRETRAIN_STAGES = yaml.safe_load((REPO / "pretrain/dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The source of a project module or package, or None for anything outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: Path) -> set[str]:
    """Every module an import statement anywhere in `source` names, with its parent packages (the project
    imports absolutely: `from boothline.x import y`, where y may be a module too)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 2)}


def reached_files(entry: Path) -> set[Path]:
    """`entry` and every project module it imports, directly or through other project modules."""
    seen, todo = set(), [entry]
    while todo:
        source = todo.pop()
        if source in seen:
            continue
        seen.add(source)
        todo.extend(file for name in imported_modules(source) if (file := module_file(name)))
    return seen


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    roots = [(REPO / dep).resolve() for dep in deps]
    return sorted(str(file.relative_to(REPO)) for file in files
                  if not any(file == root or root in file.parents for root in roots))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_runs_is_one_of_its_deps(stage):
    deps = [next(iter(dep)) if isinstance(dep, dict) else dep for dep in STAGES[stage]["deps"]]
    missing = uncovered(reached_files(REPO / "stages" / f"{stage}.py"), deps)
    assert not missing, f"dvc.yaml: stage {stage} runs {', '.join(missing)} but does not list it in its deps"


@pytest.mark.parametrize("stage", sorted(PRETRAIN_STAGES))
def test_every_module_a_pretraining_stage_runs_is_one_of_its_deps(stage):
    deps = [next(iter(dep)) if isinstance(dep, dict) else dep for dep in PRETRAIN_STAGES[stage]["deps"]]
    missing = uncovered(reached_files(REPO / "stages" / "pretrain" / f"{stage}.py"), deps)
    assert not missing, f"pretrain/dvc.yaml: stage {stage} runs {', '.join(missing)} but does not list it in its deps"


def test_pretraining_never_depends_on_the_pipeline_params():
    """Editing the pipeline's params code must not retrain the world model (hours of CPU)."""
    for stage in ("render", "clip", "vae", "identity", "unet", "export"):
        reached = {str(f.relative_to(REPO)) for f in reached_files(REPO / "stages" / "pretrain" / f"{stage}.py")}
        assert not [f for f in reached if f.startswith(("boothline/params", "boothline/training"))], stage


def test_the_walk_finds_function_level_and_package_imports():
    reached = {str(file.relative_to(REPO)) for file in reached_files(REPO / "stages" / "evaluate.py")}
    assert "boothline/training/checkpoints.py" in reached  # imported inside a function
    assert "boothline/__init__.py" in reached  # every package import runs it
