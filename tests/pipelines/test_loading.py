"""The tiny base model builds offline, saves in diffusers format and loads like any checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from boothline.errors import ModelError
from boothline.params import Model
from boothline.pipelines.loading import (base_model_id, load_pipeline, make_scheduler, pick_dtype, stage_device,
                                         use_deterministic_kernels)
from boothline.pipelines.sampling import Request, render
from boothline.pipelines.tiny import build_tokenizer
from conftest import REPO


def test_saved_in_diffusers_format_with_safetensors(tiny_dir):
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert (tiny_dir / "unet/diffusion_pytorch_model.safetensors").is_file()
    assert (tiny_dir / "text_encoder/model.safetensors").is_file()
    assert not list(tiny_dir.rglob("*.bin"))


def test_build_is_identical_every_time(tmp_path, tiny_dir):
    from boothline.pipelines.tiny import build_tiny_pipeline

    again = build_tiny_pipeline(tmp_path / "again")
    for f in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
              "text_encoder/model.safetensors", "tokenizer/tokenizer.json"):
        assert (again / f).read_bytes() == (tiny_dir / f).read_bytes(), f


def test_tokenizer_is_the_same_in_every_process():
    """The `tokenizers` BPE trainer breaks ties in hash order; boothline's merges must not depend on it."""
    script = ("from boothline.pipelines.tiny import build_tokenizer; t = build_tokenizer(); "
              "print(len(t), t('a photo of sks dog on the beach').input_ids)")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(outputs) == 1, outputs


def test_tokenizer_never_maps_to_unknown():
    tok = build_tokenizer()
    ids = tok("A photo of sks dog, Ünïcode ☃ 42!").input_ids
    assert tok.unk_token_id not in ids[1:-1]
    assert len(tok("word " * 200, truncation=True, max_length=77).input_ids) == 77


def test_loads_through_from_pretrained_and_generates_deterministically(tiny_dir):
    pipe = load_pipeline(str(tiny_dir), scheduler="dpm++")
    req = Request("a photo of sks toy", seed=7, steps=4, width=64, height=64)
    [(_, a)], [(_, b)] = list(render(pipe, [req])), list(render(pipe, [req]))
    other = list(render(pipe, [Request("a photo of sks toy", seed=8, steps=4, width=64, height=64)]))[0][1]
    assert a.size == (64, 64)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(other))


def test_builtin_source_builds_into_data_base(workdir):
    pipe = load_pipeline("builtin:tiny")
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert base_model_id(Model(base="builtin:tiny")).startswith("builtin:tiny@v")


def test_sdxl_and_other_pipelines_fail_clearly(tmp_path, tiny_dir):
    import shutil

    fake = tmp_path / "sdxl"
    shutil.copytree(tiny_dir, fake)
    index = json.loads((fake / "model_index.json").read_text())
    index["_class_name"] = "StableDiffusionXLPipeline"
    (fake / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="StableDiffusionXLPipeline.*SDXL and other pipeline classes are not supported"):
        load_pipeline(str(fake))


def test_missing_sources_fail_clearly(tmp_path):
    with pytest.raises(ModelError, match="no such model directory or checkpoint file"):
        load_pipeline(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="not a diffusers pipeline directory"):
        load_pipeline(str(tmp_path))
    (tmp_path / "v1-5.ckpt").write_bytes(b"a pickle")
    with pytest.raises(ModelError, match=r"v1-5.ckpt: a pickled checkpoint, .* from safetensors only"):
        load_pipeline(str(tmp_path / "v1-5.ckpt"))
    with pytest.raises(ModelError, match="cannot load from the model hub"):
        load_pipeline("nobody-here/no-such-model")  # HF_HUB_OFFLINE=1: fails at once


def test_schedulers_and_dtypes(tiny_dir):
    pipe = load_pipeline(str(tiny_dir))
    for name in ("dpm++", "euler", "euler-a", "ddim", "unipc"):
        assert make_scheduler(name, pipe.scheduler.config).config.num_train_timesteps == 1000
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_single_file_checkpoint_loads_and_matches_the_directory(tmp_path, tiny_dir):
    from boothline.training.export import full_model_state, save_single_file

    directory = load_pipeline(str(tiny_dir), scheduler="dpm++")
    path = save_single_file(tmp_path / "tiny.safetensors", full_model_state(directory, "fp32"), {})
    model = Model(base=str(path), single_file_config=str(tiny_dir))
    single = load_pipeline(str(path), model=model, scheduler="dpm++")
    req = Request("a photo of sks toy", seed=3, steps=3, width=64, height=64)
    a, b = (np.asarray(list(render(p, [req]))[0][1]) for p in (directory, single))
    assert np.array_equal(a, b)


def test_sdxl_single_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "sdxl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ModelError, match="is an SDXL checkpoint"):
        load_pipeline(str(path))


def test_pil_images_are_quantised_exactly_as_diffusers_does(tiny_dir):
    from boothline.pipelines.sampling import render_batch

    pipe = load_pipeline(str(tiny_dir), scheduler="dpm++")
    requests = [Request("a photo of a toy", seed, steps=2, width=32, height=32) for seed in (0, 1)]
    ours = render_batch(pipe, requests)
    with torch.inference_mode():
        theirs = pipe(prompt=[r.prompt for r in requests], negative_prompt=["", ""], num_inference_steps=2,
                      width=32, height=32, generator=[torch.Generator().manual_seed(r.seed) for r in requests]).images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(ours, theirs))


def test_deterministic_kernels_switch_on_and_off(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    try:
        assert stage_device(Model(device="cpu", deterministic=True)).type == "cpu"
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # cuBLAS refuses deterministic mode without it
        stage_device(Model(device="cpu"))
        assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
        use_deterministic_kernels(True)
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # a user's own setting is kept
    finally:
        use_deterministic_kernels(False)
