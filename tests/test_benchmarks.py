"""The benchmark scripts run end to end at tiny size, so the GPU tables cannot rot between device sessions.
Eager paths only: the compiled ones are the stages' own fast paths, which their tests cover."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str, env: dict | None = None) -> list[dict]:
    done = subprocess.run([sys.executable, f"benchmarks/{script}", "--model", "tiny", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_training_benchmark_reports_rate_and_flops_per_configuration():
    # The other paths are params overrides of the same run (model.deterministic is tested with the stage).
    rows = run_benchmark("training.py", "--steps", "4", "--warmup", "1", "--configs", "unet,lora", "--paths", "eager")
    assert [(r["config"], r["path"]) for r in rows] == [("unet", "eager"), ("lora", "eager")]
    unet, lora = rows
    assert all(r["steady_steps_per_s"] > 0 and r["step_tflop"] > 0 and r["mfu"] is None for r in rows)
    assert lora["trainable_params"] < unet["trainable_params"]


def test_generation_benchmark_reports_images_per_second():
    (row,) = run_benchmark("generation.py", "--batch-sizes", "2", "--images", "2", "--steps", "2", "--paths", "eager")
    assert row["batch"] == 2 and row["images"] == 2 and row["images_per_s"] > 0 and row["image_tflop"] > 0


def test_time_to_model_runs_the_stages_with_the_callers_pythonpath(tmp_path):
    # On the device the carried wheels reach the stages only through PYTHONPATH.
    (tmp_path / "sitecustomize.py").write_text(f"open({str(tmp_path / 'seen')!r}, 'a').write('x')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    (row,) = run_benchmark("time_to_model.py", "--class-images", "2", "--steps", "3", "--paths", "eager", env=env)
    assert row["path"] == "eager" and row["compile_cache"] is None
    assert row["steps"] == 3 and row["steps_per_s"] > 0 and all(row[f"{s}_s"] > 0 for s in ("validate", "priors", "train"))
    assert len((tmp_path / "seen").read_text()) >= 4  # the script itself and its three stage processes


def test_a_project_starts_from_the_carried_compile_cache_and_saves_back_only_when_it_ends_well(tmp_path):
    from benchmarks.project import project
    from boothline.paths import COMPILE_CACHE_DIR

    carried = tmp_path / "compile-cache"
    carried.mkdir()
    (carried / "train.bin").write_bytes(b"from an earlier call")
    with project({}, carried):
        assert (COMPILE_CACHE_DIR / "train.bin").read_bytes() == b"from an earlier call"
        (COMPILE_CACHE_DIR / "inference.bin").write_bytes(b"compiled here")
    assert {p.name: p.read_bytes() for p in carried.iterdir()} == {"train.bin": b"from an earlier call",
                                                                  "inference.bin": b"compiled here"}
    with pytest.raises(RuntimeError), project({}, carried):
        (COMPILE_CACHE_DIR / "train.bin").write_bytes(b"half written")
        raise RuntimeError("the run failed")
    assert (carried / "train.bin").read_bytes() == b"from an earlier call"


def test_device_wheels_are_the_locks_entries():
    """The wheels a device session carries are the lock's versions, with its hashes, for the device's CPython."""
    done = subprocess.run([sys.executable, "benchmarks/device_wheels.py", "--print"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    lock = (REPO / "requirements/test.txt").read_text()
    assert [line.split("==")[0] for line in lines] == ["diffusers", "importlib-metadata", "pydantic", "pydantic-core",
                                                       "annotated-types", "typing-inspection", "pandera", "typeguard"]
    for line in lines:
        pin, *hashes = line.split()
        assert f"\n{pin} \\\n" in lock and hashes and all(h.startswith("--hash=sha256:") and h[7:] in lock
                                                         for h in hashes)
