"""The pretraining stages end to end at toy sizes: render, train every part, export with a manifest, and
load the result through the same path as any checkpoint (`load_pipeline`, `eval.*_model`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import REPO

TOY = {"render": {"images": 64, "heldout_images": 16, "identity_designs": 8, "identity_views": 2,
                  "identity_heldout_designs": 8, "workers": 1},
       "clip": {"steps": 2, "batch_size": 8, "hidden": 32, "layers": 1, "heads": 2, "projection": 16},
       "vae": {"steps": 2, "batch_size": 4, "channels": [32, 32, 32]},
       "identity": {"steps": 2, "designs_per_batch": 4, "hidden": 32, "layers": 1, "heads": 2},
       "unet": {"steps": 2, "batch_size": 4, "channels": [32, 32, 32], "warmup_steps": 1, "checkpoint_every": 1},
       "evaluate": {"prompts": 2, "seeds": 2, "steps": 2}}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from boothline.pretraining.settings import load_pretrain_params
    from stages.pretrain import clip, evaluate, export, identity, render, unet, vae

    root = tmp_path_factory.mktemp("pretrain")
    settings = yaml.safe_load((REPO / "pretrain/params.yaml").read_text())
    for section, values in TOY.items():
        settings[section].update(values)
    settings.update(data_dir=str(root / "data"), out_dir=str(root / "pretrained"))
    (root / "params.yaml").write_text(yaml.safe_dump(settings))
    params = load_pretrain_params(root / "params.yaml")
    for stage in (render, clip, vae, identity, unet, export, evaluate):
        stage.run(params)
    return params


def test_the_datasets_are_rendered_with_captions_and_views(pretrained):
    from boothline.pretraining.arrays import load_dataset

    images, items = load_dataset(pretrained.dataset("scenes"))
    assert images.shape == (64, 64, 64, 3) and items["caption"].str.len().min() > 0
    _, views = load_dataset(pretrained.dataset("identity"))
    assert len(views) == 16 and set(views["view"]) == {0, 1}
    assert views.groupby("index")["design"].nunique().max() == 1  # the views of one design are that design


def test_the_export_loads_like_any_checkpoint_and_is_checked(pretrained, monkeypatch):
    import torch

    from boothline.evaluation.metrics import load_clip, load_dino
    from boothline.params import Model
    from boothline.pipelines import builtin
    from boothline.pipelines.loading import base_model_id, load_pipeline

    out = pretrained.out_dir
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert "world/unet/diffusion_pytorch_model.safetensors" in manifest
    assert all(str(path).endswith((".json", ".safetensors", ".txt")) for path in manifest)
    monkeypatch.setattr(builtin, "PRETRAINED_DIR", out)
    pipe = load_pipeline("builtin:world")
    assert pipe.unet.dtype == torch.float32  # shipped in fp16, loaded in the stage's dtype
    image = pipe("a photo of a red toy on the beach", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
    assert base_model_id(Model(base="builtin:world")) == f"builtin:world@{builtin.manifest_hash(out)}"
    assert load_clip("builtin:world-clip", torch.device("cpu")).embed_texts(["a toy"]).shape[0] == 1
    assert load_dino("builtin:world-identity", torch.device("cpu")).model.config.image_size == 64


def test_the_evaluation_reports_every_factor(pretrained):
    metrics = json.loads((pretrained.data_dir / "eval" / "metrics.json").read_text())
    for block in ("clip_zero_shot_heldout", "base_model_prompted"):
        assert set(metrics[block]) == {"noun", "colour", "context", "style"}
        assert all(0 <= v["accuracy"] <= 1 for v in metrics[block].values() if v["accuracy"] is not None)
    assert 0 <= metrics["identity_retrieval_heldout"]["top1"] <= 1
    assert metrics["vae_psnr_heldout"] > 0
    assert (pretrained.data_dir / "eval" / "base-grid.png").is_file()


@pytest.mark.parametrize("script, args", [
    ("world_class_probe.py", ["--arch", "cnn", "--base-model", "{out}/world", "--params", "{params}"]),
    ("world_class_probe.py", ["--arch", "vit", "--augment"]),
    ("world_clip_refine.py", ["--clip", "{out}/world/clip"]),
], ids=["cnn-and-base-model", "vit-augmented", "clip-refine"])
def test_the_world_experiments_run_on_the_rendered_datasets(pretrained, script, args):
    """WORLD.md's "Where class is lost" figures come from these scripts: at toy size they run end to end."""
    import subprocess
    import sys

    fill = {"out": pretrained.out_dir, "params": pretrained.data_dir.parent / "params.yaml"}
    command = [sys.executable, f"benchmarks/{script}", "--datasets", str(pretrained.data_dir / "datasets"),
               "--steps", "2", "--batch-size", "16", *(a.format(**fill) for a in args)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    if script == "world_clip_refine.py":
        assert set(report["after"]) == set(report["caption_similarity"]) == {"noun", "colour", "context", "style"}
    else:
        assert 0 <= report["curve"][-1]["heldout"] <= 1 and report["steps"] == 2
    if "--base-model" in args:
        judged = report["base_model_class"]
        assert judged["images"] == 4 and sum(judged["predicted"].values()) == 4  # evaluate: 2 prompts x 2 seeds
        assert 0 <= judged["heldout_through_vae"] <= 1


def test_the_encoder_benchmark_scores_the_trained_encoders_before_their_export(pretrained):
    """WORLD.md's "Bigger objects" figures: an experiment's fp32 stage outputs, scored as the evaluate stage scores
    the shipped ones."""
    import subprocess
    import sys

    data = pretrained.data_dir
    command = [sys.executable, "benchmarks/world_encoders.py", "--datasets", str(data / "datasets"),
               "--clip", str(data / "clip"), "--identity", str(data / "identity")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert set(report["clip_zero_shot_heldout"]) == {"noun", "colour", "context", "style"}
    assert all(0 <= accuracy <= 1 for accuracy in report["clip_zero_shot_heldout"].values())
    assert report["identity_designs"] == 8 and 0 <= report["identity_top1_heldout"] <= 1
