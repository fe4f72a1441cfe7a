"""Assembling what ships: the world pipeline, the world CLIP and the identity encoder, in fp16, in one
folder (the encoders as its `clip/` and `identity/` subfolders), with a sha256 manifest beside it
(pipelines.builtin reads it back and checks it on every load).

The pipeline is a plain diffusers StableDiffusionPipeline: the world CLIP's text tower as text encoder and
its tokenizer, the VAE, the UNet's EMA weights, and a PNDM scheduler configured as the UNet was trained
(v-prediction, SD's scaled-linear betas). The stages that sample pick their own sampler, as for any model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import ValidationError

from boothline.errors import ParamsError
from boothline.pipelines.builtin import BUILTIN_DIRS, WEIGHTS_DIR, WORLD_CLIP, WORLD_IDENTITY, write_manifest
from boothline.pretraining.loop import save_atomically
from boothline.pretraining.settings import PretrainParams, Section
from boothline.pretraining.unet import SCHEDULER, text_encoder_from_clip

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


class Export(Section):
    dtype: Literal["fp16", "fp32"] = "fp16"  # fp16 halves the size; every stage loads it back in its own dtype


def export_settings(params: PretrainParams) -> Export:
    try:
        return Export(**params.export)
    except ValidationError as err:
        raise ParamsError("pretrain/params.yaml: export: " + "; ".join(e["msg"] for e in err.errors())) from None


def assemble_pipeline(clip_dir: Path, vae_dir: Path, unet_dir: Path):
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    text_encoder, tokenizer = text_encoder_from_clip(clip_dir)
    return StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(vae_dir), text_encoder=text_encoder, tokenizer=tokenizer,
        unet=UNet2DConditionModel.from_pretrained(unet_dir), scheduler=PNDMScheduler(**SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def export_world(params: PretrainParams) -> Path:
    from transformers import AutoModel, AutoProcessor

    dtype = DTYPES[export_settings(params).dtype]
    trained = params.trained

    def save(tmp: Path) -> None:
        pipe = assemble_pipeline(trained("clip"), trained("vae"), trained("unet")).to(dtype=dtype)
        pipe.save_pretrained(tmp / WEIGHTS_DIR, safe_serialization=True)
        for part, name in (("clip", WORLD_CLIP), ("identity", WORLD_IDENTITY)):
            target = tmp / BUILTIN_DIRS[name]
            AutoModel.from_pretrained(trained(part)).to(dtype).save_pretrained(target, safe_serialization=True)
            AutoProcessor.from_pretrained(trained(part)).save_pretrained(target)
        write_manifest(tmp)

    return save_atomically(save, params.out_dir)
