"""The generate stage: data/generations/ rendered, reused, pruned; sharded under accelerate; no orchestration imports."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from boothline.entry import run_stage
from boothline.generation.renderer import cpu_threads
from conftest import REPO
from stages import generate

OUT = Path("data/generations")
SMALL = {"generate": {"styles": ["anime", "manga"], "seeds": 2, "steps": 2, "width": 32, "height": 32,
                      "batch_size": 3}}


def files() -> dict[str, bytes]:
    return {str(p.relative_to(OUT)): p.read_bytes() for p in OUT.rglob("*") if p.is_file()}


def test_stage_renders_reuses_and_prunes(params, workdir):
    summary = generate.run(params(SMALL))
    assert (summary["images"], summary["rendered"], summary["reused"]) == (4, 4, 0)
    first = files()
    assert sorted(first) == sorted(["sks-toy-sitting-on-a-wooden-table-sheet.png", "summary.json"] +
                                   [f"sks-toy-sitting-on-a-wooden-table/{Path(f).name}" for f in summary["files"].values()])
    assert not Path("data/history").exists()  # the stage writes its DVC output only

    (OUT / "sks-toy-sitting-on-a-wooden-table/.anime-seed0-x.png.tmp").write_bytes(b"half")
    again = generate.run(params(SMALL))
    assert (again["rendered"], again["reused"]) == (0, 4)
    assert files() == first  # same bytes, summary included: the output is deterministic

    fewer = generate.run(params({"generate": {**SMALL["generate"], "styles": ["anime"], "prompts": ["{subject}"]}}))
    assert fewer["images"] == 2
    assert sorted(files()) == sorted(["sks-toy-sheet.png", "summary.json"] +
                                     [f"sks-toy/{Path(f).name}" for f in fewer["files"].values()])
    assert json.loads((OUT / "summary.json").read_text())["styles"] == ["anime"]


def test_bad_style_fails_before_rendering_and_keeps_outputs(write_params, workdir, capsys):
    write_params({"generate": {**SMALL["generate"], "styles": ["anime", "no-such-style"]}})
    assert run_stage("generate", generate.run, []) == 1
    assert "unknown style(s) no-such-style" in capsys.readouterr().err
    assert not OUT.exists()


LAUNCHED = """
import runpy, sys
sys.argv = ["stages.generate"]
try:
    runpy.run_module("stages.generate", run_name="__main__")
except SystemExit as done:
    assert done.code == 0, done.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "prefect", "dvc"))
assert not loaded, loaded
"""


def test_two_accelerate_processes_render_what_one_does_importing_no_orchestration(params, workdir):
    with cpu_threads(1):  # what each launched process uses (OMP_NUM_THREADS=1): it changes the last bits
        generate.run(params({"generate": {**SMALL["generate"], "batch_size": 1}}))
    one = files()
    shutil.rmtree(OUT)
    script = workdir / "launched.py"
    script.write_text(LAUNCHED)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    proc = subprocess.run(launch, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert files() == one
