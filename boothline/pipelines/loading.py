"""Loading Stable Diffusion pipelines, whatever the source, through one path.

A source is `builtin:world` (the pretrained world model shipped in `pretrained/`, checked against its sha256
manifest, then loaded like any directory), `builtin:tiny` (random weights, built offline), a local diffusers
directory, a boothline model directory (a full fine-tune, or a LoRA adapter plus a pointer to its base),
a single-file `.safetensors` checkpoint (pickled `.ckpt` files are refused), or a hub id. Device, dtype
and sampling scheduler are chosen here too, so every stage makes the same choice.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from boothline.errors import ModelError
from boothline.params import Model
from boothline.paths import TINY_DIR
from boothline.pipelines.builtin import BUILTIN_DIRS, WORLD, builtin_dir, manifest_hash

TINY = "builtin:tiny"
BUILTIN_PIPELINES = (WORLD, TINY)
MODEL_CARD = "boothline_model.json"  # written by the train stage next to a trained model
SUPPORTED_PIPELINES = {"StableDiffusionPipeline"}  # SD 1.x and 2.x share this class
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # "org/name"; anything else that does not exist is a typo
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}

SCHEDULERS = {
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpm++-sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
}
# How AUTOMATIC1111 names these samplers, for the PNG `parameters` text.
A1111_SAMPLER_NAMES = {
    "dpm++": "DPM++ 2M",
    "dpm++-sde": "DPM++ 2M SDE",
    "euler": "Euler",
    "euler-a": "Euler a",
    "ddim": "DDIM",
    "pndm": "PLMS",
    "unipc": "UniPC",
    "lms": "LMS",
    "heun": "Heun",
    "ddpm": "DDPM",
}


def check_lora_support(setting: str, on_text_encoder: bool) -> None:
    """LoRA goes through peft, called by diffusers (UNet) and by transformers (text encoder), each of which
    refuses a peft older than its own minimum; say so in one line before any model loads."""
    from importlib.metadata import PackageNotFoundError, version

    import diffusers.utils.constants

    needs = [("diffusers", diffusers.utils.constants.MIN_PEFT_VERSION)]
    if on_text_encoder:
        import transformers.integrations.peft

        needs.append(("transformers", transformers.integrations.peft.MIN_PEFT_VERSION))
    try:
        peft = version("peft")
    except PackageNotFoundError:
        raise ModelError(f"{setting} needs the peft package, which is not installed: `make install` "
                         "(or `pip install peft`)") from None
    from packaging.version import Version

    for package, minimum in needs:
        if Version(peft) < Version(minimum):
            raise ModelError(f"{setting}: {package} {version(package)} needs peft >= {minimum}, but peft {peft} is "
                             f"installed; `make install` installs versions that work together "
                             f"(requirements/run.txt), or install a {package} release that takes peft {peft}")


def pick_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ModelError("model.device = 'cuda': no CUDA device is available here (use 'auto' or 'cpu')")
    return torch.device(preference)


def stage_device(settings: Model) -> torch.device:
    """The device a stage computes on, with `model.deterministic` applied before its first kernel."""
    device = pick_device(settings.device)
    use_deterministic_kernels(settings.deterministic)
    return device


def use_deterministic_kernels(enabled: bool) -> None:
    """Only deterministic kernels, so a CUDA run repeats bit for bit (CPU runs always do), at some speed.

    An op with no deterministic CUDA kernel then raises, naming itself, rather than running. cuBLAS reads
    its workspace setting when it starts, so a process sets it before its first matmul (a stage does)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled


def pick_dtype(preference: str, device: torch.device) -> torch.dtype:
    """fp16 on accelerators, fp32 on CPU (half precision on CPU is slow and lossy) unless asked."""
    if preference != "auto":
        return DTYPES[preference]
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


def render_numerics(settings: Model) -> tuple[str, str]:
    """The dtype and device kind images render with under these settings: each makes another picture of the
    same seed (a CUDA generator draws other noise than a CPU one; half precision rounds differently)."""
    device = pick_device(settings.device)
    return DTYPE_NAMES[pick_dtype(settings.dtype, device)], device.type


def base_model_id(model: Model) -> str:
    """A stable identifier of the base model for manifests, fingerprints and image metadata."""
    if model.base == TINY:
        from boothline.pipelines.tiny import TINY_VERSION

        return f"{TINY}@v{TINY_VERSION}"
    if model.base == WORLD:
        return f"{WORLD}@{manifest_hash()}"  # the weights' manifest: new weights, new id
    return model.base + (f"@{model.revision}" if model.revision else "")


def resolve_source(source: str, tiny_dir: Path = TINY_DIR) -> str:
    """A built-in name becomes its directory (`builtin:tiny` is built on first use, the pretrained ones are
    checked against their manifest); anything else is returned as is."""
    if source == TINY:
        from boothline.pipelines.tiny import ensure_tiny_pipeline

        return str(ensure_tiny_pipeline(tiny_dir))
    if source in BUILTIN_DIRS:
        return str(builtin_dir(source))
    return source


def adapts_text_encoder(lora_weights: Path) -> bool:
    """Whether a diffusers-format LoRA file holds text-encoder weights (read from its header alone)."""
    from safetensors import safe_open

    if not lora_weights.is_file():
        return False  # load_lora_weights names the missing file
    with safe_open(str(lora_weights), "pt") as weights:
        return any(key.startswith("text_encoder.") for key in weights.keys())


def read_model_card(directory: str | Path) -> dict | None:
    card = Path(directory) / MODEL_CARD
    return json.loads(card.read_text()) if card.is_file() else None


def _check_pipeline_class(model_index: dict, source: str) -> None:
    name = model_index.get("_class_name", "?")
    if name not in SUPPORTED_PIPELINES:
        raise ModelError(
            f"{source}: is a {name}; boothline supports Stable Diffusion 1.x and 2.x "
            f"(StableDiffusionPipeline) only. SDXL and other pipeline classes are not supported."
        )


def _load_single_file(path: Path, model: Model | None, dtype: torch.dtype):
    from diffusers import StableDiffusionPipeline

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            if any(k.startswith("conditioner.embedders.1") for k in f.keys()):
                raise ModelError(f"{path}: is an SDXL checkpoint; only SD 1.x and 2.x are supported")
    config = model.single_file_config if model else None
    kwargs = {"torch_dtype": dtype, "safety_checker": None, "requires_safety_checker": False}
    if config:
        kwargs["config"] = resolve_source(config)
    try:
        return StableDiffusionPipeline.from_single_file(str(path), **kwargs)
    except OSError as err:
        raise ModelError(
            f"{path}: cannot load this single-file checkpoint ({err}). Offline, set model.single_file_config "
            "to a local diffusers directory of the same architecture."
        ) from None


def load_pipeline(source: str, *, model: Model | None = None, device: torch.device | None = None,
                  dtype: torch.dtype | None = None, scheduler: str | None = None, tiny_dir: Path = TINY_DIR):
    """Load a StableDiffusionPipeline from any supported source, on `device` in `dtype`.

    `tiny_dir` is where `builtin:tiny` is built (a LoRA model trained on it loads it as its base)."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    quiet_loading()
    device = device or torch.device("cpu")
    dtype = dtype or torch.float32
    revision = model.revision if model and model.base == source else None
    variant = model.variant if model and model.base == source else None
    resolved = resolve_source(source, tiny_dir)
    path = Path(resolved)

    card = read_model_card(path) if path.is_dir() else None
    if card and card.get("kind") == "lora":
        weights = path / card.get("weights", "pytorch_lora_weights.safetensors")
        check_lora_support(f"{path} (a LoRA model)", on_text_encoder=adapts_text_encoder(weights))
        base = Model(base=card["base"], **card.get("base_settings", {}))
        pipe = load_pipeline(base.base, model=base, device=device, dtype=dtype, scheduler=scheduler, tiny_dir=tiny_dir)
        pipe.load_lora_weights(str(path), weight_name=weights.name)
        pipe.fuse_lora(lora_scale=card.get("scale", 1.0))
        pipe.unload_lora_weights()  # fused: keep the merged weights, drop the adapter layers
        return pipe

    if path.is_file() and path.suffix in (".ckpt", ".pt", ".pth", ".bin"):
        raise ModelError(f"{path}: a pickled checkpoint, which can run code when loaded; boothline loads weights "
                         "from safetensors only (convert it once, e.g. with diffusers' conversion scripts)")
    if path.is_file() and path.suffix == ".safetensors":
        pipe = _load_single_file(path, model, dtype)
    elif path.is_dir():
        index = path / "model_index.json"
        if not index.is_file():
            raise ModelError(f"{path}: not a diffusers pipeline directory (no model_index.json)")
        _check_pipeline_class(json.loads(index.read_text()), str(path))
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                str(path), torch_dtype=dtype, use_safetensors=True, safety_checker=None,
                requires_safety_checker=False, variant=variant,
            )
        except OSError as err:
            hint = "" if variant else " (if it holds only variant files such as *.fp16.safetensors, set model.variant)"
            raise ModelError(f"{path}: cannot load this diffusers directory: {err}{hint}") from None
    elif not HUB_ID.fullmatch(source):
        raise ModelError(f"{source}: no such model directory or checkpoint file")
    else:
        try:
            _check_pipeline_class(DiffusionPipeline.load_config(source, revision=revision), source)
            pipe = StableDiffusionPipeline.from_pretrained(
                source, revision=revision, variant=variant, torch_dtype=dtype, use_safetensors=True,
                safety_checker=None, requires_safety_checker=False,
            )
        except (OSError, ValueError) as err:
            if isinstance(err, ModelError):
                raise
            raise ModelError(f"{source}: cannot load from the model hub ({type(err).__name__}: {err})") from None

    if scheduler:
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def quiet_loading() -> None:
    """No per-component progress bars or deprecation chatter while loading; stage logs stay readable."""
    import warnings

    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*torch_dtype.*is deprecated", category=FutureWarning)


def make_scheduler(name: str, config):
    import diffusers

    class_name, overrides = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(config, **overrides)


def prepare_for_inference(pipe, model: Model, device: torch.device):
    """Apply the memory/speed switches in `model`, each defaulting to what suits `device`."""
    on_accelerator = device.type in ("cuda", "mps")
    if model.attention_slicing if model.attention_slicing is not None else device.type == "mps":
        pipe.enable_attention_slicing()
    if model.vae_slicing:
        pipe.vae.enable_slicing()
    if model.vae_tiling:
        pipe.vae.enable_tiling()
    if model.cpu_offload and on_accelerator:
        pipe.enable_model_cpu_offload(device=device)
    if model.compile:
        from boothline.pipelines.compiling import compile_pipeline

        compile_pipeline(pipe, model.compile_mode)
    return pipe
