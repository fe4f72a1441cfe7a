"""`pretrain/params.yaml`, parsed once: one section per pretraining stage, with its defaults and ranges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from boothline.errors import ParamsError


class Section(BaseModel):  # as boothline.params' sections; not imported, so pretraining never depends on them
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class Render(Section):
    seed: int = 0
    images: int = Field(60000, ge=16)  # captioned scenes for CLIP, the VAE and the UNet
    heldout_images: int = Field(1000, ge=16)  # scenes of held-out designs, for measuring CLIP
    identity_designs: int = Field(6000, ge=8)  # designs x views for the identity encoder
    identity_views: int = Field(4, ge=2)
    identity_heldout_designs: int = Field(300, ge=8)
    workers: int = Field(2, ge=1)


class Clip(Section):
    seed: int = 0
    steps: int = Field(700, ge=1)
    batch_size: int = Field(128, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    vocab_size: int = Field(1200, ge=600)
    hidden: int = Field(128, ge=16)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    patch: int = Field(8, ge=2)
    projection: int = Field(128, ge=8)
    label_weight: float = Field(1.0, ge=0)  # the renderer's labels, classified from the image embedding
    class_weight: float = Field(1.0, gt=0)  # the class head's share among those labels (1: as each other)
    text_label_weight: float = Field(0.0, ge=0)  # class, context and style, from the text embedding


class Vae(Section):
    seed: int = 0
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(32, ge=1)
    crop: int = Field(32, ge=8)  # trained on crops: the VAE is fully convolutional
    learning_rate: float = Field(1e-3, gt=0)
    kl_weight: float = Field(1e-6, ge=0)
    channels: tuple[int, ...] = (32, 64, 64)  # three blocks: 64 px images, 16 px latents
    latent_channels: int = Field(4, ge=1)


class Identity(Section):
    seed: int = 0
    steps: int = Field(900, ge=1)
    designs_per_batch: int = Field(96, ge=2)  # two views of each: the positives
    temperature: float = Field(0.1, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    hidden: int = Field(128, ge=16)
    layers: int = Field(4, ge=1)
    heads: int = Field(4, ge=1)
    patch: int = Field(8, ge=2)
    label_weight: float = Field(1.0, ge=0)  # the design's attributes, classified from the CLS embedding


class Unet(Section):
    seed: int = 0
    steps: int = Field(6000, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    warmup_steps: int = Field(200, ge=0)
    channels: tuple[int, ...] = (64, 128, 128)  # attention at the two lower resolutions only
    heads: int = Field(4, ge=1)
    caption_dropout: float = Field(0.1, ge=0, le=1)  # empty captions: the unconditional half of guidance
    checkpoint_every: int = Field(250, ge=1)


class PretrainParams(Section):
    data_dir: Path = Path("data/pretrain")  # renders, trained parts, checkpoints (not committed)
    out_dir: Path = Path("pretrained")  # the shipped weights (committed, with their manifest)
    render: Render = Render()
    clip: Clip = Clip()
    vae: Vae = Vae()
    identity: Identity = Identity()
    unet: Unet = Unet()
    # Read by the stages after training, each of which validates it with its own section class (export,
    # evaluation): editing those never changes this file, which every training stage depends on.
    export: dict[str, Any] = Field(default_factory=dict)
    evaluate: dict[str, Any] = Field(default_factory=dict)

    def dataset(self, name: str) -> Path:  # scenes, heldout, identity, identity-heldout
        return self.data_dir / "datasets" / name

    def trained(self, part: str) -> Path:  # clip, vae, identity, unet: the finished fp32 part
        return self.data_dir / part

    def work(self, part: str) -> Path:  # its checkpoint and loss log, kept across interrupted runs
        return self.data_dir / "work" / part


def load_pretrain_params(path: str | Path = "pretrain/params.yaml") -> PretrainParams:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: is not valid YAML ({err})") from None
    try:
        return PretrainParams(**raw)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ParamsError(f"{path}: " + "; ".join(problems)) from None
