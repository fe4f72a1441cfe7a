"""Reading a rendered dataset (datasets.py writes them) and turning its pixels into model inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch


def load_dataset(directory: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """`images.npy` (memory-mapped, N x 64 x 64 x 3 uint8) and `items.parquet` (one row per image)."""
    return np.load(directory / "images.npy", mmap_mode="r"), pd.read_parquet(directory / "items.parquet")


def pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> the [-1, 1] N x 3 x H x W tensor every world model takes (processor: mean = std = 0.5)."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
