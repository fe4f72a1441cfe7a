"""The params sections other than training, one per stage: what each key means, its default and its range."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from boothline.paths import DEMO_SUBJECT_DIR

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
SchedulerName = Literal["dpm++", "dpm++-sde", "euler", "euler-a", "ddim", "pndm", "unipc", "lms", "heun", "ddpm"]
SLUG = re.compile(r"^[a-z0-9-]+$")
BUILTIN_PIPELINES = ("builtin:world", "builtin:tiny")  # pipelines.loading resolves them
MAX_SEED = 2**32 - 1  # AUTOMATIC1111's range; the history stores seeds (and seed + N) as int64



class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class Subject(Section):
    instance_dir: Path = DEMO_SUBJECT_DIR  # relative: from the current directory
    token: str = "sks"
    class_noun: str
    kind: Literal["object", "live"] = "object"
    max_images: int = Field(20, ge=3, le=1000)
    allow_upscale: bool = False

    @field_validator("token")
    @classmethod
    def _one_word(cls, v: str) -> str:
        if not v or not v.strip() or any(c.isspace() for c in v):
            raise ValueError("must be one non-empty word, e.g. 'sks'")
        return v

    @field_validator("class_noun")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty, e.g. 'dog' or 'backpack'")
        return v.strip()


class Model(Section):
    base: str = "builtin:world"
    revision: str | None = None
    variant: str | None = None
    # diffusers config directory (or hub id) for a single-file checkpoint; offline it must be local.
    single_file_config: str | None = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    scheduler: SchedulerName = "dpm++"
    # Inference memory/speed switches; None means "what suits the detected device".
    attention_slicing: bool | None = None
    vae_slicing: bool | None = None
    vae_tiling: bool | None = None
    cpu_offload: bool | None = None
    # torch.compile the UNet and VAE decoder (channels_last, fused QKV): faster after a warm-up compile;
    # images match the eager pipeline within half-precision rounding, not bit for bit.
    compile: bool = False
    compile_mode: CompileMode = "default"  # reduce-overhead adds CUDA graphs (best at small batches)
    # Bit-for-bit repeatable runs on CUDA too (CPU runs always are): deterministic kernels only, some speed lost.
    deterministic: bool = False

    @field_validator("base")
    @classmethod
    def _base_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be 'builtin:world', a local diffusers directory, a .safetensors file or a hub id")
        if v.startswith("builtin:") and v.strip() not in BUILTIN_PIPELINES:
            raise ValueError(f"{v!r} is not a built-in model (known: {', '.join(BUILTIN_PIPELINES)})")
        return v.strip()


class Priors(Section):
    num_images: int = Field(8, ge=0, le=100_000)
    prompt: str = "a photo of a {class_noun}"
    negative_prompt: str = ""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    steps: int = Field(10, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0, le=50)
    batch_size: int = Field(4, ge=1, le=256)
    class_dir: Path | None = None


# Evaluation metrics, as named in data/eval/metrics.json (boothline.evaluation.metrics says which way is better).
MetricName = Literal["dino", "clip_i", "clip_t", "pres", "div", "latent_fidelity"]


class Eval(Section):
    prompts: tuple[str, ...] | None = None
    max_prompts: int | None = Field(None, ge=1)
    images_per_prompt: int = Field(1, ge=1, le=64)
    steps: int = Field(10, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0, le=50)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    batch_size: int = Field(8, ge=1, le=256)
    # The encoders of the paper's metrics; the built-in ones were trained on the world (not comparable with
    # the paper's CLIP ViT-L/14 and DINO ViT-S/16 figures). None: those metrics are null, with the reason.
    clip_model: str | None = "builtin:world-clip"
    dino_model: str | None = "builtin:world-identity"
    checkpoints: tuple[int, ...] = ()
    baseline: bool = True
    # Seeds for the plain instance and class prompts ("a photo of sks toy" / "a photo of a toy"):
    # latent fidelity compares the two, PRES scores the class-prompt images.
    fidelity_seeds: int = Field(4, ge=1, le=256)


class Register(Section):
    tracking_uri: str = "sqlite:///registry/mlflow.db"
    artifact_location: str = "registry/artifacts"
    experiment: str = "boothline"
    model_name: str | None = None
    primary_metric: MetricName = "dino"
    # Minimum values (maximum for pres, where lower is better) a version needs to become champion.
    thresholds: dict[MetricName, float] = Field(default_factory=dict)
    use_best_checkpoint: bool = False

    @field_validator("model_name")
    @classmethod
    def _registry_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (e.g. boothline-rex), or null for "
                             "boothline-<subject folder>")
        return v


class Sweep(Section):
    """Settings to render every value of, like an XYZ grid: each image of the job once per combination."""
    steps: tuple[Annotated[int, Field(ge=1, le=1000)], ...] | None = None
    guidance: tuple[Annotated[float, Field(ge=0, le=50)], ...] | None = None
    scheduler: tuple[SchedulerName, ...] | None = None

    @field_validator("steps", "guidance", "scheduler")
    @classmethod
    def _not_empty(cls, v):
        if v is not None and not v:
            raise ValueError("must list at least one value")
        return v


class Generate(Section):
    prompts: tuple[str, ...] = ("{subject} sitting on a wooden table",)
    styles: tuple[str, ...] | Literal["all"] = "all"
    extra_styles: Path | None = None
    # N seeds from `seed` (seed, seed+1, ...), or an explicit list of seeds
    seeds: int | tuple[int, ...] = 2
    sweep: Sweep = Sweep()
    seed: int = Field(0, ge=0, le=MAX_SEED)
    batch_size: int = Field(8, ge=1, le=256)
    steps: int = Field(10, ge=1, le=1000)
    guidance: float = Field(7.5, ge=0, le=50)
    scheduler: SchedulerName | None = None
    width: int | None = Field(None, ge=8, le=4096)
    height: int | None = Field(None, ge=8, le=4096)
    negative_prompt: str = "lowres, blurry, jpeg artifacts, watermark, text"
    quality_tokens: tuple[str, ...] = ("high quality", "detailed")
    model: str | None = None
    image_format: Literal["png", "jpeg", "webp"] = "png"
    export_zip: bool = False
    history_dir: Path | None = None  # None: the workspace's data/history

    @field_validator("width", "height")
    @classmethod
    def _size_multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError("must be a multiple of 8")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | tuple[int, ...]) -> int | tuple[int, ...]:
        if isinstance(v, int) and not 1 <= v <= 10_000:
            raise ValueError("a number of seeds must be between 1 and 10000")
        if isinstance(v, tuple) and (not v or min(v) < 0 or max(v) > MAX_SEED):
            raise ValueError(f"a list of seeds must be non-empty, each seed between 0 and {MAX_SEED}")
        return v

    @field_validator("styles")
    @classmethod
    def _slugs(cls, v):
        if v != "all":
            if not v:
                raise ValueError("must list at least one style name, or be 'all'")
            bad = [s for s in v if not SLUG.match(s)]
            if bad:
                raise ValueError(f"style names are slugs [a-z0-9-]+, got {bad}")
        return v
