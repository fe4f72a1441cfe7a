"""A loaded pipeline that renders batches of planned images, each batch with a fresh scheduler of its kind.

Jobs and `regenerate` both render through this, so a regenerated image takes exactly the same path.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from PIL import Image

from boothline.generation.model_uri import ResolvedModel
from boothline.generation.prompts import token_overflow
from boothline.params import Model
from boothline.pipelines.loading import (DTYPE_NAMES, DTYPES, load_pipeline, make_scheduler, pick_device, pick_dtype,
                             prepare_for_inference, use_deterministic_kernels)
from boothline.pipelines.sampling import Request, render_batch


class Renderer:
    def __init__(self, model: ResolvedModel, settings: Model, device: torch.device | None = None,
                 dtype: str | None = None):
        self.device = device or pick_device(settings.device)
        use_deterministic_kernels(settings.deterministic)
        self.dtype = DTYPES[dtype] if dtype else pick_dtype(settings.dtype, self.device)
        self.pipe = load_pipeline(model.source, model=settings, device=self.device, dtype=self.dtype)
        prepare_for_inference(self.pipe, settings, self.device)
        self._scheduler_config = self.pipe.scheduler.config

    @property
    def device_label(self) -> str:
        if self.device.type == "cuda":
            return f"cuda:{torch.cuda.get_device_name(self.device)}"
        return self.device.type

    @property
    def dtype_label(self) -> str:
        return DTYPE_NAMES[self.dtype]

    @property
    def cpu_threads(self) -> int:
        """Intra-op threads when rendering on the CPU: the split of each sum, so part of an image's identity."""
        return torch.get_num_threads() if self.device.type == "cpu" else 0

    def render(self, scheduler: str, requests: Sequence[Request]) -> list[Image.Image]:
        """One pipeline call; requests share steps, guidance and size. A fresh scheduler per call carries
        no state from the previous batch, so a batch renders the same whatever ran before it."""
        self.pipe.scheduler = make_scheduler(scheduler, self._scheduler_config)
        return render_batch(self.pipe, requests)

    def overflow(self, text: str) -> str:
        return token_overflow(self.pipe.tokenizer, text)


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Render with `count` intra-op CPU threads (as the original was; 0 leaves the setting alone)."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
