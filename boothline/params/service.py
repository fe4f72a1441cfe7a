"""The `service` section: what `boothline serve` allows each user, and where it keeps its state."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from boothline.params.sections import Section

# The training settings a user may change through the API (dotted params keys; `train.lora.*` = the section).
DEFAULT_TRAINING_SETTINGS = ("priors.num_images", "priors.steps", "train.max_train_steps", "train.learning_rate",
                             "train.train_text_encoder", "train.prior_loss_weight", "train.lora.*",
                             "eval.max_prompts", "eval.images_per_prompt")


class Uploads(Section):
    max_file_mb: float = Field(10, gt=0)
    max_files: int = Field(20, ge=3)
    max_total_mb: float = Field(100, gt=0)
    max_pixels: int = Field(25_000_000, ge=64 * 64)  # per image, checked from the header before decoding


class Service(Section):
    root: Path = Path("data/service")  # users' workspaces, the database, cached style thumbnails
    database_url: str | None = None  # any SQLAlchemy URL; None: sqlite in `root` (WAL)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    daily_credits: int = Field(50, ge=0)  # free allowance per user per UTC day, spent before granted credits
    image_credits: int = Field(1, ge=0)
    training_credits: int = Field(20, ge=0)
    max_queued_jobs: int = Field(5, ge=1)  # per user
    max_storage_mb: float = Field(500, gt=0)  # per user
    requests_per_minute: int = Field(120, ge=1)  # per key
    signed_url_seconds: int = Field(3600, ge=10)  # lifetime of image, export, grid and event URLs
    # Flows beat every 5 s; a running job silent this long lost its process and is submitted again.
    heartbeat_timeout_s: float = Field(60, ge=15)
    webhook_allow: tuple[str, ...] = ()  # hosts webhooks may be sent to; empty: none
    training_settings: tuple[str, ...] = DEFAULT_TRAINING_SETTINGS
    uploads: Uploads = Uploads()
