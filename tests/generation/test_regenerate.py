"""`regenerate` reproduces a logged image's pixels exactly, from its history row alone."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from boothline.errors import StageError
from boothline.errors import ModelError
from boothline.generation.history import read_history
from boothline.generation.planning import build_job
from boothline.generation.regenerate import regenerate
from boothline.generation.renderer import cpu_threads
from boothline.generation.running import run_job
from boothline.io.image_formats import read_metadata

SMALL = {"styles": ["anime"], "seeds": 5, "steps": 2, "width": 32, "height": 32, "batch_size": 3,
         "prompts": ["{subject} on the beach"]}


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_regenerate_reproduces_pixels_exactly(params, workdir):
    p = params({"generate": SMALL})
    job = build_job(p)
    with cpu_threads(1):  # as under `accelerate launch`; regenerate must match it whatever this process uses
        run_job(job)
    rows = read_history("data/history")
    assert sorted(rows.batch_size.tolist()) == [2, 2, 3, 3, 3]  # batches of 3 and a last one of 2
    assert set(rows.cpu_threads) == {1}
    for row in rows.itertuples():
        with cpu_threads(2):  # this process on other threads than the original's
            result = regenerate(row.image_id[:10], p)  # a unique prefix is enough
        assert result["identical"] and result["original"] == row.file
        assert np.array_equal(pixels(result["file"]), pixels(row.file))
        assert read_metadata(result["file"]) == read_metadata(row.file)


def test_regenerate_refuses_a_changed_model(params, workdir):
    model = shutil.copytree(workdir / "data/base/tiny", workdir / "mine")
    card = model / "boothline_model.json"
    card.write_text(json.dumps({"kind": "full", "fingerprint": "fp-1"}))
    p = params({"generate": {**SMALL, "seeds": 1, "model": str(model)}})
    run_job(build_job(p))
    (image_id,) = read_history("data/history").image_id
    card.write_text(json.dumps({"kind": "full", "fingerprint": "fp-2"}))
    with pytest.raises(ModelError, match="was made with model version fp-1, but .*mine is now fp-2"):
        regenerate(image_id, p)


def test_unknown_id(params):
    with pytest.raises(Exception, match="no image with this id"):
        regenerate("0123abcd", params())


def test_regenerate_refuses_another_device_kind_and_unknown_formats(params, workdir, monkeypatch):
    import boothline.generation.regenerate

    p = params({"generate": {**SMALL, "seeds": 1}})
    run_job(build_job(p))
    (image_id,) = read_history("data/history").image_id
    with pytest.raises(StageError, match=r"x.tiff: unknown image format '.tiff' "
                                         r"\(use one of .png, .jpg, .jpeg, .webp\)"):
        regenerate(image_id, p, out="x.tiff")
    assert regenerate(image_id, p, out="again.jpeg")["file"] == "again.jpeg"
    assert Image.open("again.jpeg").format == "JPEG"

    row = boothline.generation.regenerate.find_row(image_id, "data/history")
    monkeypatch.setattr(boothline.generation.regenerate, "find_row", lambda *args: {**row, "device": "cuda:NVIDIA H100"})
    with pytest.raises(StageError, match="was made on cuda:NVIDIA H100, and model.device renders on cpu here"):
        regenerate(image_id, p)
