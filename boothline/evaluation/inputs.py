"""What evaluation scores, checked before any model is loaded: the trained model's card, the checkpoints
`eval.checkpoints` asks for (of the same training run), and the subject photos as training saw them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from boothline.errors import StageError
from boothline.params import Params
from boothline.paths import Workspace
from boothline.photos.manifest import read_manifest
from boothline.pipelines.loading import read_model_card
from boothline.training.checkpoints import checkpoint_at, list_checkpoints


def trained_model_card(model_dir: Path) -> dict:
    card = read_model_card(model_dir) if model_dir.is_dir() else None
    if card is None:
        raise StageError(f"{model_dir}: no trained model (no boothline_model.json); run `python -m stages.train` "
                         "first (or `dvc repro`)")
    return card


def checkpoint_dirs(params: Params, card: dict, workspace: Workspace) -> dict[int, Path]:
    """The checkpoint directory of each `eval.checkpoints` step other than the final one."""
    found = {}
    for step in sorted(set(params.eval.checkpoints)):
        if step == card["step"]:
            continue  # the final model itself
        checkpoint = checkpoint_at(step, workspace.checkpoints)
        if checkpoint is None:
            available = [f"step-{c.step}" for c in list_checkpoints(workspace.checkpoints)]
            raise StageError(
                f"eval.checkpoints: step {step} has no checkpoint {workspace.checkpoints / f'step-{step}'} (available: "
                f"{', '.join(available) or 'none'}); training keeps only the newest train.keep_checkpoints, every "
                "train.checkpoint_every steps"
            )
        fingerprint = checkpoint.state.get("fingerprint")
        if fingerprint != card.get("fingerprint"):
            raise StageError(f"{checkpoint.path}: belongs to another training run than {workspace.model_dir} "
                             f"(fingerprint {fingerprint} != {card.get('fingerprint')}); "
                             f"delete {workspace.checkpoints} and retrain")
        found[step] = checkpoint.path
    return found


def subject_images(manifest: Path) -> list[Image.Image]:
    return [centre_square(image) for image in read_manifest(manifest, "validate").images]


def centre_square(image: Image.Image) -> Image.Image:
    """The photo as training sees it (`train.center_crop`): the encoders' processors would otherwise squash a
    non-square photo (DINO's ViT processor resizes straight to 224 x 224) while the generated images are square."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))
