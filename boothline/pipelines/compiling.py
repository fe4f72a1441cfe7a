"""torch.compile for the trained and the rendering modules, and a compile cache kept between runs.

Compiling costs a warm-up (a minute or more for SD 1.5 on a GPU) and then saves time on every step. Two
caches shorten the warm-up of later runs: torch's own on-disk cache (per machine, automatic) and a portable
bundle of compiled artifacts under `data/cache/torch-compile/`, loaded before compiling and saved after,
which a fresh machine can be given. Whatever the cache holds, torch recompiles what does not match.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from boothline.io.files import atomic_write_bytes
from boothline.paths import COMPILE_CACHE_DIR

BACKEND = "inductor"  # tests swap in "aot_eager": the same graph capture and autograd, without code generation
log = logging.getLogger(__name__)


def compiled(fn, mode: str = "default"):
    """A module or function compiled for static shapes: a new shape recompiles instead of generalising,
    which keeps CUDA graphs (mode `reduce-overhead`) possible."""
    options = {"mode": mode} if BACKEND == "inductor" else {}
    return torch.compile(fn, backend=BACKEND, dynamic=False, **options)


def mark_step_begin() -> None:
    """Tell CUDA graphs a new iteration starts, so the previous one's outputs may be overwritten."""
    if BACKEND == "inductor" and torch.cuda.is_available():
        torch.compiler.cudagraph_mark_step_begin()


def load_cache(name: str, cache_dir: Path = COMPILE_CACHE_DIR) -> bool:
    path = cache_dir / f"{name}.bin"
    if not path.is_file():
        return False
    try:
        torch.compiler.load_cache_artifacts(path.read_bytes())
    except Exception as err:  # a bundle from another torch version is useless, not fatal
        log.warning("%s: compile cache not loaded (%s); compiling from scratch", path, err)
        return False
    log.info("compile cache loaded from %s", path)
    return True


def save_cache(name: str, cache_dir: Path = COMPILE_CACHE_DIR) -> Path | None:
    artifacts = torch.compiler.save_cache_artifacts()
    if artifacts is None:
        return None
    return atomic_write_bytes(cache_dir / f"{name}.bin", artifacts[0])


def compile_pipeline(pipe, mode: str) -> None:
    """The diffusers docs' recipe for fast inference: NHWC convolutions, fused QKV projections, the UNet and
    the VAE decoder compiled. Images match the eager pipeline within half-precision rounding."""
    load_cache("inference")
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    pipe.fuse_qkv_projections()
    pipe.unet = compiled(pipe.unet, mode)
    pipe.vae.decode = compiled(pipe.vae.decode)  # one call per batch: CUDA graphs would gain nothing
