"""The weights the optimizer updates: the modules' own (`ModuleWeights`), or fp32 masters behind bf16
compute copies (`MasterWeights`, `train.compute_copies`). The training loop calls either the same way.

Under plain autocast the modules hold fp32 weights and every forward casts each weight to bf16 again, one
small kernel per weight per step. Here the modules themselves hold the bf16 weights, so nothing is cast in
the step; the optimizer owns fp32 master copies. After backward the bf16 gradients move to the masters
(accumulated in fp32 across micro-steps in one process; under DDP the micro-steps add up in the bf16
gradients that are all-reduced once, on the last), the optimizer updates the masters, and the new masters are
copied back into the modules: a few multi-tensor kernels per step instead of thousands of casts.
With LoRA the frozen base weights compute in bf16 too, as autocast would have them.

The masters are the weights: checkpoints save them and `restore_modules` puts them back into the modules
in fp32 before the trained model is saved. (Pure bf16 weights without masters would lose most updates at
DreamBooth learning rates, which are below bf16's resolution of a weight.)
"""

from __future__ import annotations

import torch

from boothline.training.trainable import (load_trainable_state, parameter_groups, trainable_named_parameters,
                                          trainable_state)

GRADIENT_CHUNK = 64  # tensors per multi-tensor copy: a few kernels per step, a small slice of memory at a time


class ModuleWeights:
    """The trained modules hold fp32 weights, and the optimizer updates those (autocast does the casting)."""

    def __init__(self, models: dict[str, torch.nn.Module]):
        self.models = models
        self.updated = [p for _, p in trainable_named_parameters(models)]  # what the optimizer steps and clips

    def groups(self) -> dict[str, list[torch.Tensor]]:
        return parameter_groups(self.models)

    def state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self.models)

    def load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        load_trainable_state(self.models, state, source)

    def after_backward(self, last_micro_step: bool, num_processes: int) -> None:
        """Gradients stay on the parameters, where the optimizer reads them."""

    def after_step(self) -> None:
        """The optimizer updated the modules' weights in place."""

    def finish(self) -> None:
        """The modules already hold the trained weights."""


def optimized_weights(models: dict[str, torch.nn.Module], compute_copies: bool) -> ModuleWeights | MasterWeights:
    return MasterWeights(models) if compute_copies else ModuleWeights(models)


class MasterWeights:
    def __init__(self, models: dict[str, torch.nn.Module], dtype: torch.dtype = torch.bfloat16):
        self.models = models
        self.named = trainable_named_parameters(models)
        self.masters = [p.detach().float().clone() for _, p in self.named]
        self.updated = self.masters
        for module in models.values():
            torch.nn.Module.to(module, dtype)  # not diffusers' override, which warns about fp32-kept modules

    @property
    def compute(self) -> list[torch.Tensor]:
        return [p for _, p in self.named]

    def groups(self) -> dict[str, list[torch.Tensor]]:
        """The masters by module name, as the optimizer's parameter groups take them."""
        by_module: dict[str, list[torch.Tensor]] = {name: [] for name in self.models}
        for (name, _), master in zip(self.named, self.masters):
            by_module[name.split(".", 1)[0]].append(master)
        return by_module

    def state(self) -> dict[str, torch.Tensor]:
        """The trained weights, fp32, named as `boothline.training.trainable.trainable_state` names them."""
        return {name: master for (name, _), master in zip(self.named, self.masters)}

    @torch.no_grad()
    def load_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Exact fp32 masters from a checkpoint (after checking it fits the modules), then the bf16 copies."""
        load_trainable_state(self.models, state, source)
        for (name, _), master in zip(self.named, self.masters):
            master.copy_(state[name])
        self.masters_to_modules()

    def after_backward(self, last_micro_step: bool, num_processes: int) -> None:
        # Single-process, the masters sum micro-steps in fp32; under DDP the module gradients stay put until
        # the all-reduce of the last micro-step.
        if last_micro_step or num_processes == 1:
            self.gradients_to_masters()

    def after_step(self) -> None:
        self.masters_to_modules()

    def finish(self) -> None:
        self.restore_modules()

    @torch.no_grad()
    def gradients_to_masters(self) -> None:
        """Move the modules' bf16 gradients onto the masters in fp32, adding to what earlier micro-steps
        left there, and free them. A chunk at a time, so the fp32 gradients never coexist with all the bf16
        ones (for SD 1.5's UNet that would be 3.2 + 1.6 GiB at once)."""
        for start in range(0, len(self.masters), GRADIENT_CHUNK):
            chunk = [(p, m) for p, m in zip(self.compute[start:start + GRADIENT_CHUNK],
                                            self.masters[start:start + GRADIENT_CHUNK]) if p.grad is not None]
            fresh = [(p.grad, m) for p, m in chunk if m.grad is None]
            summed = [(p.grad, m) for p, m in chunk if m.grad is not None]
            for _, master in fresh:
                master.grad = torch.empty_like(master)
            for group, update in ((fresh, torch._foreach_copy_), (summed, torch._foreach_add_)):
                if group:
                    update([m.grad for _, m in group], [g for g, _ in group])
            for p, _ in chunk:
                p.grad = None

    @torch.no_grad()
    def masters_to_modules(self) -> None:
        torch._foreach_copy_(self.compute, self.masters)

    @torch.no_grad()
    def restore_modules(self) -> None:
        """Modules back to fp32 holding the master weights exactly (for saving the trained model)."""
        for module in self.models.values():
            torch.nn.Module.to(module, torch.float32)
        self.masters_to_modules()
