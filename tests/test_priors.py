"""Class priors: rendered once, reused on rerun, resumed after a kill, regenerated when their params change."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from boothline.errors import StageError
from boothline.params import load_params
from boothline.pipelines.loading import base_model_id
from boothline.training import priors as class_priors
from conftest import REPO
from stages import priors

OUT = Path("data/priors")


def pngs() -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in OUT.glob("prior-*.png")}


def test_render_then_reuse(params):
    p = params({"priors": {"num_images": 3, "steps": 2}})
    assert priors.run(p) == {"images": 3, "rendered": 3, "reused": 0, "user": 0}
    first = pngs()
    assert priors.run(p) == {"images": 3, "rendered": 0, "reused": 3, "user": 0}
    assert pngs() == first  # the very same files, not rewrites
    manifest = pd.read_parquet(OUT / "manifest.parquet")
    assert manifest.seed.tolist() == [0, 1, 2]
    assert set(manifest.prompt) == {"a photo of a toy"}
    assert set(manifest.model_id) == {base_model_id(p.model)}
    assert Image.open(manifest.file[0]).size == (64, 64)


def test_changed_params_regenerate_and_stale_files_go(params):
    priors.run(params({"priors": {"num_images": 3, "steps": 2}}))
    old = pngs()
    summary = priors.run(params({"priors": {"num_images": 2, "steps": 2, "prompt": "a studio photo of a {class_noun}"}}))
    assert summary["rendered"] == 2
    assert not set(pngs()) & set(old)
    assert len(pngs()) == 2
    grown = priors.run(params({"priors": {"num_images": 4, "steps": 2, "prompt": "a studio photo of a {class_noun}"}}))
    assert (grown["reused"], grown["rendered"]) == (2, 2)


def test_killed_run_keeps_finished_images_and_renders_only_the_rest(params, workdir):
    params({"priors": {"num_images": 12, "steps": 2, "batch_size": 1}})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "stages.priors"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(pngs()) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = pngs()
    assert 2 <= len(done) < 12, "the run must be killed part-way"
    for name in done:
        Image.open(OUT / name).load()  # every file that exists is a whole PNG

    summary = priors.run(load_params("params.yaml"))
    assert (summary["reused"], summary["rendered"]) == (len(done), 12 - len(done))
    after = pngs()
    assert {n: after[n] for n in done} == done  # finished images were not re-rendered
    assert not list(OUT.glob(".*.tmp"))

    resumed = pd.read_parquet(OUT / "manifest.parquet").sha256.tolist()
    for f in OUT.glob("prior-*.png"):
        f.unlink()
    priors.run(load_params("params.yaml"))
    assert pd.read_parquet(OUT / "manifest.parquet").sha256.tolist() == resumed  # same as uninterrupted


def test_user_class_images_topped_up(params, workdir):
    class_dir = workdir / "classes"
    class_dir.mkdir()
    for i in range(2):
        Image.new("RGB", (80, 80), (40 * i, 90, 200)).save(class_dir / f"c{i}.png")
    summary = priors.run(params({"priors": {"num_images": 3, "steps": 2, "class_dir": str(class_dir)}}))
    assert summary == {"images": 3, "rendered": 1, "reused": 0, "user": 2}
    manifest = pd.read_parquet(OUT / "manifest.parquet")
    assert sorted(manifest.source) == ["generated", "user", "user"]


def test_bad_user_class_image_fails_before_rendering(params, workdir):
    class_dir = workdir / "classes"
    class_dir.mkdir()
    (class_dir / "x.png").write_bytes(b"not a png")
    with pytest.raises(StageError, match="classes/x.png: not an image"):
        priors.run(params({"priors": {"num_images": 3, "class_dir": str(class_dir)}}))
    assert not pngs()


def test_priors_render_through_the_compiled_fast_path(params, compile_for_tests):
    import numpy as np
    import torch

    settings = {"priors": {"num_images": 3, "steps": 2, "batch_size": 3}}
    priors.run(params(settings))
    eager = {name: np.asarray(Image.open(OUT / name)).astype(int) for name in pngs()}
    for name in eager:
        (OUT / name).unlink()
    priors.run(params({**settings, "model": {"compile": True}}))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2 and compile_for_tests() == {}
    assert max(np.abs(np.asarray(Image.open(OUT / n)).astype(int) - px).max() for n, px in eager.items()) <= 2


def test_a_resumed_run_renders_in_the_same_batches_as_an_uninterrupted_one(params):
    p = params({"priors": {"num_images": 8, "steps": 2, "batch_size": 4}})
    priors.run(p)
    uninterrupted = pd.read_parquet(OUT / "manifest.parquet").sha256.tolist()
    files = sorted(OUT.glob("prior-*.png"))
    for lost in files[1:4]:  # a kill while the first batch's files were being written
        lost.unlink()
    assert priors.run(p) == {"images": 8, "rendered": 3, "reused": 5, "user": 0}
    assert pd.read_parquet(OUT / "manifest.parquet").sha256.tolist() == uninterrupted  # bit for bit


def test_another_dtype_or_variant_renders_other_files(params):
    p = params({"priors": {"num_images": 1}})
    request = class_priors.planned_requests(p, 1)[0]
    names = {class_priors.file_name(params(overrides), 0, request)
             for overrides in ({}, {"model": {"dtype": "bf16"}}, {"model": {"variant": "fp16"}})}
    assert len(names) == 3
