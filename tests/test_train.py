"""The train stage end to end on the tiny model: it learns the subject, resumes exactly after SIGKILL,
refuses changed params, trains LoRA adapters that reload onto the base, and runs under 2-process DDP."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from boothline.errors import StageError
from boothline.training import loop
from boothline.training.checkpoints import TEST_KILL_ENV
from conftest import REPO, free_port, repo_params, run_module

SHORT = {"validate_every": 0, "batch_size": 1}  # fast runs for the mechanics; the default config learns


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_dir) -> Path:
    """validate + priors outputs for the demo subject with the default params, made once per module."""
    from boothline.params import load_params
    from stages import priors, validate

    root = tmp_path_factory.mktemp("prepared")
    (root / "params.yaml").write_text(yaml.safe_dump(repo_params(), sort_keys=False))
    shutil.copytree(REPO / "data/subjects/demo", root / "data/subjects/demo")
    shutil.copytree(tiny_dir, root / "data/base/tiny")
    with contextlib.chdir(root):
        params = load_params("params.yaml")
        validate.run(params)
        priors.run(params)
    return root


@pytest.fixture
def trainable(prepared, workdir) -> Path:
    for sub in ("data/validated", "data/priors"):
        shutil.copytree(prepared / sub, workdir / sub)
    return workdir


def final_weights(model_dir: Path = Path("data/model")) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    unet = load_file(model_dir / "unet/diffusion_pytorch_model.safetensors")
    text_encoder = load_file(model_dir / "text_encoder/model.safetensors")
    return {**{f"unet.{k}": v for k, v in unet.items()}, **{f"text_encoder.{k}": v for k, v in text_encoder.items()}}


def assert_bit_identical(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    differing = [k for k in want if not torch.equal(got[k], want[k])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"


def fresh_start() -> None:
    for path in ("data/checkpoints", "data/model", "data/train"):
        shutil.rmtree(path, ignore_errors=True)


def test_killed_runs_resume_to_bit_identical_weights(trainable, params):
    from stages import train

    p = params({"train": {**SHORT, "max_train_steps": 6, "checkpoint_every": 2, "train_text_encoder": True}})
    train.run(p)
    want = final_weights()
    want_losses = pd.read_csv("data/train/metrics.csv")["loss"].tolist()

    # SIGKILL after step 5: checkpoints 2 and 4 exist; the rerun resumes from 4.
    fresh_start()
    killed = run_module("stages.train", cwd=trainable, env={TEST_KILL_ENV: "after-step:5"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sorted(p.name for p in Path("data/checkpoints").glob("step-*")) == ["step-2", "step-4"]
    assert not Path("data/model").exists()
    assert train.run(p)["resumed_from_step"] == 4
    assert_bit_identical(final_weights(), want)
    assert pd.read_csv("data/train/metrics.csv")["loss"].tolist() == want_losses  # the metrics are the whole run's

    # SIGKILL inside the save of step 4, after its temp directory is written and before the rename.
    fresh_start()
    killed = run_module("stages.train", cwd=trainable, env={TEST_KILL_ENV: "before-rename:4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [p.name for p in Path("data/checkpoints").iterdir()]
    assert "step-2" in leftovers and "step-4" not in leftovers and any(n.startswith(".step-4.") for n in leftovers)
    assert train.run(p)["resumed_from_step"] == 2
    assert_bit_identical(final_weights(), want)
    assert sorted(p.name for p in Path("data/checkpoints").iterdir()) == ["step-4", "step-6"]  # temp cleaned up

    # A cadence change still resumes; a training change refuses, naming it and how to start fresh.
    assert train.run(params({"train": {**SHORT, "max_train_steps": 6, "checkpoint_every": 3,
                                       "train_text_encoder": True}}))["resumed_from_step"] == 6
    changed = params({"train": {**SHORT, "max_train_steps": 6, "checkpoint_every": 2, "train_text_encoder": True,
                                "learning_rate": 2e-3}})
    with pytest.raises(StageError, match=r"(?s)train\.learning_rate: 0\.001 -> 0\.002.*rm -rf data/checkpoints"):
        train.run(changed)


def test_lora_saves_only_the_adapter_which_reloads_onto_the_base(trainable, params, monkeypatch):
    from diffusers import StableDiffusionPipeline

    from boothline.pipelines.latents import generate_latents
    from boothline.pipelines.loading import load_pipeline, make_scheduler
    from boothline.pipelines.sampling import Request
    from stages import train

    requests = [Request("a photo of sks toy", seed, steps=5, width=64, height=64) for seed in range(2)]
    trained = {}
    save = loop.save_trained_model

    def render_then_save(pipe, *args, **kwargs):
        sampler = StableDiffusionPipeline(**{**pipe.components, "scheduler": make_scheduler("dpm++", pipe.scheduler.config)},
                                          requires_safety_checker=False)
        trained["latents"] = generate_latents(sampler, requests)
        return save(pipe, *args, **kwargs)

    monkeypatch.setattr(loop, "save_trained_model", render_then_save)
    p = params({"train": {**SHORT, "max_train_steps": 6, "checkpoint_every": 6, "train_text_encoder": True,
                          "export_single_file": True, "lora": {"enabled": True, "rank": 4, "alpha": 8}}})
    summary = train.run(p)

    model = Path("data/model")
    assert sorted(p.name for p in model.iterdir()) == ["boothline_model.json", "lora-kohya.safetensors",
                                                       "pytorch_lora_weights.safetensors"]
    card = json.loads((model / "boothline_model.json").read_text())
    assert card["kind"] == "lora" and card["base"] == "builtin:tiny" and card["step"] == 6
    assert card["weights"] == "pytorch_lora_weights.safetensors"
    adapter_bytes = (model / card["weights"]).stat().st_size
    assert summary["lora_bytes"] == adapter_bytes < 200_000  # the tiny model's full UNet alone is ~4 MB
    print(f"LoRA adapter: {adapter_bytes} bytes, {summary['trainable_params']} trainable weights")

    reloaded = generate_latents(load_pipeline(str(model), scheduler="dpm++"), requests)
    torch.testing.assert_close(reloaded, trained["latents"], atol=1e-4, rtol=1e-4)
    base = load_pipeline("builtin:tiny", scheduler="dpm++")
    assert not torch.allclose(generate_latents(base, requests), trained["latents"], atol=1e-3)
    base.load_lora_weights(str(model), weight_name=card["single_file"])  # the kohya export, stored in fp16
    torch.testing.assert_close(generate_latents(base, requests), trained["latents"], atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("options", [
    {"mixed_precision": "no"},
    # DDP all-reduces the bf16 gradients of the last micro-step; the masters take them after that
    {"mixed_precision": "bf16", "compute_copies": True, "gradient_accumulation_steps": 2},
], ids=["fp32", "compute-copies"])
def test_two_process_accelerate_launch_writes_one_set_of_outputs(trainable, write_params, options):
    write_params({"train": {**SHORT, "max_train_steps": 3, "checkpoint_every": 2, **options}})
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", options["mixed_precision"], "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "stages.train", "--params", "params.yaml"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=trainable, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(Path("data/train/summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == 3
    assert proc.stderr.count("training full:") == 1  # logs from the main process only
    assert pd.read_csv("data/train/metrics.csv")["step"].tolist() == [1, 2, 3]
    progress = json.loads(Path("data/train/progress.json").read_text())  # the last loss read back: the checkpoint's
    assert (progress["step"], progress["total"], progress["stage"]) == (2, 3, "train") and progress["loss"] > 0
    assert sorted(p.name for p in Path("data/checkpoints").iterdir()) == ["step-2"]
    assert (Path("data/model") / "model_index.json").is_file()
    assert not [p for p in Path("data").rglob(".*.tmp")]


@pytest.mark.parametrize("options", [
    {"gradient_accumulation_steps": 2, "batch_size": 2},
    {"center_crop": False, "random_flip": True, "cache_latents": False},
    {"snr_gamma": 5.0, "offset_noise": 0.05, "lr_scheduler": "cosine", "lr_warmup_steps": 1},
])
def test_training_options(trainable, params, options):
    from stages import train

    summary = train.run(params({"train": {**SHORT, "max_train_steps": 2, "checkpoint_every": 2, **options}}))
    assert summary["steps"] == 2 and summary["final_loss"] > 0


def test_gradient_checkpointing_keeps_the_trajectory(trainable, params):
    from stages import train

    overrides = {**SHORT, "max_train_steps": 2, "checkpoint_every": 2, "train_text_encoder": True}
    train.run(params({"train": overrides}))
    want = final_weights()
    fresh_start()
    train.run(params({"train": {**overrides, "gradient_checkpointing": True}}))
    assert_bit_identical(final_weights(), want)


def test_bf16_mixed_precision_keeps_fp32_master_weights_and_optimizer_state(trainable, params):
    from safetensors.torch import load_file

    from stages import train

    train.run(params({"train": {**SHORT, "max_train_steps": 2, "checkpoint_every": 2, "mixed_precision": "bf16"}}))
    step = Path("data/checkpoints/step-2")
    assert {t.dtype for t in load_file(step / "trainable.safetensors").values()} == {torch.float32}
    optimizer = torch.load(step / "optimizer.pt", weights_only=True)
    moments = [t for state in optimizer["state"].values() for k, t in state.items() if k.startswith("exp_avg")]
    assert moments and {t.dtype for t in moments} == {torch.float32}


@pytest.mark.parametrize("overrides, message", [
    ({"train": {"use_8bit_adam": True}}, "train.use_8bit_adam = true needs the bitsandbytes package"),
    ({"train": {"mixed_precision": "fp16"}}, "train.mixed_precision = 'fp16' needs a GPU"),
])
def test_unusable_settings_stop_before_any_work(trainable, params, monkeypatch, overrides, message):
    from stages import train

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if it were not installed
    with pytest.raises(StageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train.run(params(overrides))
    assert not Path("data/checkpoints").exists()


def test_lora_with_a_peft_the_libraries_refuse_stops_in_one_line_before_any_work(trainable, write_params,
                                                                                monkeypatch, capsys):
    """As with transformers 5.24 (it needs peft >= 0.22, newer than any released) beside peft 0.21."""
    from importlib.metadata import version

    import transformers.integrations.peft

    from boothline.entry import run_stage
    from boothline.pipelines.loading import check_lora_support
    from stages import train

    check_lora_support("train.lora.enabled = true", on_text_encoder=True)  # the lock's versions work together
    monkeypatch.setattr(transformers.integrations.peft, "MIN_PEFT_VERSION", "99.0")
    check_lora_support("train.lora.enabled = true", on_text_encoder=False)  # a UNet-only LoRA needs diffusers only
    path = write_params({"train": {"lora": {"enabled": True}, "train_text_encoder": True}})
    assert run_stage("train", train.run, ["--params", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"train.lora.enabled = true: transformers {version('transformers')} needs peft >= 99.0, but peft "
        f"{version('peft')} is installed; `make install` installs versions that work together "
        "(requirements/run.txt), or install a transformers release that takes peft " + version("peft"))
    assert not Path("data/checkpoints").exists()


def test_missing_inputs_name_the_stage_to_run(workdir, params):
    from stages import train

    with pytest.raises(StageError, match=r"data/validated/manifest.parquet: not found; run `python -m stages.validate`"):
        train.run(params())


FAST = {"mixed_precision": "bf16", "compute_copies": True, "compile": True, "channels_last": True, "log_every": 3,
        "train_text_encoder": True}


def weight_deltas(got: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([(got[k].float() - start[k].float()).flatten() for k in sorted(start)])


def test_fast_path_follows_the_autocast_run_and_resumes_exactly(trainable, params, compile_for_tests):
    """bf16 compute copies + torch.compile + channels_last + windowed loss reads: as close to the fp32 trajectory
    as plain bf16 autocast is, no graph breaks, fp32 masters in checkpoints and the saved model, exact resume."""
    from safetensors.torch import load_file

    from stages import train

    base = {**SHORT, "max_train_steps": 4, "checkpoint_every": 2, "train_text_encoder": True}
    start = final_weights(Path("data/base/tiny"))
    deltas = {}
    for name, options in (("fp32", {}), ("autocast", {"mixed_precision": "bf16"}), ("fast", FAST)):
        fresh_start()
        summary = train.run(params({"train": {**base, **options}}))
        deltas[name] = weight_deltas(final_weights(), start)
    fast = final_weights()
    assert compile_for_tests() == {}, "graph breaks in the compiled training step"
    assert {t.dtype for t in fast.values()} == {torch.float32}
    assert {t.dtype for t in load_file("data/checkpoints/step-4/trainable.safetensors").values()} == {torch.float32}
    similarity = {name: torch.nn.functional.cosine_similarity(deltas[name], deltas["fp32"], dim=0).item()
                  for name in ("autocast", "fast")}
    # Four Adam steps of a random tiny model amplify rounding: autocast itself lands at about 0.99.
    assert similarity["fast"] > min(similarity["autocast"] - 0.01, 0.98), similarity
    assert (deltas["fast"] != 0).float().mean() > 0.9  # fp32 masters keep updates bf16 weights would round away
    assert pd.read_csv("data/train/metrics.csv")["step"].tolist() == [1, 2, 3, 4]
    assert summary["final_loss"] > 0

    # Interrupted after step 3: the rerun resumes from step 2 and ends on the very same weights.
    fresh_start()

    def interrupt(point: str, step: int) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(loop, "test_kill_point", interrupt)
        train.run(params({"train": {**base, **FAST}}))
    assert train.run(params({"train": {**base, **FAST}}))["resumed_from_step"] == 2
    assert_bit_identical(final_weights(), fast)


def test_lora_trains_on_compute_copies_and_validates_on_them(trainable, params):
    from safetensors.torch import load_file

    from stages import train

    lora = {"enabled": True, "rank": 4, "alpha": 4}
    summary = train.run(params({"train": {**SHORT, "max_train_steps": 2, "checkpoint_every": 2, "lora": lora,
                                          "mixed_precision": "bf16", "compute_copies": True, "validate_every": 2}}))
    assert summary["kind"] == "lora" and summary["final_loss"] > 0
    assert Path("data/checkpoints/validation/step-2.png").is_file()  # rendered by the bf16 modules
    assert {t.dtype for t in load_file("data/model/pytorch_lora_weights.safetensors").values()} == {torch.float32}


@pytest.mark.parametrize(("settings", "crop_cached", "idle"), [
    ({}, True, ["vae", "text_encoder"]),
    ({"train_text_encoder": True}, True, ["vae"]),
    ({}, False, ["text_encoder"]),  # random crops are encoded every step
    ({"validate_every": 5, "validation_prompts": ["{subject}"]}, True, []),  # validation grids render with every module
])
def test_frozen_modules_the_loop_never_calls_leave_the_gpu(settings, crop_cached, idle):
    from types import SimpleNamespace

    from boothline.params import Train
    from boothline.training.loop import idle_frozen_modules

    train = Train(**settings)
    models = {"unet": None, **({"text_encoder": None} if train.train_text_encoder else {})}
    sources = [SimpleNamespace(cached=True), SimpleNamespace(cached=crop_cached)]
    assert idle_frozen_modules(train, models, sources) == idle
    without_priors = idle_frozen_modules(train, models, [SimpleNamespace(cached=True), None])
    assert ("vae" in without_priors) == (not train.validate_every)


def test_deterministic_kernels_train_and_validate_to_the_same_weights(trainable, params):
    """model.deterministic switches torch to deterministic kernels for the stage; every op the tiny pipeline
    trains and renders with has one (CPU kernels are deterministic anyway, so the weights do not move)."""
    from boothline.pipelines.loading import use_deterministic_kernels
    from stages import train

    overrides = {**SHORT, "max_train_steps": 2, "checkpoint_every": 2, "train_text_encoder": True, "validate_every": 2}
    train.run(params({"train": overrides}))
    want = final_weights()
    fresh_start()
    try:
        train.run(params({"model": {"deterministic": True}, "train": overrides}))
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        use_deterministic_kernels(False)
    assert_bit_identical(final_weights(), want)
    assert Path("data/checkpoints/validation/step-2.png").is_file()


def test_lora_model_loads_its_base_as_training_did(trainable, params):
    """The adapter's card keeps the base's variant (and revision, single-file config) for every later load."""
    from boothline.errors import ModelError
    from boothline.pipelines.loading import load_pipeline
    from stages import train

    load_pipeline("builtin:tiny").save_pretrained("data/base/tiny-fp16", variant="fp16")  # variant files only
    with pytest.raises(ModelError, match=r"data/base/tiny-fp16: cannot load .* set model.variant"):
        load_pipeline("data/base/tiny-fp16")
    train.run(params({"model": {"base": "data/base/tiny-fp16", "variant": "fp16"},
                      "train": {**SHORT, "max_train_steps": 1, "checkpoint_every": 1, "lora": {"enabled": True}}}))
    card = json.loads(Path("data/model/boothline_model.json").read_text())
    assert card["base_settings"] == {"revision": None, "variant": "fp16", "single_file_config": None}
    assert load_pipeline("data/model").unet.dtype == torch.float32
