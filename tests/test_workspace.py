"""Two subjects in two workspaces: the whole pipeline for each, one after the other in one process and at the
same time in two processes, each writing only under its own workspace (and nothing into the project)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from PIL import Image, ImageOps

from boothline.params import deep_merge, load_params
from boothline.paths import Workspace
from conftest import REPO, repo_params

STAGES = ("validate", "priors", "train", "evaluate", "register", "generate")
SMALL = {"priors": {"num_images": 2, "steps": 2, "batch_size": 2},
         "train": {"max_train_steps": 2, "checkpoint_every": 1, "validate_every": 2, "validation_steps": 1,
                   "validation_seeds": 1},
         "eval": {"max_prompts": 1, "steps": 2, "fidelity_seeds": 1, "checkpoints": [1], "baseline": False},
         "generate": {"prompts": ["{subject} on a table"], "styles": ["cinematic", "pixel-art"], "seeds": 1,
                      "steps": 2}}
RUN_PIPELINE = """
import sys
from boothline.params import load_params
from boothline.paths import Workspace
for stage in {stages!r}:
    __import__(f"stages.{{stage}}", fromlist=["run"]).run(load_params(sys.argv[1]), Workspace(sys.argv[2]))
"""


def write_subjects(project: Path) -> dict[str, Path]:
    """The demo toy, and a second subject (the same photos mirrored and tinted), each with its params file."""
    other = project / "photos/other"
    other.mkdir(parents=True)
    for photo in sorted((project / "data/subjects/demo").iterdir()):
        with Image.open(photo) as image:
            tinted = Image.blend(ImageOps.mirror(image.convert("RGB")), Image.new("RGB", image.size, "teal"), 0.3)
            tinted.save(other / f"{photo.stem}.png")
    base = repo_params()
    files = {}
    for name, subject in (("demo", {"instance_dir": "data/subjects/demo"}),
                          ("other", {"instance_dir": "photos/other", "token": "zwx"})):
        files[name] = project / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(deep_merge(base, {**SMALL, "subject": subject})))
    return files


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def produced_here(project: Path) -> list[str]:
    """What a pipeline left in the project itself, outside the inputs and the shared caches."""
    shared = {"data/subjects", "data/base", "data/cache", "photos", "demo.yaml", "other.yaml", "params.yaml",
              "workspaces"}
    return sorted(str(p.relative_to(project)) for p in project.rglob("*")
                  if p.is_file() and not any(str(p.relative_to(project)).startswith(s) for s in shared))


def check_outputs(workspace: Path, token: str) -> None:
    ws = Workspace(workspace)
    for path in (ws.validated_manifest, ws.priors_manifest, ws.model_dir / "boothline_model.json",
                 ws.checkpoints / "step-1", ws.validation_dir / "step-2.png", ws.train_summary, ws.eval_metrics,
                 ws.registry_file, workspace / "registry/mlflow.db", ws.generations_dir / "summary.json"):
        assert path.exists(), f"{path}: missing"
    assert all(Path(f).is_relative_to(workspace) for f in
               __import__("pandas").read_parquet(ws.priors_manifest)["file"])
    assert f"{token} toy" in (ws.model_dir / "boothline_model.json").read_text()


def workspaces(project: Path, names, mlflow_template: Path) -> dict[str, Path]:
    """An empty workspace per subject, its MLflow store a copy of the migrated template (migrations take seconds)."""
    spaces = {name: project / "workspaces" / name for name in names}
    for space in spaces.values():
        (space / "registry").mkdir(parents=True)
        shutil.copy(mlflow_template, space / "registry/mlflow.db")
    return spaces


def test_two_workspaces_one_after_the_other_in_one_process(workdir, mlflow_template):
    files = write_subjects(workdir)
    spaces = workspaces(workdir, files, mlflow_template)
    snapshots = {}
    for name, params_file in files.items():
        params = load_params(params_file)
        for stage in STAGES:
            __import__(f"stages.{stage}", fromlist=["run"]).run(params, Workspace(spaces[name]))
        snapshots[name] = tree(spaces[name])
    assert tree(spaces["demo"]) == snapshots["demo"]  # the second subject's run left the first one's alone
    check_outputs(spaces["demo"], "sks")
    check_outputs(spaces["other"], "zwx")
    assert produced_here(workdir) == []
    names = {name: yaml.safe_load((space / "data/registry.json").read_text())["model_name"]
             for name, space in spaces.items()}
    assert names == {"demo": "boothline-demo", "other": "boothline-other"}


def test_two_workspaces_at_the_same_time_in_two_processes(workdir, mlflow_template):
    files = write_subjects(workdir)
    spaces = workspaces(workdir, files, mlflow_template)
    code = RUN_PIPELINE.format(stages=STAGES)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # two processes on the same cores
    procs = {name: subprocess.Popen([sys.executable, "-c", code, str(files[name]), str(spaces[name])], cwd=workdir,
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in files}
    outputs = {name: proc.communicate(timeout=600)[0] for name, proc in procs.items()}
    assert all(proc.returncode == 0 for proc in procs.values()), outputs
    check_outputs(spaces["demo"], "sks")
    check_outputs(spaces["other"], "zwx")
    assert produced_here(workdir) == []
    # Each workspace names only its own files: nothing of one points into the other.
    for name, space in spaces.items():
        other = spaces["other" if name == "demo" else "demo"]
        for record in ("data/registry.json", "data/eval/metrics.json", "data/train/summary.json"):
            assert str(other) not in (space / record).read_text()
    shutil.rmtree(workdir / "workspaces")


def test_the_stage_entry_takes_a_workspace(workdir):
    from conftest import run_module

    run_module("stages.validate", "--workspace", "work/demo", cwd=workdir, check=True)
    assert Workspace(workdir / "work/demo").validated_manifest.is_file()
    assert not (workdir / "data/validated").exists()
