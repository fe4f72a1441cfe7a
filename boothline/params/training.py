"""The `train` section: DreamBooth's settings, and the combinations refused on any device."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from boothline.params.sections import CUDA_GRAPH_MODES, MAX_SEED, CompileMode, Section

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
