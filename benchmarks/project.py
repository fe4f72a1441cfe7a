"""A throwaway boothline project for a benchmark: params.yaml with overrides, the demo subject, a base model.

`--model tiny` uses the embedded tiny pipeline; `--model sd15` builds a Stable Diffusion 1.5-architecture
pipeline from configs with random weights (no download; speed and memory do not depend on the weights),
saved once under `data/base/sd15-random/` and loaded through `from_pretrained` like a real checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import yaml

REPO = Path(__file__).resolve().parents[1]
SD15_DIR = REPO / "data/base/sd15-random"
DEMO_AT_ANY_SIZE = {"subject": {"allow_upscale": True}}  # the demo photos are 128 px; SD 1.5 trains at 512


def build_sd15_random(out_dir: Path = SD15_DIR) -> Path:
    """SD 1.5's UNet, VAE and CLIP ViT-L/14 text encoder shapes, seeded random weights, PNDM epsilon schedule."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from boothline.pipelines.tiny import build_tokenizer

    if (out_dir / "model_index.json").is_file():
        return out_dir
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512, scaling_factor=0.18215)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                                hidden_act="quick_gelu", projection_dim=768))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                              skip_prk_steps=True, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=build_tokenizer(), unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def base_model(name: str) -> tuple[str, int]:
    """(model.base, resolution) for `--model`."""
    if name == "tiny":
        return "builtin:tiny", 64
    if name == "sd15":
        return str(build_sd15_random()), 512
    raise SystemExit(f"--model {name!r}: expected tiny or sd15")


def carried_compile_cache() -> Path | None:
    """`BOOTHLINE_BENCH_COMPILE_CACHE`: a folder of compile bundles (`train.bin`, `inference.bin`) that
    `project(..., compile_cache=...)` starts from and saves back into, so a later device session can carry
    what this one compiled (device.sh points it into $OUT)."""
    folder = os.environ.get("BOOTHLINE_BENCH_COMPILE_CACHE")
    return Path(folder) if folder else None


@contextlib.contextmanager
def project(overrides: dict, compile_cache: Path | None = None) -> Iterator:
    """cwd = a fresh project with params.yaml + overrides, removed afterwards; yields the parsed Params.
    With `compile_cache`, the project's `data/cache/torch-compile/` starts as a copy of that folder and
    its bundles are copied back at the end."""
    from boothline.paths import COMPILE_CACHE_DIR
    from boothline.params import deep_merge, load_params
    from boothline.paths import DEMO_SUBJECT_DIR, TINY_DIR

    previous = Path.cwd()
    root = Path(tempfile.mkdtemp(prefix="boothline-bench-"))
    try:
        shutil.copytree(REPO / DEMO_SUBJECT_DIR, root / DEMO_SUBJECT_DIR)
        if (REPO / TINY_DIR).is_dir():  # saves a rebuild
            shutil.copytree(REPO / TINY_DIR, root / TINY_DIR)
        params = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), DEMO_AT_ANY_SIZE)
        params = deep_merge(params, overrides)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        if compile_cache is not None and compile_cache.is_dir():
            shutil.copytree(compile_cache, root / COMPILE_CACHE_DIR)
        os.chdir(root)
        yield load_params("params.yaml")
        if compile_cache is not None and COMPILE_CACHE_DIR.is_dir():
            shutil.copytree(COMPILE_CACHE_DIR, compile_cache, dirs_exist_ok=True)
    finally:
        os.chdir(previous)
        shutil.rmtree(root, ignore_errors=True)


def environment() -> dict:
    import diffusers
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    return {"device": device, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version()}


# Dense bf16 matrix throughput the anchors' utilisation figures use (../shared/DESIGN.md): about 790 TFLOP/s
# on one H100 or H200. Unknown devices (and CPUs) get no utilisation figure.
PEAK_BF16_TFLOPS = {"H100": 790.0, "H200": 790.0}


def peak_tflops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
