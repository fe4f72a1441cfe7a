"""Draw the demo subject: the world's held-out robot toy (world.designs.DEMO), photographed five ways.

`python -m boothline.photos.demo [DIR]` writes the committed images in `data/subjects/demo/`. The toy keeps
its identity (the boxy robot: teal body, orange visor, yellow antenna ball, a heart on its chest) while the
"photos" vary the backdrop, scale, position, rotation and facing, as a user's photos of one object would.
Pretraining never draws this design, so what the built-in model learns of it, it learns from these.
"""

from __future__ import annotations

import sys
from pathlib import Path

from boothline.paths import DEMO_SUBJECT_DIR
from boothline.world.designs import DEMO, Scene
from boothline.world.render import render

SIZE = 128
SHOTS = [  # scale, dx, dy, flip, rotation, backdrop seed
    (1.10, 0.00, 0.00, False, 0, 11),
    (0.95, -0.10, 0.03, True, -8, 12),
    (1.15, 0.08, -0.02, False, 6, 13),
    (0.90, 0.12, 0.04, True, 10, 14),
    (1.05, -0.06, -0.03, False, -12, 15),
]


def shot(scale: float, dx: float, dy: float, flip: bool, rotation: float, seed: int) -> Scene:
    return Scene(DEMO, scale=scale, dx=dx, dy=dy, flip=flip, rotation=rotation, seed=seed)


def main(out_dir: str | Path = DEMO_SUBJECT_DIR) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("toy-*.png"):
        old.unlink()
    for i, settings in enumerate(SHOTS):
        render(shot(*settings), SIZE).save(out / f"toy-{i + 1}.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
