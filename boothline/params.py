"""Typed, validated pipeline parameters: `params.yaml` parsed once, checked before any work starts.

One section per stage. Relative paths are kept relative, so they resolve from the current directory.
An invalid file raises `ParamsError` whose message names the key, the value and what is allowed.
"""

from __future__ import annotations

import copy

import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from boothline.paths import DEMO_SUBJECT_DIR, HISTORY_DIR

CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
SchedulerName = Literal["dpm++", "dpm++-sde", "euler", "euler-a", "ddim", "pndm", "unipc", "lms", "heun", "ddpm"]
SLUG = re.compile(r"^[a-z0-9-]+$")
MAX_SEED = 2**32 - 1  # AUTOMATIC1111's range; the history stores seeds (and seed + N) as int64


class ParamsError(ValueError):
    """A params file that cannot be used; the message is meant for the user, not a traceback."""


class PromptError(ParamsError):
    """A prompt template that cannot be expanded (an unknown `{placeholder}`)."""


SUBJECT_PLACEHOLDERS = ("{subject}", "{token}", "{class_noun}")
BRACED = re.compile(r"\{[^{}]*\}")


def unknown_placeholders(template: str) -> list[str]:
    return sorted(set(BRACED.findall(template)) - set(SUBJECT_PLACEHOLDERS))


def fill_subject(template: str, token: str, class_noun: str) -> str:
    """Expand subject placeholders; a bare subject token also gets its class noun ("a sks" -> "a sks dog").

    Placing the class noun next to the token is what DreamBooth trained on, so the model recognises both.
    """
    unknown = unknown_placeholders(template)
    if unknown:
        raise PromptError(f"prompt {template!r}: unknown placeholder(s) {', '.join(unknown)} "
                          f"(known: {', '.join(SUBJECT_PLACEHOLDERS)})")
    text = template.replace("{subject}", token).replace("{token}", token).replace("{class_noun}", class_noun)
    bare_token = re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])(?!\s+{re.escape(class_noun)}\b)")
    return bare_token.sub(f"{token} {class_noun}", text)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class Subject(Section):
    instance_dir: Path = DEMO_SUBJECT_DIR
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
    base: str = "builtin:tiny"
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
            raise ValueError("must be 'builtin:tiny', a local diffusers directory, a .safetensors file or a hub id")
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


class Lora(Section):
    enabled: bool = False
    rank: int = Field(4, ge=1, le=1024)
    alpha: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    text_encoder_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")

    @field_validator("targets")
    @classmethod
    def _targets_not_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("must name at least one module, e.g. [to_q, to_k, to_v, to_out.0]")
        return v


class Train(Section):
    instance_prompt: str = "a photo of {token} {class_noun}"
    resolution: int = Field(64, ge=8, le=4096)
    center_crop: bool = True
    random_flip: bool = False
    max_train_steps: int = Field(50, ge=1)
    batch_size: int = Field(1, ge=1, le=256)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    learning_rate: float = Field(5e-6, gt=0, le=1)
    text_encoder_learning_rate: float | None = Field(None, gt=0, le=1)
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    lr_warmup_steps: int = Field(0, ge=0)
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    adam_weight_decay: float = Field(1e-2, ge=0)
    adam_epsilon: float = Field(1e-8, gt=0)
    max_grad_norm: float = Field(1.0, gt=0)
    use_8bit_adam: bool = False
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    cache_latents: bool = True
    train_text_encoder: bool = False
    prior_loss_weight: float = Field(1.0, ge=0)
    snr_gamma: float | None = Field(None, gt=0)
    offset_noise: float = Field(0.0, ge=0, le=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    checkpoint_every: int = Field(25, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    validate_every: int = Field(0, ge=0)
    validation_prompts: tuple[str, ...] = ()
    validation_steps: int = Field(10, ge=1, le=1000)
    validation_seeds: int = Field(2, ge=1, le=16)  # images per validation prompt, seeds 0..n-1
    validation_guidance: float = Field(7.5, ge=0, le=50)
    lora: Lora = Lora()
    export_single_file: bool = False
    # Speed: the same loss and results with fewer GPU kernels and host syncs (BENCHMARKS.md has figures).
    compute_copies: bool = False  # bf16 copies of the trained modules compute; fp32 master weights update
    compile: bool = False  # torch.compile the trained modules (warm-up compile, then faster steps)
    compile_mode: CompileMode = "default"  # reduce-overhead adds CUDA graphs
    channels_last: bool | None = None  # NHWC UNet activations; None = on CUDA
    log_every: int = Field(10, ge=1)  # steps between reading losses back from the device (each read waits)
    export_dtype: Literal["fp32", "fp16", "bf16"] = "fp16"  # of the single-file export

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError("must be a multiple of 8 (e.g. 64, 512, 768)")
        return v

    @model_validator(mode="after")
    def _compute_copies_are_bf16(self) -> "Train":
        if self.compute_copies and self.mixed_precision != "bf16":
            raise ValueError(f"train.compute_copies = true needs train.mixed_precision = 'bf16' "
                             f"(got {self.mixed_precision!r}): the copies compute in bf16")
        return self

    @model_validator(mode="after")
    def _compute_copies_take_fp32_adam(self) -> "Train":
        if self.compute_copies and self.use_8bit_adam:
            raise ValueError("train.compute_copies = true keeps fp32 master weights for AdamW; 8-bit Adam "
                             "(train.use_8bit_adam) does not take them: turn one of the two off")
        return self

    @model_validator(mode="after")
    def _validation_grids_need_prompts(self) -> "Train":
        if self.validate_every and not self.validation_prompts:
            raise ValueError(f"train.validate_every = {self.validate_every} but train.validation_prompts is empty: "
                             "list at least one prompt, or set validate_every: 0")
        return self

    @model_validator(mode="after")
    def _warmup_needs_a_warmup_schedule(self) -> "Train":
        if self.lr_warmup_steps and self.lr_scheduler == "constant":  # diffusers' constant schedule ignores it
            raise ValueError(f"train.lr_warmup_steps = {self.lr_warmup_steps} has no effect with train.lr_scheduler "
                             f"= 'constant': use 'constant_with_warmup', or lr_warmup_steps = 0")
        return self

    @model_validator(mode="after")
    def _cuda_graphs_take_one_micro_step(self) -> "Train":
        # A CUDA graph's outputs are overwritten by its next replay, and a gradient left for the next micro-step
        # to add to is such an output (pytorch/pytorch#169545: an error, or silently wrong gradients).
        if self.compile and self.compile_mode in CUDA_GRAPH_MODES and self.gradient_accumulation_steps > 1:
            raise ValueError(f"train.compile_mode = {self.compile_mode!r} captures CUDA graphs, which cannot "
                             f"accumulate gradients over micro-steps: use train.gradient_accumulation_steps = 1 "
                             f"(got {self.gradient_accumulation_steps}) or a compile_mode without CUDA graphs "
                             f"('default', 'max-autotune-no-cudagraphs')")
        return self


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
    clip_model: str | None = None
    dino_model: str | None = None
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
    primary_metric: MetricName = "latent_fidelity"
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
    history_dir: Path = HISTORY_DIR

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


# pydantic warns that the `register` section shadows ABCMeta.register; the key name is part of the contract.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class Params(Section):
    subject: Subject
    model: Model = Model()
    priors: Priors = Priors()
    train: Train = Train()
    eval: Eval = Eval()
    register: Register = Register()
    generate: Generate = Generate()

    @model_validator(mode="after")
    def _templates_expand(self) -> "Params":
        templates = {"train.instance_prompt": self.train.instance_prompt, "priors.prompt": self.priors.prompt,
                     **{f"train.validation_prompts[{i}]": t for i, t in enumerate(self.train.validation_prompts)},
                     **{f"eval.prompts[{i}]": t for i, t in enumerate(self.eval.prompts or ())}}
        for key, template in templates.items():
            if unknown := unknown_placeholders(template):
                raise ValueError(f"{key} = {template!r}: unknown placeholder(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(SUBJECT_PLACEHOLDERS)})")
        return self

    @model_validator(mode="after")
    def _prompts_fit_subject(self) -> "Params":
        if self.subject.token not in self.fill(self.train.instance_prompt).split():
            raise ValueError(
                f"train.instance_prompt = {self.train.instance_prompt!r}: must contain the subject token "
                f"({self.subject.token!r}, or the placeholder {{token}} or {{subject}})"
            )
        return self

    @model_validator(mode="after")
    def _deterministic_runs_are_eager(self) -> "Params":
        compiled = [f"{section}.compile" for section in ("model", "train") if getattr(self, section).compile]
        if self.model.deterministic and compiled:
            raise ValueError(f"model.deterministic = true promises bit-for-bit repeats, and compiled kernels are only "
                             f"held to matching eager ones within rounding: set {' and '.join(compiled)} to false, "
                             f"or model.deterministic to false")
        return self

    @property
    def instance_prompt(self) -> str:
        return self.fill(self.train.instance_prompt)

    @property
    def class_prompt(self) -> str:
        return self.fill(self.priors.prompt)

    def fill(self, template: str) -> str:
        """Expand {subject} ("sks dog"), {token} and {class_noun} in a prompt template (`fill_subject`)."""
        return fill_subject(template, self.subject.token, self.subject.class_noun)

    def section_dict(self, name: str) -> dict[str, Any]:
        return getattr(self, name).model_dump(mode="json")


def dotted(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as flat `section.key.subkey: value` pairs (what a params key looks like)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(dotted(value, name) if isinstance(value, dict) else {name: value})
    return flat


def format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid params"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "is required"
        value = e.get("input")
        shown = "" if e["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {key}{shown}: {msg}" if key else f"  {msg}")
    return "\n".join(lines)


def parse_params(data: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(format_errors(err, source)) from None


def deep_merge(base: dict, overrides: dict) -> dict:
    """A copy of `base` with `overrides` (same shape) merged in, section by section."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """The params file, with `overrides` shaped like it ({"train": {"max_train_steps": 10}}) merged over it."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (subject, model, priors, ...)")
    source = f"{path} with overrides {overrides}" if overrides else str(path)
    return parse_params(deep_merge(data, overrides or {}), source)
