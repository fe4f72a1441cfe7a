"""Draw the demo subject: the world's demo robot (`world.designs.DEMO`), photographed five ways.

`python -m boothline.photos.demo [DIR]` writes the committed images in `data/subjects/demo/`. They are
renders of the one toy design the pretraining never draws (teal body, orange visor, yellow antenna ball, a
heart on its chest), on the world's plain studio backdrops, with pose, scale, position and backdrop varied
as a user's photos of one object would vary. 128 px, as the world renders before downsampling.
"""

from __future__ import annotations

import sys
from pathlib import Path

from boothline.paths import DEMO_SUBJECT_DIR
from boothline.world.designs import DEMO, Scene
from boothline.world.render import render

SIZE = 128
SHOTS = [  # scale, dx, dy, facing left, rotation; the shot's number seeds its backdrop
    (1.10, 0.00, 0.02, False, 0.0),
    (0.95, -0.10, 0.04, True, -7.0),
    (1.15, 0.08, -0.02, False, 6.0),
    (0.85, 0.12, 0.05, True, 9.0),
    (1.00, -0.06, -0.04, False, -10.0),
]


def demo_photos() -> list:
    return [render(Scene(DEMO, scale=scale, dx=dx, dy=dy, flip=flip, rotation=rotation, seed=i), SIZE)
            for i, (scale, dx, dy, flip, rotation) in enumerate(SHOTS)]


def main(out_dir: str | Path = DEMO_SUBJECT_DIR) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(demo_photos()):
        photo.save(out / f"toy-{i + 1}.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
