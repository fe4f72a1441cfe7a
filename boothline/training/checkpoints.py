"""Training checkpoints: written atomically, pruned, fingerprinted, resumed exactly; loadable as a pipeline.

`data/checkpoints/step-<N>/` holds everything the run needs to continue from step N: the trainable
weights (safetensors), optimizer, learning-rate schedule and grad-scaler state, the metrics so far, and
`state.json` with the step and the params fingerprint. A checkpoint is written into a hidden temp
directory and renamed into place, so a kill at any moment leaves the previous checkpoints intact.

The fingerprint covers every input that changes the training trajectory (training params, base model,
prompts, the exact instance and class images, the number of processes), and nothing that does not
(checkpoint, validation and export cadence, gradient checkpointing). A checkpoint whose fingerprint
differs is never resumed: the run stops and names the params that changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from boothline.errors import ModelError, StageError
from boothline.io.files import atomic_directory
from boothline.params import Lora, Params, dotted
from boothline.pipelines.loading import base_model_id, check_lora_support, load_pipeline
from boothline.training.trainable import TEXT_ENCODER, UNET, add_lora_adapters, load_trainable_state

FORMAT = 1
STATE = "state.json"
WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
LR_SCHEDULER = "lr_scheduler.pt"
GRAD_SCALER = "grad_scaler.pt"
METRICS = "metrics.csv"
# Tests set this to "<point>:<step>" to SIGKILL the process at that point ("before-rename", "after-step").
TEST_KILL_ENV = "BOOTHLINE_TEST_KILL"
# Train params that do not change what is learned, only how often it is saved, shown or exported, or the
# memory it takes.
NOT_TRAJECTORY = {"checkpoint_every", "keep_checkpoints", "validate_every", "validation_prompts", "validation_steps",
                  "validation_seeds", "validation_guidance", "export_single_file", "export_dtype",
                  "gradient_checkpointing", "log_every"}
# With these schedules the first N steps do not depend on max_train_steps, so a run can be extended.
LENGTH_FREE_SCHEDULES = {"constant", "constant_with_warmup"}
DISK_MARGIN = 1.1
DISK_SLACK_BYTES = 32 << 20
log = logging.getLogger(__name__)


def test_kill_point(point: str, step: int) -> None:
    """Test-only hook: SIGKILL this process here when TEST_KILL_ENV names this point and step."""
    if os.environ.get(TEST_KILL_ENV) == f"{point}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


# --- fingerprint ---------------------------------------------------------------------------------------

def images_digest(sha256s: Sequence[str]) -> str:
    """One hash for an ordered list of image hashes (order matters: it fixes the sampling order)."""
    return hashlib.sha256("\n".join(sha256s).encode()).hexdigest()


def fingerprint_inputs(params: Params, instance_sha256: Sequence[str], class_sha256: Sequence[str] | None,
                       num_processes: int) -> dict[str, Any]:
    """Everything that shapes the training trajectory, as flat `key: value` pairs."""
    train = dotted(params.section_dict("train"), "train")
    for key in NOT_TRAJECTORY:
        train.pop(f"train.{key}", None)
    if params.train.lr_scheduler in LENGTH_FREE_SCHEDULES:
        train.pop("train.max_train_steps")
    with_prior = class_sha256 is not None
    return {
        **train,
        "model.base": base_model_id(params.model),
        "model.variant": params.model.variant,
        "instance_prompt": params.instance_prompt,
        "class_prompt": params.class_prompt if with_prior else None,
        "data.instance_images": images_digest(instance_sha256),
        "data.class_images": images_digest(class_sha256) if with_prior else None,
        "accelerate.num_processes": num_processes,
        # Deterministic kernels sum in another order on a GPU. Only when on, so older checkpoints still match.
        **({"model.deterministic": True} if params.model.deterministic else {}),
    }


def fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


def param_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, "<unset>"), new.get(key, "<unset>")
        if before != after:
            if key.startswith("data."):
                lines.append(f"{key}: the images changed")
            else:
                lines.append(f"{key}: {json.dumps(before)} -> {json.dumps(after)}")
    return lines


# --- finding and resuming ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]  # state.json


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Complete checkpoints under `root`, oldest first (a directory only exists once fully written)."""
    found = []
    for path in root.glob("step-*") if root.is_dir() else []:
        state_file = path / STATE
        if path.is_dir() and path.name[5:].isdigit() and state_file.is_file():
            state = json.loads(state_file.read_text())
            found.append(Checkpoint(path, int(state["step"]), state))
    return sorted(found, key=lambda c: c.step)


def checkpoint_at(step: int, root: Path) -> Checkpoint | None:
    """The complete checkpoint of `step` under `root`, or None."""
    state_file = root / f"step-{step}" / STATE
    return Checkpoint(state_file.parent, step, json.loads(state_file.read_text())) if state_file.is_file() else None


def resume_point(inputs: dict[str, Any], max_step: int, root: Path) -> Checkpoint | None:
    """The newest checkpoint at or before `max_step`; refuse if any checkpoint belongs to other params."""
    checkpoints = list_checkpoints(root)
    expected = fingerprint(inputs)
    for checkpoint in reversed(checkpoints):
        if checkpoint.state.get("fingerprint") != expected:
            raise StageError(refusal(checkpoint, inputs, root))
    usable = [c for c in checkpoints if c.step <= max_step]
    return usable[-1] if usable else None


def refusal(checkpoint: Checkpoint, inputs: dict[str, Any], root: Path) -> str:
    changes = param_changes(checkpoint.state.get("fingerprint_inputs", {}), inputs)
    if not changes:
        changes = [f"written by a different checkpoint format ({checkpoint.state.get('format')} != {FORMAT})"]
    listed = "\n".join(f"  {line}" for line in changes)
    return (
        f"{checkpoint.path}: refusing to resume, this checkpoint was trained with different params:\n{listed}\n"
        f"To start fresh with the current params, delete the old checkpoints: rm -rf {root}\n"
        f"To continue the old run instead, restore the params listed above."
    )


# --- writing -------------------------------------------------------------------------------------------

@dataclass
class TrainingState:
    """Everything a run needs to continue exactly from `step`."""

    step: int
    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    grad_scaler: dict[str, Any] | None
    metrics_csv: str


def tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def check_free_disk(directory: Path, needed_bytes: int, what: str) -> None:
    """Stop before writing `what` if the disk cannot hold it: a clear message, not a half-written file."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    required = int(needed_bytes * DISK_MARGIN) + DISK_SLACK_BYTES
    if free < required:
        raise StageError(
            f"{directory}: not enough free disk for {what}: needs about {required / 2**30:.2f} GiB, "
            f"{free / 2**30:.2f} GiB free. Free some space, lower train.keep_checkpoints or raise "
            f"train.checkpoint_every, then rerun (training resumes from the last checkpoint)."
        )


def _save_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(state: TrainingState, record: dict[str, Any], keep: int, root: Path) -> Path:
    """Write step-<N>/ atomically, then delete all but the newest `keep` checkpoints up to this step.

    `record` (fingerprint, its inputs, what kind of model) goes into state.json."""
    from safetensors.torch import save as safetensors_bytes

    check_free_disk(root, tensor_bytes(state.trainable) + tensor_bytes(state.optimizer), f"checkpoint step-{state.step}")
    final = root / f"step-{state.step}"
    with atomic_directory(final) as tmp:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in state.trainable.items()}
        _save_bytes(tmp / WEIGHTS, safetensors_bytes(weights))
        _save_bytes(tmp / OPTIMIZER, _torch_bytes(state.optimizer))
        _save_bytes(tmp / LR_SCHEDULER, _torch_bytes(state.lr_scheduler))
        if state.grad_scaler is not None:
            _save_bytes(tmp / GRAD_SCALER, _torch_bytes(state.grad_scaler))
        _save_bytes(tmp / METRICS, state.metrics_csv.encode())
        _save_bytes(tmp / STATE, json.dumps({"format": FORMAT, "step": state.step, **record}, indent=2).encode())
        test_kill_point("before-rename", state.step)
    prune(keep, up_to_step=state.step, root=root)
    return final


def prune(keep: int, up_to_step: int, root: Path) -> None:
    """Keep the newest `keep` checkpoints at or before `up_to_step`; later ones (a longer run of the same
    params) are not this run's to delete."""
    older = [c for c in list_checkpoints(root) if c.step <= up_to_step]
    for checkpoint in older[:-keep]:
        shutil.rmtree(checkpoint.path)


# --- reading -------------------------------------------------------------------------------------------

def load_training_state(checkpoint: Checkpoint, device: torch.device) -> TrainingState:
    from safetensors.torch import load_file

    path = checkpoint.path
    scaler_file = path / GRAD_SCALER
    return TrainingState(
        step=checkpoint.step,
        trainable=load_file(path / WEIGHTS, device=str(device)),
        optimizer=torch.load(path / OPTIMIZER, map_location=device, weights_only=True),
        lr_scheduler=torch.load(path / LR_SCHEDULER, weights_only=True),
        grad_scaler=torch.load(scaler_file, weights_only=True) if scaler_file.is_file() else None,
        metrics_csv=(path / METRICS).read_text(),
    )


def load_checkpoint_pipeline(checkpoint_dir: str | Path, params: Params, device: torch.device,
                             dtype: torch.dtype):
    """The StableDiffusionPipeline as it was at a checkpoint: the base model plus the trained weights
    (LoRA adapters fused), with `params.model.scheduler` for sampling."""
    from safetensors.torch import load_file

    path = Path(checkpoint_dir)
    state_file = path / STATE
    if not state_file.is_file():
        raise ModelError(f"{path}: not a training checkpoint (no {STATE})")
    state = json.loads(state_file.read_text())
    if state["base_id"] != base_model_id(params.model):
        raise ModelError(f"{path}: was trained from {state['base_id']}, not from model.base = "
                         f"{base_model_id(params.model)}")
    if state.get("lora"):
        check_lora_support(f"{path} (a LoRA checkpoint)", on_text_encoder=state["train_text_encoder"])
    pipe = load_pipeline(params.model.base, model=params.model, scheduler=params.model.scheduler)
    lora = Lora.model_validate(state["lora"]) if state.get("lora") else None
    models = {UNET: pipe.unet}
    if state["train_text_encoder"]:
        models[TEXT_ENCODER] = pipe.text_encoder
    for module in models.values():
        module.requires_grad_(lora is None)
    if lora is not None:
        add_lora_adapters(pipe.unet, pipe.text_encoder, lora, state["train_text_encoder"], seed=0)
    load_trainable_state(models, load_file(path / WEIGHTS), str(path))
    if lora is not None:
        pipe.fuse_lora(components=list(models))
        pipe.unload_lora_weights()
    pipe.unet.requires_grad_(False)
    pipe.text_encoder.requires_grad_(False)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        # not diffusers' own .to(dtype), which warns about modules to keep in fp32 even when there are none
        torch.nn.Module.to(module, device=device, dtype=dtype)
    return pipe
