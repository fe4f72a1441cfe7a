"""Atomic writes and the one stale-output remover the stages and jobs share."""

from pathlib import Path

from boothline.io.files import atomic_write_text, remove_stale


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_remove_stale_clears_interrupted_writes_at_any_depth_and_keeps_everything_else(tmp_path):
    for rel in ("a.png", "sub/b.png", "sub/.c.png.abc.tmp", ".d.tmp/unet/weights", "sub/deeper/.e.tmp/x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    remove_stale(tmp_path)
    assert tree(tmp_path) == {"a.png", "sub", "sub/b.png", "sub/deeper"}  # an empty folder is not stale by itself


def test_remove_stale_deletes_what_keep_refuses_and_the_folders_it_empties(tmp_path):
    for rel in ("keep.png", "old/gone.png", "mixed/keep.png", "mixed/gone.png", "mixed/.x.tmp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    remove_stale(tmp_path, keep=lambda path: path.name == "keep.png")
    assert tree(tmp_path) == {"keep.png", "mixed", "mixed/keep.png"}
    remove_stale(tmp_path / "missing")  # nothing there: nothing to do


def test_atomic_write_leaves_no_temp_beside_the_file(tmp_path):
    atomic_write_text(tmp_path / "out/report.json", "{}")
    assert tree(tmp_path) == {"out", "out/report.json"}
