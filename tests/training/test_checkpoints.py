"""Checkpoints: fingerprint, refusal message, atomic writes, pruning, free-disk check, loading as a pipeline."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from boothline.errors import StageError
from boothline.paths import Workspace
from boothline.training import checkpoints
from boothline.training.checkpoints import (TrainingState, fingerprint, fingerprint_inputs, list_checkpoints,
                                   load_checkpoint_pipeline, param_changes, resume_point, save_checkpoint)

CHECKPOINTS = Workspace().checkpoints  # the tests run in their workdir


SHAS = ["a" * 64, "b" * 64]


def inputs_for(params, overrides=None, class_sha=SHAS):
    return fingerprint_inputs(params(overrides), SHAS, class_sha, num_processes=1)


def tiny_state(step: int) -> TrainingState:
    return TrainingState(step, {"unet.w": torch.full((4,), float(step))}, {"state": {}, "param_groups": []},
                         {"last_epoch": step}, None, "step,loss\n")


def record(inputs) -> dict:
    return {"fingerprint": fingerprint(inputs), "fingerprint_inputs": inputs, "base_id": inputs["model.base"],
            "kind": "full", "lora": None, "train_text_encoder": False}


def test_fingerprint_covers_the_trajectory_not_the_cadence(params):
    base = fingerprint(inputs_for(params))
    same = [{"train": {"checkpoint_every": 7}}, {"train": {"keep_checkpoints": 5}}, {"train": {"validate_every": 3}},
            {"train": {"gradient_checkpointing": True}}, {"train": {"export_single_file": True}},
            {"train": {"max_train_steps": 400}}]  # constant LR: a run can be extended
    changed = [{"train": {"learning_rate": 2e-4}}, {"train": {"seed": 1}}, {"train": {"lora": {"rank": 8}}},
               {"subject": {"token": "zwx"}}, {"priors": {"prompt": "a photo of a robot"}},
               {"model": {"deterministic": True}}]  # on a GPU its kernels sum in another order
    assert all(fingerprint(inputs_for(params, o)) == base for o in same)
    assert all(fingerprint(inputs_for(params, o)) != base for o in changed)
    assert fingerprint(fingerprint_inputs(params(), SHAS[::-1], SHAS, 1)) != base  # other images
    assert fingerprint(fingerprint_inputs(params(), SHAS, SHAS, 2)) != base  # other process count
    cosine = {"train": {"lr_scheduler": "cosine"}}
    assert fingerprint(inputs_for(params, cosine)) != fingerprint(inputs_for(params, {"train": {
        "lr_scheduler": "cosine", "max_train_steps": 400}}))


def test_changed_params_refuse_to_resume_naming_them(params, workdir):
    old = inputs_for(params)
    save_checkpoint(tiny_state(4), record(old), keep=2, root=CHECKPOINTS)
    assert resume_point(old, max_step=10, root=CHECKPOINTS).step == 4
    new = inputs_for(params, {"train": {"learning_rate": 2e-3, "snr_gamma": 5.0}})
    with pytest.raises(StageError) as err:
        resume_point(new, max_step=10, root=CHECKPOINTS)
    message = str(err.value)
    assert "data/checkpoints/step-4: refusing to resume" in message
    assert "train.learning_rate: 0.001 -> 0.002" in message and "train.snr_gamma: null -> 5.0" in message
    assert "rm -rf data/checkpoints" in message
    assert param_changes(old, inputs_for(params, class_sha=SHAS[:1])) == ["data.class_images: the images changed"]


def test_resume_point_is_the_newest_checkpoint_not_past_the_end(params, workdir):
    inputs = inputs_for(params)
    assert resume_point(inputs, max_step=10, root=CHECKPOINTS) is None
    for step in (2, 4, 6):
        save_checkpoint(tiny_state(step), record(inputs), keep=5, root=CHECKPOINTS)
    assert resume_point(inputs, max_step=10, root=CHECKPOINTS).step == 6
    assert resume_point(inputs, max_step=5, root=CHECKPOINTS).step == 4


def test_pruning_keeps_the_newest_and_leaves_later_runs_alone(params, workdir):
    inputs = inputs_for(params)
    save_checkpoint(tiny_state(100), record(inputs), keep=2, root=CHECKPOINTS)  # from a longer run of the same params
    for step in (2, 4, 6):
        save_checkpoint(tiny_state(step), record(inputs), keep=2, root=CHECKPOINTS)
    assert [c.step for c in list_checkpoints(CHECKPOINTS)] == [4, 6, 100]


def test_a_failed_write_leaves_no_partial_checkpoint(params, workdir, monkeypatch):
    inputs = inputs_for(params)
    save_checkpoint(tiny_state(2), record(inputs), keep=2, root=CHECKPOINTS)
    calls = []

    def failing_write(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk went away")
        Path(path).write_bytes(data)

    monkeypatch.setattr(checkpoints, "_save_bytes", failing_write)
    with pytest.raises(OSError):
        save_checkpoint(tiny_state(4), record(inputs), keep=2, root=CHECKPOINTS)
    assert [p.name for p in CHECKPOINTS.iterdir()] == ["step-2"]  # no step-4, no temp directory


def test_low_disk_stops_before_writing(params, workdir, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(StageError, match=r"not enough free disk for checkpoint step-2: needs about .* GiB"):
        save_checkpoint(tiny_state(2), record(inputs_for(params)), keep=2, root=CHECKPOINTS)
    assert not any(CHECKPOINTS.iterdir())


@pytest.mark.parametrize("lora", [False, True])
def test_load_checkpoint_pipeline_restores_the_trained_weights(params, workdir, lora):
    from safetensors.torch import load_file

    from stages import train, validate

    p = params({"priors": {"num_images": 0}, "train": {"max_train_steps": 2, "checkpoint_every": 2,
                                                        "validate_every": 0, "learning_rate": 1e-3,
                                                        "train_text_encoder": True, "lora": {"enabled": lora}}})
    validate.run(p)
    train.run(p)
    step = CHECKPOINTS / "step-2"
    pipe = load_checkpoint_pipeline(step, p, torch.device("cpu"), torch.float32)
    trained = load_file(step / "trainable.safetensors")
    assert pipe.scheduler.__class__.__name__ == "DPMSolverMultistepScheduler"  # params.model.scheduler
    if not lora:
        unet = pipe.unet.state_dict()
        assert all(torch.equal(unet[k.removeprefix("unet.")], v) for k, v in trained.items() if k.startswith("unet."))
        half = load_checkpoint_pipeline(step, p, torch.device("cpu"), torch.bfloat16)
        assert {module.dtype for module in (half.unet, half.vae, half.text_encoder)} == {torch.bfloat16}
        return
    assert all(".lora_" in k for k in trained) and not any(".lora_" in k for k in pipe.unet.state_dict())
    from boothline.pipelines.latents import generate_latents
    from boothline.pipelines.loading import load_pipeline
    from boothline.pipelines.sampling import Request

    requests = [Request("a photo of sks toy", 0, steps=4, width=64, height=64)]
    from_model = load_pipeline("data/model", scheduler="dpm++")
    torch.testing.assert_close(generate_latents(pipe, requests), generate_latents(from_model, requests))


def test_a_checkpoint_of_another_base_model_is_refused(params, workdir):
    from boothline.errors import ModelError

    inputs = inputs_for(params)
    path = save_checkpoint(tiny_state(2), record({**inputs, "model.base": "org/other-model"}), keep=2, root=CHECKPOINTS)
    with pytest.raises(ModelError, match="was trained from org/other-model"):
        load_checkpoint_pipeline(path, params(), torch.device("cpu"), torch.float32)
    state = json.loads((path / "state.json").read_text())
    assert state["step"] == 2 and state["format"] == checkpoints.FORMAT
    shutil.rmtree(path)
