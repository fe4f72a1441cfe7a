"""Writing the trained model to `data/model/`, in one atomic rename.

- Full fine-tune: a complete diffusers StableDiffusionPipeline (safetensors).
- LoRA: only the adapter, `pytorch_lora_weights.safetensors` in the diffusers LoRA format (what
  `pipe.load_lora_weights` reads, with the rank/alpha config in its metadata), plus a pointer to the base.
Both get `boothline_model.json` (the model card `boothline.pipelines.loading.load_pipeline` reads), and optionally a
single-file export for AUTOMATIC1111/ComfyUI (`train.export_single_file`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from boothline.io.files import atomic_directory
from boothline.params import Params
from boothline.pipelines.loading import MODEL_CARD, base_model_id
from boothline.training.export import full_model_state, lora_to_kohya, save_single_file, text_model_keys
from boothline.training.trainable import TEXT_ENCODER, UNET, lora_config

LORA_WEIGHTS = "pytorch_lora_weights.safetensors"
FULL_SINGLE_FILE = "model-single-file.safetensors"
LORA_SINGLE_FILE = "lora-kohya.safetensors"


def model_card(params: Params, step: int, fingerprint: str) -> dict[str, Any]:
    card = {"kind": "lora" if params.train.lora.enabled else "full", "base": params.model.base,
            "base_id": base_model_id(params.model), "step": step, "fingerprint": fingerprint,
            "instance_prompt": params.instance_prompt, "class_prompt": params.class_prompt,
            "resolution": params.train.resolution}
    if params.train.lora.enabled:
        # How to load the base exactly as training did: a pinned hub revision, a weight variant, a config.
        base_settings = params.model.model_dump(include={"revision", "variant", "single_file_config"})
        card.update(weights=LORA_WEIGHTS, scale=1.0, rank=params.train.lora.rank, alpha=params.train.lora.alpha,
                    base_settings=base_settings)
    return card


def lora_state_dicts(models: dict[str, torch.nn.Module]) -> dict[str, dict[str, torch.Tensor]]:
    """PEFT adapter weights per trained module; text-encoder keys in the classic `text_model.` layout."""
    from peft.utils import get_peft_model_state_dict

    states = {UNET: get_peft_model_state_dict(models[UNET])}
    if TEXT_ENCODER in models:
        states[TEXT_ENCODER] = text_model_keys(get_peft_model_state_dict(models[TEXT_ENCODER]))
    return states


def save_lora_adapter(directory: Path, models: dict[str, torch.nn.Module], params: Params) -> None:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    lora = params.train.lora
    states = lora_state_dicts(models)
    text_encoder = states.get(TEXT_ENCODER)
    StableDiffusionPipeline.save_lora_weights(
        directory,
        unet_lora_layers=convert_state_dict_to_diffusers(states[UNET]),
        text_encoder_lora_layers=convert_state_dict_to_diffusers(text_encoder) if text_encoder else None,
        weight_name=LORA_WEIGHTS,
        unet_lora_adapter_metadata=lora_config(lora, lora.targets).to_dict(),
        text_encoder_lora_adapter_metadata=(lora_config(lora, lora.text_encoder_targets).to_dict()
                                            if text_encoder else None),
    )


def save_trained_model(pipe, models: dict[str, torch.nn.Module], params: Params, step: int, fingerprint: str,
                       out: Path) -> dict[str, Any]:
    """Write the model directory; returns its model card."""
    card = model_card(params, step, fingerprint)
    train = params.train
    metadata = {"boothline": json.dumps(card, sort_keys=True)}
    with atomic_directory(out) as tmp:
        if train.lora.enabled:
            save_lora_adapter(tmp, models, params)
            if train.export_single_file:
                states = lora_state_dicts(models)
                kohya = lora_to_kohya(states[UNET], states.get(TEXT_ENCODER), train.lora.alpha, train.export_dtype)
                save_single_file(tmp / LORA_SINGLE_FILE, kohya, metadata)
                card["single_file"] = LORA_SINGLE_FILE
        else:
            pipe.save_pretrained(tmp, safe_serialization=True)
            if train.export_single_file:
                save_single_file(tmp / FULL_SINGLE_FILE, full_model_state(pipe, train.export_dtype), metadata)
                card["single_file"] = FULL_SINGLE_FILE
        (tmp / MODEL_CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card
