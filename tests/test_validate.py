"""Every bad-input case of the validate stage: exit 1, one `<file>: <reason>` line per problem, old outputs kept."""

import io
import json
import os
import shutil

import pandas as pd
from PIL import Image

from boothline.entry import run_stage
from boothline.io.images import load_rgb
from conftest import run_module
from stages import validate

DEMO = "data/subjects/demo"


def run_validate(capsys) -> tuple[int, str]:
    code = run_stage("validate", validate.run, ["--params", "params.yaml"])
    return code, capsys.readouterr().err


def photo(path, size=(96, 80), color=(200, 60, 40), mode="RGB", fmt=None, **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt, **save)
    return path


def rejects(capsys, file: str, reason: str) -> str:
    code, err = run_validate(capsys)
    assert code == 1
    assert "Traceback" not in err
    assert any(line.startswith(f"{file}: ") and reason in line for line in err.splitlines()), err
    return err


def test_demo_subject_is_accepted(workdir, capsys):
    code, _ = run_validate(capsys)
    assert code == 0
    manifest = pd.read_parquet("data/validated/manifest.parquet")
    assert list(manifest.columns) == ["file", "sha256", "format", "mode", "width", "height", "bytes"]
    assert len(manifest) == 5 and manifest.sha256.is_unique
    assert json.loads(open("data/validated/report.json").read())["status"] == "accepted"


def test_corrupt_file(workdir, capsys):
    (workdir / DEMO / "broken.jpg").write_bytes(os.urandom(3000))
    rejects(capsys, f"{DEMO}/broken.jpg", "not an image, or corrupt")


def test_truncated_image(workdir, capsys):
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 50).convert("RGB").save(buf, format="JPEG", quality=95)
    (workdir / DEMO / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    rejects(capsys, f"{DEMO}/cut.jpg", "corrupt or truncated image")


def test_non_image(workdir, capsys):
    (workdir / DEMO / "notes.txt").write_text("my dog is called Rex\n")
    rejects(capsys, f"{DEMO}/notes.txt", "not an image")


def test_unsupported_format(workdir, capsys):
    photo(workdir / DEMO / "anim.gif", mode="P", color=3)
    rejects(capsys, f"{DEMO}/anim.gif", "unsupported format GIF (supported: JPEG, MPO, PNG, WEBP, BMP, TIFF)")


def test_too_small(workdir, capsys):
    photo(workdir / DEMO / "tiny.png", size=(100, 40))
    rejects(capsys, f"{DEMO}/tiny.png", "100x40 is smaller than 64 px on the short side")


def test_too_small_is_a_warning_when_upscaling_allowed(workdir, capsys, write_params):
    write_params({"subject": {"allow_upscale": True}})
    photo(workdir / DEMO / "tiny.png", size=(100, 40))
    code, err = run_validate(capsys)
    assert code == 0
    assert f"{DEMO}/tiny.png: 100x40 is smaller than 64 px; it will be upscaled" in err
    report = json.loads(open("data/validated/report.json").read())
    assert report["warnings"][0]["file"] == f"{DEMO}/tiny.png"


def test_exact_duplicate(workdir, capsys):
    shutil.copy(workdir / DEMO / "toy-2.png", workdir / DEMO / "toy-2b.png")
    rejects(capsys, f"{DEMO}/toy-2b.png", f"exact duplicate of {DEMO}/toy-2.png")


def test_too_few_images(workdir, capsys):
    for name in ("toy-3.png", "toy-4.png", "toy-5.png"):
        (workdir / DEMO / name).unlink()
    rejects(capsys, DEMO, "only 2 usable images; at least 3 are needed")


def test_too_many_images(workdir, capsys, write_params):
    write_params({"subject": {"max_images": 4}})
    rejects(capsys, DEMO, "5 images, more than the allowed 4 (subject.max_images)")


def test_symlink_outside_subject_dir(workdir, capsys, tmp_path_factory):
    outside = photo(tmp_path_factory.mktemp("elsewhere") / "secret.png")
    os.symlink(outside, workdir / DEMO / "link.png")
    rejects(capsys, f"{DEMO}/link.png", "resolves outside data/subjects/demo")


def test_float_tiff_is_refused(workdir, capsys):
    photo(workdir / DEMO / "scan.tif", mode="F", color=0.5)
    rejects(capsys, f"{DEMO}/scan.tif", "32-bit float pixels (mode F) are not supported")


def test_symlink_loop(workdir, capsys):
    os.symlink("loop.png", workdir / DEMO / "loop.png")
    rejects(capsys, f"{DEMO}/loop.png", "broken symlink (its target is missing or loops back)")


def test_malformed_exif_is_a_reason_not_a_traceback(workdir, capsys):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate: exif_transpose rewrites the tags
    exif[0x011F] = 1.0  # YPosition, a rational, retyped below as text: Pillow raises TypeError writing it back
    malformed = exif.tobytes().replace(b"\x01\x1f\x00\x05", b"\x01\x1f\x00\x02")
    photo(workdir / DEMO / "odd-exif.jpg", fmt="JPEG", exif=malformed)
    rejects(capsys, f"{DEMO}/odd-exif.jpg", "unreadable EXIF metadata (TypeError")


def test_camera_jpegs_with_an_embedded_preview_are_accepted(workdir, capsys):
    first = Image.new("RGB", (96, 80), (10, 120, 30))
    first.save(workdir / DEMO / "camera.jpg", format="MPO", save_all=True, append_images=[Image.new("RGB", (96, 80))])
    photo(workdir / DEMO / ".cache" / "thumb.png")  # inside a hidden folder: skipped like hidden files
    assert run_validate(capsys)[0] == 0
    manifest = pd.read_parquet("data/validated/manifest.parquet")
    assert manifest.set_index("file").loc[f"{DEMO}/camera.jpg", "format"] == "MPO"
    assert not [p for p in manifest["file"] if ".cache" in p]
    assert load_rgb(f"{DEMO}/camera.jpg").getpixel((5, 5))[1] > 100  # the first frame, the photo


def test_decompression_bomb(workdir, capsys):
    photo(workdir / DEMO / "bomb.png", size=(9000, 8000), mode="1", color=0)  # 72 MP, a few KB on disk
    rejects(capsys, f"{DEMO}/bomb.png", "decompression bomb guard: 9000x8000 is 72 MP, over 64 MP")


def test_all_problems_listed_at_once_and_old_outputs_kept(workdir, capsys):
    assert run_validate(capsys)[0] == 0
    before = open("data/validated/manifest.parquet", "rb").read()
    (workdir / DEMO / "notes.txt").write_text("x")
    photo(workdir / DEMO / "tiny.png", size=(10, 10))
    err = run_validate(capsys)[1]
    assert len(err.strip().splitlines()) == 2
    for path in sorted((workdir / DEMO).glob("toy-*.png"))[:-2]:  # two photos left, one too few
        path.unlink()
    err = run_validate(capsys)[1]
    assert "only 2 usable images; at least 3 are needed" in err and "tiny.png" in err  # every problem at once
    assert open("data/validated/manifest.parquet", "rb").read() == before
    assert json.loads(open("data/validated/report.json").read())["status"] == "rejected"


def test_modes_and_exif_orientation_are_normalised(workdir, capsys):
    photo(workdir / DEMO / "gray.png", mode="L", color=120)
    photo(workdir / DEMO / "alpha.png", mode="RGBA", color=(0, 0, 255, 0))
    photo(workdir / DEMO / "print.jpg", mode="CMYK", color=(0, 255, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored 120x80, shown 80x120
    photo(workdir / DEMO / "phone.jpg", size=(120, 80), exif=exif.tobytes())
    assert run_validate(capsys)[0] == 0
    manifest = pd.read_parquet("data/validated/manifest.parquet").set_index("file")
    assert manifest.loc[f"{DEMO}/phone.jpg", ["width", "height"]].tolist() == [80, 120]
    assert manifest.loc[f"{DEMO}/print.jpg", "mode"] == "CMYK"
    for name in ("gray.png", "alpha.png", "print.jpg", "phone.jpg"):
        image = load_rgb(workdir / DEMO / name)
        assert image.mode == "RGB"
    assert load_rgb(workdir / DEMO / "phone.jpg").size == (80, 120)
    assert load_rgb(workdir / DEMO / "alpha.png").getpixel((0, 0)) == (255, 255, 255)  # transparent -> white


def test_command_line_exit_code_and_message(workdir):
    (workdir / DEMO / "notes.txt").write_text("x")
    proc = run_module("stages.validate", cwd=workdir)
    assert proc.returncode == 1
    assert f"{DEMO}/notes.txt: not an image" in proc.stderr
    assert "Traceback" not in proc.stderr
