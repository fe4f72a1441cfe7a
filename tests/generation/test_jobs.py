"""Job planning (precedence, sweeps, ids, batches, shards) and running (PNG metadata, batch-size invariance,
shards, formats, zip, contact sheets)."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from boothline.errors import ParamsError, PromptError
from boothline.generation.planning import build_job
from boothline.generation.running import finalize_job, prepare_job, run_job
from boothline.generation.styles import StyleError
from boothline.io.image_formats import read_metadata
from boothline.pipelines.loading import base_model_id

SMALL = {"generate": {"styles": ["anime", "manga"], "seeds": 2, "steps": 2, "width": 32, "height": 32,
                      "batch_size": 4, "prompts": ["{subject} on the beach"]}}


def extra_styles(workdir: Path) -> Path:
    path = workdir / "my-styles.yaml"
    path.write_text(yaml.safe_dump({"styles": [
        {"name": "slow", "description": "d", "prompt": "slow {prompt}", "negative": "n",
         "settings": {"steps": 7, "guidance": 3.0, "scheduler": "ddim"}},
        {"name": "plain", "description": "d", "prompt": "plain {prompt}", "negative": "n"},
    ]}))
    return path


def settings(job) -> dict:
    return {(img.style, img.seed): (img.steps, img.guidance, img.scheduler) for img in job.images}


def test_precedence_cli_over_job_file_over_style_over_params(params, workdir):
    p = params({"generate": {**SMALL["generate"], "styles": ["slow", "plain"], "seeds": 1,
                             "extra_styles": str(extra_styles(workdir))}})
    assert settings(build_job(p)) == {("slow", 0): (7, 3.0, "ddim"), ("plain", 0): (2, 7.5, "dpm++")}

    job_file = workdir / "job.yaml"
    job_file.write_text("steps: 5\nseeds: 3\nprompts: ['{subject} in the snow']\n")
    from_file = build_job(p, job_file=job_file)
    assert settings(from_file)[("slow", 0)] == (5, 3.0, "ddim")  # job file beats style; style beats params
    assert settings(from_file)[("plain", 2)] == (5, 7.5, "dpm++")
    assert {img.prompt for img in from_file.images} == {"{subject} in the snow"}

    from_cli = build_job(p, job_file=job_file, overrides={"steps": 4, "seeds": 1, "scheduler": "euler"})
    assert settings(from_cli) == {("slow", 0): (4, 3.0, "euler"), ("plain", 0): (4, 7.5, "euler")}


def test_sweeps_expand_like_an_xyz_grid(params, workdir):
    p = params(SMALL)
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps({"sweep": {"steps": [2, 3]}}))
    job = build_job(p, job_file=job_file, overrides={"sweep": {"guidance": [5, 9]}})
    assert len(job.images) == 2 * 2 * 2 * 2  # styles x steps x guidance x seeds
    assert {(img.steps, img.guidance) for img in job.images} == {(2, 5.0), (2, 9.0), (3, 5.0), (3, 9.0)}
    (sheet,) = job.sheets
    assert sheet.columns == ("anime", "manga")
    assert sheet.rows[:3] == ("seed 0 steps 2 guidance 5", "seed 1 steps 2 guidance 5", "seed 0 steps 2 guidance 9")
    assert len(sheet.rows) == 8 and len(sheet.cells) == 16
    assert build_job(p, overrides={"guidance": 6}).images[0].guidance == 6.0  # a single value: no sweep


def test_image_ids_are_deterministic_and_depend_on_what_shapes_the_image(params, workdir):
    p = params(SMALL)
    first, again = build_job(p), build_job(p)
    assert [i.image_id for i in first.images] == [i.image_id for i in again.images]
    assert first.job_id == again.job_id and first.out_dir == Path("data/jobs") / first.job_id
    assert len({i.image_id for i in first.images}) == 4
    other_seed = build_job(p, overrides={"seed": 10})
    assert not {i.image_id for i in first.images} & {i.image_id for i in other_seed.images}
    copy = shutil.copytree(workdir / "data/base/tiny", workdir / "copy")
    other_model = build_job(p, overrides={"model": str(copy)})
    assert other_model.model.version.startswith("sha256:")
    assert not {i.image_id for i in first.images} & {i.image_id for i in other_model.images}
    seed_list = build_job(p, overrides={"seeds": [7, 3, 7]})
    assert [i.seed for i in seed_list.images] == [7, 3, 7, 3]
    # Half precision, or CUDA's noise generator, makes another picture of the same request: another image.
    bf16 = build_job(params({**SMALL, "model": {"dtype": "bf16"}}))
    assert not {i.image_id for i in first.images} & {i.image_id for i in bf16.images}


def test_prompts_whose_folder_names_collide_get_distinct_folders(params):
    prompts = ["a dog", "a dog 3", "A dog", "a dog!"]
    job = build_job(params({"generate": {**SMALL["generate"], "prompts": prompts, "styles": ["anime"], "seeds": 1}}))
    folders = [Path(img.file).parent.name for img in job.images]
    assert folders == ["a-dog", "a-dog-3", "a-dog-2", "a-dog-4"]


def test_bad_input_fails_before_the_model_is_touched(params, workdir):
    p = params(SMALL)
    missing_model = {"model": str(workdir / "no-such-model")}
    with pytest.raises(StyleError, match="unknown style"):
        build_job(p, overrides={"styles": ["nope"], **missing_model})
    with pytest.raises(PromptError, match="unknown placeholder"):
        build_job(p, overrides={"prompts": ["{subjet} on a table"], **missing_model})
    bad_file = workdir / "job.yaml"
    bad_file.write_text("steps: 0\ncolour: red\n")
    with pytest.raises(ParamsError) as err:
        build_job(p, job_file=bad_file)
    assert str(err.value).startswith(f"{bad_file}: invalid params")
    assert "steps = 0" in str(err.value) and "colour: unknown key" in str(err.value)


def test_fixed_batches_and_shards_partition_the_job(params):
    job = build_job(params({"generate": {**SMALL["generate"], "seeds": 5, "batch_size": 3}}))
    batches = job.batches()
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    shards = [job.shard(i, 3) for i in range(3)]
    ids = [img.image_id for shard in shards for batch in shard for img in batch]
    assert sorted(ids) == sorted(img.image_id for img in job.images)  # disjoint and complete
    assert [len(s) for s in shards] == [2, 1, 1]


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_png_carries_exact_a1111_parameters_and_the_record(params):
    job = build_job(params(SMALL))
    summary = run_job(job)
    assert (summary["rendered"], summary["reused"], summary["missing"]) == (4, 0, 0)
    img = job.images[0]
    text, record = read_metadata(img.file)
    assert Image.open(img.file).info["parameters"] == text == (
        f"anime key visual of sks toy on the beach, cel shading, clean line work, vibrant colors, high quality, "
        f"detailed\nNegative prompt: photo, realistic, 3d render, western cartoon, lowres, blurry, jpeg artifacts, "
        f"watermark, text\nSteps: 2, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 0, Size: 32x32, "
        f"Model hash: {job.model.hash}, Model: tiny"
    )
    assert len(job.model.hash) == 10
    assert record["image_id"] == img.image_id and record["full_prompt"] == img.full_prompt
    assert (record["batch_size"], record["model_version"]) == (4, base_model_id(job.model_settings))

    (sheet,) = summary["sheets"]
    assert sheet.endswith("sks-toy-on-the-beach-sheet.png")
    assert Image.open(sheet).width > 2 * 32
    saved = json.loads((job.out_dir / "summary.json").read_text())
    assert saved["images"] == 4 and saved["styles"] == ["anime", "manga"]

    before = {i.file: Path(i.file).stat().st_mtime_ns for i in job.images}
    again = run_job(job)
    assert (again["rendered"], again["reused"]) == (0, 4)
    assert {i.file: Path(i.file).stat().st_mtime_ns for i in job.images} == before


def test_same_seed_same_image_whatever_the_batch_size_and_shards(params, workdir):
    def render(batch_size: int, shards: int = 1) -> dict[str, np.ndarray]:
        job = build_job(params({"generate": {**SMALL["generate"], "seeds": 3, "batch_size": batch_size}}))
        shutil.rmtree(job.out_dir, ignore_errors=True)
        if shards == 1:
            run_job(job)
        else:
            prepare_job(job)
            results = [run_job(job, shard_index=i, num_shards=shards) for i in range(shards)]
            assert sum(r["rendered"] for r in results) == len(job.images)
            finalize_job(job, results)
        return {img.image_id: pixels(img.file) for img in job.images}

    by4 = render(4)
    assert render(4).keys() == by4.keys()
    assert all(np.array_equal(render(4, shards=2)[k], v) for k, v in by4.items())  # bit-exact: same batches
    by1 = render(1)
    assert max(np.abs(by1[k] - by4[k]).max() for k in by4) <= 1  # across batch sizes: within 1/255


@pytest.mark.parametrize("fmt, ext", [("webp", ".webp"), ("jpeg", ".jpg")])
def test_lossy_formats_carry_parameters_in_exif(params, fmt, ext):
    job = build_job(params({"generate": {**SMALL["generate"], "styles": ["anime"], "seeds": 1, "image_format": fmt}}))
    run_job(job)
    (img,) = job.images
    assert img.file.endswith(ext)
    text, record = read_metadata(img.file)
    assert text.startswith(img.full_prompt + "\nNegative prompt: ") and "Seed: 0, Size: 32x32" in text
    assert record["image_id"] == img.image_id


def test_export_zip_bundles_images_and_metadata(params):
    job = build_job(params({"generate": {**SMALL["generate"], "export_zip": True}}))
    summary = run_job(job)
    with zipfile.ZipFile(summary["zip"]) as archive:
        names = set(archive.namelist())
        rows = archive.read("metadata.csv").decode().splitlines()
    assert names == {str(Path(i.file).relative_to(job.out_dir)) for i in job.images} | {"metadata.csv"}
    assert rows[0].startswith("file,image_id,job_id") and len(rows) == 1 + len(job.images)


def test_compiled_pipeline_renders_what_eager_does(params, workdir, compile_for_tests):
    """model.compile (channels_last, fused QKV, compiled UNet and VAE decoder): the same images within rounding."""
    def render(compile: bool) -> dict[int, np.ndarray]:
        job = build_job(params({"model": {"compile": compile}, "generate": {**SMALL["generate"], "styles": ["anime"]}}))
        shutil.rmtree(job.out_dir, ignore_errors=True)
        run_job(job)
        return {img.seed: pixels(img.file) for img in job.images}

    eager, compiled = render(False), render(True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # the UNet and the VAE decoder
    assert compile_for_tests() == {}, "graph breaks in the compiled pipeline"
    assert eager.keys() == compiled.keys() and max(np.abs(eager[k] - compiled[k]).max() for k in eager) <= 2


def test_deterministic_kernels_render_the_same_images(params, workdir):
    """model.deterministic reaches the renderer (jobs, the generate stage, regenerate); CPU kernels were
    deterministic already, so the pixels do not move."""
    from boothline.pipelines.loading import use_deterministic_kernels

    def render(deterministic: bool) -> dict[int, np.ndarray]:
        job = build_job(params({"model": {"deterministic": deterministic},
                                "generate": {**SMALL["generate"], "styles": ["anime"]}}))
        shutil.rmtree(job.out_dir, ignore_errors=True)
        run_job(job)
        return {img.seed: pixels(img.file) for img in job.images}

    eager = render(False)
    try:
        deterministic = render(True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        use_deterministic_kernels(False)
    assert eager.keys() == deterministic.keys() and all(np.array_equal(eager[k], deterministic[k]) for k in eager)
