"""What trains, and how: the UNet (optionally the text encoder) in full, or LoRA adapters on their attention
projections; the VAE is always frozen. Also the optimizer and learning-rate schedule built over them.

Trainable weights stay fp32 whatever `train.mixed_precision` says (autocast computes in half precision,
the master weights and AdamW moments do not): pure bf16 weights lose most updates at DreamBooth learning
rates, because lr * update is below bf16's resolution of a weight.
"""

from __future__ import annotations

import torch

from boothline.errors import StageError
from boothline.params import Lora, Train

UNET, TEXT_ENCODER = "unet", "text_encoder"


def lora_config(lora: Lora, targets: tuple[str, ...]):
    from peft import LoraConfig

    return LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, init_lora_weights="gaussian",
                      target_modules=list(targets))


def add_lora_adapters(unet, text_encoder, lora: Lora, on_text_encoder: bool, seed: int) -> None:
    """Attach LoRA adapters; their initial weights come from `seed`, not from the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(lora_config(lora, lora.targets))
        if on_text_encoder:
            text_encoder.add_adapter(lora_config(lora, lora.text_encoder_targets))


def set_trainable(pipe, train: Train) -> dict[str, torch.nn.Module]:
    """Freeze what does not train, add LoRA adapters when asked; return the modules that have trainable
    weights, by name ("unet", "text_encoder")."""
    pipe.vae.requires_grad_(False).eval()
    pipe.text_encoder.requires_grad_(False).eval()
    if train.lora.enabled:
        pipe.unet.requires_grad_(False)
        add_lora_adapters(pipe.unet, pipe.text_encoder, train.lora, train.train_text_encoder, train.seed)
    else:
        pipe.unet.requires_grad_(True)
        pipe.text_encoder.requires_grad_(train.train_text_encoder)
    models = {UNET: pipe.unet}
    if train.train_text_encoder:
        models[TEXT_ENCODER] = pipe.text_encoder
    for module in models.values():
        module.train()
    return models


def enable_gradient_checkpointing(models: dict[str, torch.nn.Module]) -> None:
    models[UNET].enable_gradient_checkpointing()
    if TEXT_ENCODER in models:
        models[TEXT_ENCODER].gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def trainable_named_parameters(models: dict[str, torch.nn.Module]) -> list[tuple[str, torch.nn.Parameter]]:
    """("unet.<name>" / "text_encoder.<name>", parameter) for every trainable weight, in a fixed order."""
    return [(f"{prefix}.{name}", p) for prefix, module in models.items()
            for name, p in module.named_parameters() if p.requires_grad]


def trainable_state(models: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in trainable_named_parameters(models)}


@torch.no_grad()
def load_trainable_state(models: dict[str, torch.nn.Module], state: dict[str, torch.Tensor], source: str) -> None:
    params = dict(trainable_named_parameters(models))
    missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise StageError(f"{source}: does not match the model being trained "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, p in params.items():
        p.copy_(state[name])


def count_parameters(models: dict[str, torch.nn.Module]) -> int:
    return sum(p.numel() for _, p in trainable_named_parameters(models))


def check_optimizer_available(train: Train) -> None:
    if not train.use_8bit_adam:
        return
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise StageError(
            "train.use_8bit_adam = true needs the bitsandbytes package, which is not installed: "
            "`pip install bitsandbytes` (or `pip install boothline[bnb]`), or set train.use_8bit_adam: false"
        ) from None


def parameter_groups(models: dict[str, torch.nn.Module]) -> dict[str, list[torch.Tensor]]:
    """The trainable weights of each module, by module name."""
    return {prefix: [p for _, p in trainable_named_parameters({prefix: module})] for prefix, module in models.items()}


def make_optimizer(groups: dict[str, list[torch.Tensor]], train: Train) -> torch.optim.Optimizer:
    """AdamW over the weights of each module (`parameter_groups`, or the fp32 masters of compute copies);
    the text encoder may have its own learning rate."""
    param_groups = [{"params": groups[UNET], "lr": train.learning_rate}]
    if TEXT_ENCODER in groups:
        param_groups.append({"params": groups[TEXT_ENCODER],
                             "lr": train.text_encoder_learning_rate or train.learning_rate})
    kwargs = {"betas": (train.adam_beta1, train.adam_beta2), "weight_decay": train.adam_weight_decay,
              "eps": train.adam_epsilon}
    if train.use_8bit_adam:
        check_optimizer_available(train)
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(param_groups, **kwargs)
    # fused: one multi-tensor kernel per update instead of several per weight (CPU, CUDA and MPS alike)
    return torch.optim.AdamW(param_groups, fused=True, **kwargs)


def make_lr_scheduler(optimizer: torch.optim.Optimizer, train: Train):
    from diffusers.optimization import get_scheduler

    return get_scheduler(train.lr_scheduler, optimizer, num_warmup_steps=train.lr_warmup_steps,
                         num_training_steps=train.max_train_steps)
