"""One training loop for every pretraining stage: seeded per step, checkpointed, resumable.

Each step's randomness comes from `torch.Generator().manual_seed(seed * 1_000_003 + step)`, so a run that is
stopped and resumed from its last checkpoint takes the same steps as one that never stopped. The learning
rate warms up linearly, then follows a cosine down to a tenth. Losses go to `loss.csv`, one row per step.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class Trainer:
    """Trains `model` for `steps` steps of `loss_fn(step, generator) -> loss`, keeping an EMA copy if asked."""

    def __init__(self, model: torch.nn.Module, work_dir: Path, *, steps: int, lr: float, seed: int,
                 warmup: int = 100, weight_decay: float = 0.01, ema_decay: float | None = None,
                 checkpoint_every: int = 500, fingerprint: str = ""):
        self.model, self.work_dir, self.steps = model, work_dir, steps
        self.lr, self.seed, self.warmup = lr, seed, warmup
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=lr, weight_decay=weight_decay)
        self.ema = copy.deepcopy(model).requires_grad_(False) if ema_decay else None
        self.ema_decay = ema_decay
        self.checkpoint_every = checkpoint_every
        self.step = 0
        marker = work_dir / "fingerprint"
        if work_dir.exists() and (not marker.is_file() or marker.read_text() != fingerprint):
            shutil.rmtree(work_dir)  # another configuration's checkpoint: start afresh
        work_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint)
        self._resume()

    @property
    def checkpoint(self) -> Path:
        return self.work_dir / "checkpoint.pt"

    def _resume(self) -> None:
        if not self.checkpoint.is_file():
            (self.work_dir / "loss.csv").write_text("step,loss,lr,seconds\n")
            return
        state = torch.load(self.checkpoint, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = state["step"]
        lines = (self.work_dir / "loss.csv").read_text().splitlines()[: self.step + 1]
        (self.work_dir / "loss.csv").write_text("\n".join(lines) + "\n")
        log.info("resumed %s at step %d of %d", self.work_dir, self.step, self.steps)

    def _save(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        tmp = self.checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)  # a kill mid-save keeps the previous checkpoint

    def run(self, loss_fn: Callable[[int, torch.Generator], torch.Tensor], log_every: int = 50) -> torch.nn.Module:
        self.model.train()
        started, first = time.monotonic(), self.step
        with open(self.work_dir / "loss.csv", "a") as losses:
            while self.step < self.steps:
                lr = learning_rate(self.step, self.steps, self.lr, self.warmup)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                t0 = time.monotonic()
                loss = loss_fn(self.step, step_generator(self.seed, self.step))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.parameters, 1.0)
                self.optimizer.step()
                if self.ema is not None:
                    decay = min(self.ema_decay, (1 + self.step) / (10 + self.step))
                    with torch.no_grad():
                        for e, p in zip(self.ema.parameters(), self.model.parameters()):
                            e.lerp_(p, 1 - decay)
                self.step += 1
                losses.write(f"{self.step},{loss.item():.6f},{lr:.3g},{time.monotonic() - t0:.3f}\n")
                if self.step % log_every == 0 or self.step == self.steps:
                    losses.flush()
                    rate = (self.step - first) / (time.monotonic() - started)
                    log.info("step %d/%d loss %.4f (%.2f steps/s, %.0f min left)", self.step, self.steps,
                             loss.item(), rate, (self.steps - self.step) / rate / 60)
                if self.step % self.checkpoint_every == 0 or self.step == self.steps:
                    losses.flush()
                    self._save()
        self.model.eval()
        return self.ema if self.ema is not None else self.model


def save_atomically(save: Callable[[Path], None], out_dir: Path) -> Path:
    """`save(tmp)` into a temporary sibling, then rename it to `out_dir`."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
