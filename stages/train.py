"""Stage 3, train: DreamBooth fine-tuning with prior preservation, full or LoRA, resumable bit for bit.

Inputs: `data/validated/manifest.parquet` (subject images) and, with prior preservation,
`data/priors/manifest.parquet` (class images). Outputs: `data/model/` (a diffusers pipeline, or a LoRA
adapter plus a pointer to its base), `data/checkpoints/step-<N>/` (kept across runs: a rerun resumes from
the newest one if its params fingerprint matches, and refuses if not), validation grids under
`data/checkpoints/validation/`, and `data/train/metrics.csv` + `summary.json`. All under the workspace.

Runs unchanged under `accelerate launch` (DDP): the loop (`boothline.training.loop`) shards each step's
batch over the processes; only the main process writes files.
"""

from __future__ import annotations

import json
import sys

import torch

from boothline.entry import run_stage
from boothline.errors import StageError
from boothline.io.files import atomic_write_text
from boothline.params import Params, Train
from boothline.paths import Workspace
from boothline.photos.manifest import read_manifest
from boothline.pipelines.loading import check_lora_support, stage_device
from boothline.training.loop import train_dreambooth
from boothline.training.trainable import check_optimizer_available


def uses_prior(params: Params) -> bool:
    return params.priors.num_images > 0 and params.train.prior_loss_weight > 0


def check_settings(train: Train, device: torch.device) -> None:
    """Settings that cannot work on this device or with these libraries, found before any model is loaded
    (combinations that cannot work anywhere are refused when the params are read)."""
    if train.mixed_precision == "fp16" and device.type not in ("cuda", "mps"):
        raise StageError(f"train.mixed_precision = 'fp16' needs a GPU (this run is on {device.type}); "
                         "use 'bf16' or 'no'")
    check_optimizer_available(train)
    if train.lora.enabled:
        check_lora_support("train.lora.enabled = true", on_text_encoder=train.train_text_encoder)


def run(params: Params, workspace: Workspace = Workspace()) -> dict:
    device = stage_device(params.model)
    check_settings(params.train, device)
    instance = read_manifest(workspace.validated_manifest, "validate")
    prior = read_manifest(workspace.priors_manifest, "priors") if uses_prior(params) else None
    summary = train_dreambooth(params, workspace, instance, prior, device)
    if summary:  # the main process
        atomic_write_text(workspace.train_summary, json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> None:
    sys.exit(run_stage("train", run))


if __name__ == "__main__":
    main()
