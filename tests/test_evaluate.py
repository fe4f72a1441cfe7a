"""The evaluate stage on the tiny model: outputs, null metrics with reasons, encoders, checkpoints, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from boothline.errors import StageError
from boothline.evaluation.inputs import centre_square
from boothline.evaluation.metrics import METRIC_KEYS
from boothline.params import Model, load_params
from boothline.pipelines.loading import base_model_id
from conftest import REPO, repo_params, run_module
from stages import evaluate, validate
from evaluation.test_metrics import build_clip, build_dino

# Small enough for two CPU cores: 2 prompts, 2 sampling steps, 2 seeds for latent fidelity.
FAST_EVAL = {"max_prompts": 2, "images_per_prompt": 1, "steps": 2, "fidelity_seeds": 2, "checkpoints": []}
# A real training run: 2 steps, checkpoints at 1 and 2, no class images.
FAST_TRAIN = {"priors": {"num_images": 0}, "train": {"max_train_steps": 2, "checkpoint_every": 1,
                                                     "keep_checkpoints": 2, "validate_every": 0}}
FINGERPRINT = "0123456789abcdef"
TINY_ID = base_model_id(Model(base="builtin:tiny"))  # "builtin:tiny@v<version>"


def train_project(root: Path, tiny_dir: Path, overrides: dict) -> Path:
    """A project directory validated and trained for real with `overrides` (the cwd is restored after)."""
    import os

    from stages import train

    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "data/subjects/demo", root / "data/subjects/demo")
    shutil.copytree(tiny_dir, root / "data/base/tiny")
    data = repo_params(overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    previous = os.getcwd()
    os.chdir(root)
    try:
        p = load_params("params.yaml")
        validate.run(p)
        train.run(p)
    finally:
        os.chdir(previous)
    return root


@pytest.fixture(scope="session")
def trained_full(tmp_path_factory, tiny_dir) -> Path:
    """A project trained once per session with FAST_TRAIN; copy its data/, never change it. Kept at a fixed
    path of the session's temp root, so modules that import this fixture share it."""
    root = tmp_path_factory.getbasetemp() / "trained-full"
    if not (root / "data/model/boothline_model.json").is_file():
        shutil.rmtree(root, ignore_errors=True)
        train_project(root, tiny_dir, FAST_TRAIN)
    return root


def install_trained_model(tiny_dir: Path, step: int = 100, fingerprint: str = FINGERPRINT) -> dict:
    """A stand-in for the train stage's output: the tiny base, unchanged, as a full fine-tune."""
    card = {"kind": "full", "base": "builtin:tiny", "base_id": TINY_ID, "step": step,
            "fingerprint": fingerprint, "resolution": 64}
    shutil.copytree(tiny_dir, "data/model", dirs_exist_ok=True)
    Path("data/model/boothline_model.json").write_text(json.dumps(card))
    return card


@pytest.fixture
def evaluated_project(params, tiny_dir):
    """load(overrides) -> params of a validated project with a trained model (no encoders, fast settings)."""

    def load(overrides: dict | None = None):
        p = params({"eval": FAST_EVAL, **(overrides or {})})
        validate.run(p)
        install_trained_model(tiny_dir)
        return p

    return load


def test_metrics_json_has_every_key_null_with_reason_and_a_baseline(evaluated_project):
    summary = evaluate.run(evaluated_project())
    report = json.loads(Path("data/eval/metrics.json").read_text())
    for key in ("dino", "clip_i", "clip_t", "pres", "div"):
        assert report[key] is None and report["baseline"][key] is None
        assert "is not set" in report[f"{key}_reason"]
    assert isinstance(report["latent_fidelity"], float)
    assert "latent_fidelity_reason" not in report
    # The stand-in model is the base model: scored on the same prompts and seeds, it scores the same.
    assert report["baseline"]["latent_fidelity"] == report["latent_fidelity"]
    assert report["baseline"]["model"] == TINY_ID
    assert report["steps"] == {"100": {k: v for k, v in report.items() if k in report["steps"]["100"]}}
    assert (report["best_step"], report["best_metric"]) == (100, "latent_fidelity")
    assert report["model"]["fingerprint"] == FINGERPRINT
    assert (report["prompt_set"], report["prompts"]) == ("dreambooth-object", 2)
    assert summary["latent_fidelity"] == report["latent_fidelity"]

    table = pd.read_csv("data/eval/per_prompt.csv")
    assert len(table) == 4 and set(table.model) == {"model", "baseline"}
    assert table.latent_similarity.notna().all() and table.dino.isna().all()
    assert table.category.tolist()[:2] == ["recontextualisation", "property"]
    grid = Image.open("data/eval/grids/model.png")
    assert grid.height > 2 * 64 and grid.width > 64  # a title, seed headers, then a row of tiles per prompt
    assert Path("data/eval/grids/baseline.png").is_file()
    assert Image.open("data/eval/plots/per_category.png").size[0] > 100
    assert Path("data/eval/plots/per_step.png").is_file()


def test_with_encoders_every_metric_is_computed(evaluated_project, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-encoders")
    p = evaluated_project({"eval": {**FAST_EVAL, "images_per_prompt": 2, "baseline": False,
                                    "dino_model": str(build_dino(root / "dino")),
                                    "clip_model": str(build_clip(root / "clip"))}})
    evaluate.run(p)
    report = json.loads(Path("data/eval/metrics.json").read_text())
    for key in METRIC_KEYS:
        assert isinstance(report[key], float), key
        assert f"{key}_reason" not in report
    for key in ("dino", "clip_i", "clip_t", "pres"):
        assert -1.0 <= report[key] <= 1.0
    assert 0.0 <= report["div"] <= 2.0
    assert report["baseline"]["dino"] is None
    assert report["baseline"]["dino_reason"] == "eval.baseline is false"
    table = pd.read_csv("data/eval/per_prompt.csv")
    assert len(table) == 2 and table[["dino", "clip_i", "clip_t", "div"]].notna().all().all()
    assert table.dino.mean() == pytest.approx(report["dino"], abs=1e-5)  # equal group sizes: mean of means
    with Image.open("data/eval/grids/model.png") as grid:
        assert grid.width > 2 * 64 and json.loads(grid.text["boothline"])["seeds"] == [0, 1]


def test_checkpoints_of_a_real_training_run_are_scored_and_the_best_step_named(params, trained_full,
                                                                             tmp_path_factory):
    shutil.copytree(trained_full / "data", "data", dirs_exist_ok=True)
    dino = build_dino(tmp_path_factory.mktemp("eval-dino") / "dino")
    evaluate.run(params({**FAST_TRAIN, "eval": {**FAST_EVAL, "checkpoints": [1, 2], "dino_model": str(dino),
                                                "baseline": False}}))
    report = json.loads(Path("data/eval/metrics.json").read_text())
    assert isinstance(report["dino"], float) and isinstance(report["pres"], float)
    assert report["div"] is None and "images_per_prompt >= 2" in report["div_reason"]  # 1 image per prompt
    assert set(report["steps"]) == {"1", "2"}
    assert report["steps"]["2"]["latent_fidelity"] == report["latent_fidelity"]  # step 2 is the final model
    scores = {int(s): block["latent_fidelity"] for s, block in report["steps"].items()}
    assert report["best_step"] == max(scores, key=scores.get)
    assert Path("data/eval/grids/step-1.png").is_file()
    assert set(pd.read_csv("data/eval/per_prompt.csv").model) == {"model", "step-1"}


def test_a_missing_checkpoint_is_refused_before_any_work(evaluated_project):
    p = evaluated_project({"eval": {**FAST_EVAL, "checkpoints": [7]}})
    with pytest.raises(StageError, match=r"eval.checkpoints: step 7 has no checkpoint .*available: none"):
        evaluate.run(p)
    assert not Path("data/eval").exists()


def test_cli_without_a_trained_model_exits_1_with_the_reason(params, workdir):
    params({"eval": FAST_EVAL})
    proc = run_module("stages.evaluate", cwd=workdir)
    assert proc.returncode == 1
    assert "data/model: no trained model" in proc.stderr and "Traceback" not in proc.stderr


def test_subject_photos_are_scored_as_centred_squares():
    """Encoder processors would squash a wide photo (DINO's resizes straight to 224 x 224); training crops it."""
    wide = Image.new("RGB", (600, 300), "white")
    wide.paste((255, 0, 0), (150, 0, 450, 300))  # the centre square is red, the sides white
    square = centre_square(wide)
    assert square.size == (300, 300) and square.getcolors() == [(300 * 300, (255, 0, 0))]
    assert centre_square(square).size == (300, 300)
