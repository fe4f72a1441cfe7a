"""Single-file `.safetensors` exports for AUTOMATIC1111, ComfyUI and the other Stable Diffusion tools.

- A full model in the original Stable Diffusion (CompVis/LDM) key layout: `model.diffusion_model.*` (UNet),
  `first_stage_model.*` (VAE) and `cond_stage_model.*` (OpenAI CLIP for SD 1.x, OpenCLIP for SD 2.x).
- A LoRA in the kohya-ss layout: `lora_unet_<module>` / `lora_te_<module>` with `.lora_down.weight`,
  `.lora_up.weight` and `.alpha`, module paths being diffusers/transformers names with `_` for `.`.

Every key is renamed by an explicit rule; a key no rule covers is an error rather than a silently
missing weight.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch

from boothline.io.files import atomic_write_bytes

Rule = tuple[re.Pattern, Callable[[re.Match], str]]
UNET_PREFIX, VAE_PREFIX = "model.diffusion_model.", "first_stage_model."
CLIP_PREFIX, OPEN_CLIP_PREFIX = "cond_stage_model.transformer.", "cond_stage_model.model."
RESNET_UNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
               "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
RESNET_VAE = {"conv_shortcut": "nin_shortcut"}
ATTENTION_VAE = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
OPEN_CLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                   "self_attn.out_proj": "attn.out_proj"}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _leaf(rest: str, names: dict[str, str]) -> str:
    """Rename the leading module path of `rest` ("norm1.weight" -> "in_layers.0.weight")."""
    for old, new in names.items():
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    return rest


def _rename(state: dict[str, torch.Tensor], rules: list[Rule], what: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, rename in rules:
            match = pattern.fullmatch(key)
            if match:
                out[rename(match)] = value
                break
        else:
            raise ValueError(f"{what}: no single-file name for weight {key!r}")
    return out


def unet_to_ldm(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    if not isinstance(config.layers_per_block, int):
        raise ValueError("UNet: single-file export needs the same layers_per_block in every block (as in SD 1/2)")
    per_block = config.layers_per_block
    stride = per_block + 1
    has_attention = {int(k.split(".")[1]) for k in state if k.startswith("up_blocks.") and ".attentions." in k}
    resnet = lambda rest: _leaf(rest, RESNET_UNET)  # noqa: E731
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    rules: list[Rule] = [
        (re.compile(r"(time_embedding\.linear_[12]|conv_in|conv_norm_out|conv_out)\.(.+)"),
         lambda m: f"{fixed[m[1]]}.{m[2]}"),
        (re.compile(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)"),
         lambda m: f"input_blocks.{1 + int(m[1]) * stride + int(m[2])}.0.{resnet(m[3])}"),
        (re.compile(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)"),
         lambda m: f"input_blocks.{1 + int(m[1]) * stride + int(m[2])}.1.{m[3]}"),
        (re.compile(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)"),
         lambda m: f"input_blocks.{(int(m[1]) + 1) * stride}.0.op.{m[2]}"),
        (re.compile(r"mid_block\.resnets\.([01])\.(.+)"), lambda m: f"middle_block.{2 * int(m[1])}.{resnet(m[2])}"),
        (re.compile(r"mid_block\.attentions\.0\.(.+)"), lambda m: f"middle_block.1.{m[1]}"),
        (re.compile(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)"),
         lambda m: f"output_blocks.{int(m[1]) * stride + int(m[2])}.0.{resnet(m[3])}"),
        (re.compile(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)"),
         lambda m: f"output_blocks.{int(m[1]) * stride + int(m[2])}.1.{m[3]}"),
        (re.compile(r"up_blocks\.(\d+)\.upsamplers\.0\.(.+)"),
         lambda m: f"output_blocks.{int(m[1]) * stride + per_block}.{2 if int(m[1]) in has_attention else 1}.{m[2]}"),
    ]
    return {UNET_PREFIX + k: v for k, v in _rename(state, rules, "UNet").items()}


def vae_to_ldm(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    last = len(config.block_out_channels) - 1  # the decoder's up blocks are numbered the other way round
    resnet = lambda rest: _leaf(rest, RESNET_VAE)  # noqa: E731
    rules: list[Rule] = [
        (re.compile(r"(encoder|decoder)\.conv_norm_out\.(.+)"), lambda m: f"{m[1]}.norm_out.{m[2]}"),
        (re.compile(r"((?:encoder|decoder)\.conv_(?:in|out)|quant_conv|post_quant_conv)\.(.+)"), lambda m: m[0]),
        (re.compile(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)"),
         lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{resnet(m[3])}"),
        (re.compile(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)"), lambda m: f"encoder.down.{m[1]}.downsample.{m[2]}"),
        (re.compile(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)"),
         lambda m: f"decoder.up.{last - int(m[1])}.block.{m[2]}.{resnet(m[3])}"),
        (re.compile(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)"),
         lambda m: f"decoder.up.{last - int(m[1])}.upsample.{m[2]}"),
        (re.compile(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)"),
         lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.{resnet(m[3])}"),
        (re.compile(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)"),
         lambda m: f"{m[1]}.mid.attn_1.{_leaf(m[2], ATTENTION_VAE)}"),
    ]
    out = {}
    for key, value in _rename(state, rules, "VAE").items():
        # The original VAE attention projections are 1x1 convolutions, diffusers' are linear layers.
        if re.search(r"\.mid\.attn_1\.(q|k|v|proj_out)\.weight$", key) and value.dim() == 2:
            value = value[:, :, None, None]
        out[VAE_PREFIX + key] = value
    return out


def text_model_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers 5 dropped the `text_model.` level of CLIPTextModel; single files keep it."""
    return {(k if k.startswith("text_model.") else f"text_model.{k}"): v for k, v in state.items()}


def text_encoder_to_ldm(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    state = text_model_keys(state)
    state.pop("text_model.embeddings.position_ids", None)
    if config.hidden_act != "gelu":  # OpenAI CLIP (quick_gelu): SD 1.x keeps the transformers names
        return {CLIP_PREFIX + k: v for k, v in state.items()}
    return _open_clip(state)


def _open_clip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD 2.x: OpenCLIP names, with q/k/v fused into one in_proj per layer."""
    fixed = {"text_model.embeddings.token_embedding.weight": "token_embedding.weight",
             "text_model.embeddings.position_embedding.weight": "positional_embedding",
             "text_model.final_layer_norm.weight": "ln_final.weight",
             "text_model.final_layer_norm.bias": "ln_final.bias"}
    out, qkv = {}, {}
    layer = re.compile(r"text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)")
    for key, value in state.items():
        if key in fixed:
            out[OPEN_CLIP_PREFIX + fixed[key]] = value
            continue
        match = layer.fullmatch(key)
        if not match:
            raise ValueError(f"text encoder: no single-file name for weight {key!r}")
        index, module, kind = match.groups()
        block = f"{OPEN_CLIP_PREFIX}transformer.resblocks.{index}"
        if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            qkv.setdefault((block, kind), {})[module[-6]] = value
        elif module in OPEN_CLIP_LAYER:
            out[f"{block}.{OPEN_CLIP_LAYER[module]}.{kind}"] = value
        else:
            raise ValueError(f"text encoder: no single-file name for weight {key!r}")
    for (block, kind), parts in qkv.items():
        out[f"{block}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


def full_model_state(pipe, dtype: str = "fp16") -> dict[str, torch.Tensor]:
    """The whole pipeline's weights in the original single-file layout, cast to `dtype`."""
    state = {
        **unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config),
        **vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config),
        **text_encoder_to_ldm(pipe.text_encoder.state_dict(), pipe.text_encoder.config),
    }
    return {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in state.items()}


def _kohya_module(prefix: str, module_path: str) -> str:
    return f"{prefix}_{module_path.replace('.', '_')}"


def lora_to_kohya(unet_lora: dict[str, torch.Tensor], text_encoder_lora: dict[str, torch.Tensor] | None,
                  alpha: float, dtype: str = "fp16") -> dict[str, torch.Tensor]:
    """Kohya-format LoRA from PEFT state dicts (`<module>.lora_A.weight` / `<module>.lora_B.weight`)."""
    pattern = re.compile(r"(.+)\.lora_([AB])\.weight")
    out = {}
    for prefix, state in (("lora_unet", unet_lora), ("lora_te", text_model_keys(text_encoder_lora or {}))):
        for key, value in state.items():
            match = pattern.fullmatch(key)
            if not match:
                raise ValueError(f"LoRA: unexpected adapter weight {key!r}")
            module = _kohya_module(prefix, match[1])
            out[f"{module}.{'lora_down' if match[2] == 'A' else 'lora_up'}.weight"] = value
            out[f"{module}.alpha"] = torch.tensor(float(alpha))
    return {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in out.items()}


def save_single_file(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    from safetensors.torch import save

    return atomic_write_bytes(path, save(state, metadata=metadata))
