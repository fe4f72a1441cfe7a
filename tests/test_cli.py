"""The `boothline` command end to end: styles, generate, history, regenerate, a killed job, accelerate shards."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from PIL import Image

from boothline.cli import main
from boothline.generation.history import read_history
from boothline.generation.renderer import cpu_threads
from boothline.generation.styles import load_styles
from boothline.io.files import sha256_file
from conftest import REPO, run_module

TINY_JOB = ["--styles", "anime,manga", "--seeds", "2", "--steps", "2", "--width", "32", "--height", "32"]


def test_styles_lists_name_tab_description_without_header(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no project here: the registry still lists
    assert main(["styles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    styles = load_styles()
    assert lines == [f"{s.name}\t{s.description}" for s in styles.values()]
    assert lines[0].startswith("photographic\t") and len(lines) >= 24


def test_generate_history_regenerate_end_to_end(workdir, capsys):
    proc = run_module("boothline.cli", "generate", "--prompt", "{subject} on the beach", *TINY_JOB,
                      "--guidance", "5,9", "--model", "builtin:tiny", cwd=workdir, check=True)
    job_dir = Path(proc.stdout.split(":")[0])
    assert job_dir.parent == Path("data/jobs") and "8 images (8 rendered, 0 reused)" in proc.stdout
    assert (workdir / job_dir / "sks-toy-on-the-beach-sheet.png").is_file()
    pngs = sorted((workdir / job_dir).rglob("*-seed*.png"))
    assert len(pngs) == 8

    rows = read_history(workdir / "data/history")
    assert len(rows) == 8 and rows.image_id.is_unique and set(rows.guidance) == {5.0, 9.0}
    assert all(sha256_file(workdir / f) == s for f, s in zip(rows.file, rows.sha256))

    assert main(["history", "--style", "manga", "--prompt", "BEACH"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["created_at", "image_id", "style", "seed", "model_version", "file", "prompt"]
    assert len(lines) == 1 + 4 and all("\tmanga\t" in line for line in lines[1:])
    assert main(["history", "--since", "2000-01-01", "--until", "2000-12-31"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # header only

    image_id = rows.image_id.iloc[3]
    assert main(["regenerate", image_id, "--out", "again.png"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("again.png: pixels identical to the logged image")
    assert Image.open("again.png").tobytes() == Image.open(rows.file.iloc[3]).tobytes()

    rerun = run_module("boothline.cli", "generate", "--prompt", "{subject} on the beach", *TINY_JOB,
                       "--guidance", "5,9", cwd=workdir, check=True)
    assert "(0 rendered, 8 reused)" in rerun.stdout
    assert len(read_history(workdir / "data/history")) == 8  # nothing logged twice


def test_user_errors_exit_1_without_traceback(workdir, capsys):
    assert main(["generate", "--prompt", "x", "--styles", "anime,nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown style(s) nope; known styles: photographic" in err and "Traceback" not in err
    assert main(["regenerate", "ffff"]) == 1
    assert "no image with this id" in capsys.readouterr().err
    assert not Path("data/jobs").exists()


def test_killed_job_then_rerun_yields_exactly_the_full_set(workdir):
    args = ["generate", "--prompt", "{subject} in the snow", "--styles", "anime,manga", "--seeds", "8",
            "--batch-size", "1", "--steps", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "boothline.cli", *args], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(Path("data/jobs").rglob("*-seed*.png"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = list(Path("data/jobs").rglob("*-seed*.png"))
    assert 2 <= len(finished) < 16, "the job must be killed part-way"
    for png in finished:
        Image.open(png).load()  # no half-written PNG
    logged = read_history("data/history") if Path("data/history").exists() else pd.DataFrame({"file": []})
    assert set(logged.file) <= {str(p) for p in finished}  # no row without its image

    assert main(args) == 0
    rows = read_history("data/history")
    files = sorted(str(p) for p in Path("data/jobs").rglob("*-seed*.png"))
    assert len(rows) == 16 and rows.image_id.is_unique and sorted(rows.file) == files
    assert all(sha256_file(f) == s for f, s in zip(rows.file, rows.sha256))
    assert not [p for p in Path("data").rglob(".*.tmp") if "history" not in p.parts]


def test_accelerate_two_processes_render_the_same_images_as_one(workdir):
    args = ["generate", "--prompt", "{subject} on the beach", *TINY_JOB, "--batch-size", "1"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "boothline.cli"]
    proc = subprocess.run(launch + args, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = {p.name: p.read_bytes() for p in Path("data/jobs").rglob("*.png")}
    rows = read_history("data/history")
    assert len(rows) == 4 and rows.image_id.is_unique
    writers = {f.name.split("-")[2] for f in Path("data/history").glob("part-*.parquet")}  # part-<time>-<pid>-..
    assert len(writers) == 2  # each process rendered and logged its own shard

    for path in ("data/jobs", "data/history"):
        shutil.rmtree(path)
    with cpu_threads(1):  # what each launched process uses (OMP_NUM_THREADS=1): it changes the last bits
        assert main(args) == 0
    one = {p.name: p.read_bytes() for p in Path("data/jobs").rglob("*.png")}
    assert one.keys() == two.keys() and len(one) == 4 + 1  # images and the contact sheet
    assert one == two  # same batches, same pixels, same metadata: identical files


def test_history_json_is_strict_json_with_nulls(tmp_path, capsys):
    from boothline.generation.history import append_rows
    from generation.test_history import row

    append_rows([row(0), row(1, seconds=None)], tmp_path)  # a resumed run logs unknown timings as null

    def no_constants(name: str):
        raise ValueError(f"{name} is not JSON")

    assert main(["history", "--dir", str(tmp_path), "--json"]) == 0
    records = [json.loads(line, parse_constant=no_constants) for line in capsys.readouterr().out.splitlines()]
    assert [r["seconds"] for r in records] == [0.25, None] and [r["seed"] for r in records] == [0, 1]
    assert records[0]["created_at"] == "2026-11-20T12:00:00+00:00"


def test_every_command_works_in_a_workspace(workdir, capsys):
    job = ["--workspace", "work/rex", "--prompt", "{subject} in the snow", "--styles", "anime", "--seeds", "1",
           "--steps", "2", "--width", "32", "--height", "32", "--model", "builtin:tiny"]
    assert main(["generate", *job]) == 0
    out = capsys.readouterr().out
    assert out.startswith("work/rex/data/jobs/job-") and "1 images (1 rendered" in out
    assert main(["history", "--workspace", "work/rex", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["file"].startswith("work/rex/data/jobs/")
    assert main(["regenerate", row["image_id"], "--workspace", "work/rex"]) == 0
    assert Path(f"work/rex/data/regenerated/{row['image_id']}.png").is_file()
    assert not (workdir / "data/jobs").exists() and not (workdir / "data/history").exists()
