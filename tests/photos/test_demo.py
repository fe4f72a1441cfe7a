"""The committed demo subject is what `python -m boothline.photos.demo` draws, pixel for pixel."""

from __future__ import annotations

from PIL import Image

from boothline.photos import demo
from conftest import REPO


def test_the_demo_photos_redraw_as_committed(tmp_path):
    demo.main(tmp_path)
    committed = sorted((REPO / "data/subjects/demo").glob("*.png"))
    assert [p.name for p in committed] == sorted(p.name for p in tmp_path.iterdir())
    for path in committed:
        with Image.open(path) as old, Image.open(tmp_path / path.name) as new:
            assert old.convert("RGB").tobytes() == new.convert("RGB").tobytes(), path.name
