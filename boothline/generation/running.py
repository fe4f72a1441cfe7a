"""Running a generation job: render what is missing, log it, then contact sheets, zip and summary.

One process:      run_job(job)
Prefect shards:   prepare_job(job); run_job(job, shard_index=i, num_shards=n) for each i (anywhere, at
                  once); finalize_job(job, results). Shards are whole batches; together they cover the job.
accelerate:       run_launched(job) in every process (`accelerate launch --num_processes N ...`): process 0
                  prepares, every process renders its shard, process 0 finalizes after all are done.

Files are encoded and written by a few threads while the next batch renders (PIL and zlib release the GIL);
a batch's history rows are appended once all its files exist.

Resume: each image file is written atomically and logged (history) only after it exists, so a kill
leaves no row without its image and no half-written file. A rerun skips images on disk, logs those on disk
but not yet logged (from the record inside the file), and renders only batches with a missing image.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import time
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm import tqdm

from boothline.generation.history import COLUMNS, append_rows, read_history
from boothline.generation.planning import SUMMARY, ZIP_NAME, ImagePlan, Job
from boothline.generation.renderer import Renderer
from boothline.io.files import FILE_WRITERS, atomic_write_bytes, atomic_write_text, remove_stale, sha256_file
from boothline.io.image_formats import pixel_sha256, read_record, write_image
from boothline.io.images import a1111_parameters, save_png
from boothline.io.sheets import contact_sheet
from boothline.pipelines import compiling
from boothline.pipelines.loading import A1111_SAMPLER_NAMES
from boothline.pipelines.processes import launched_processes

log = logging.getLogger(__name__)
RECORD_KEYS = [c for c in COLUMNS if c not in ("created_at", "file", "sha256", "seconds")]
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def parameters_text(record: dict, model_name: str) -> str:
    """The AUTOMATIC1111 `parameters` text of an image record."""
    return a1111_parameters(record["full_prompt"], record["negative_prompt"], steps=record["steps"],
                            sampler=A1111_SAMPLER_NAMES[record["scheduler"]], cfg_scale=record["guidance"],
                            seed=record["seed"], width=record["width"], height=record["height"],
                            model_hash=record["model_hash"], model_name=model_name)


def image_record(img: ImagePlan, job: Job, renderer: Renderer, batch: tuple[ImagePlan, ...], pixels: str,
                 truncated: str) -> dict:
    """Everything that shaped the image (stored inside the file; deterministic, so files are too)."""
    return {
        "image_id": img.image_id, "job_id": job.job_id, "prompt": img.prompt, "style": img.style,
        "full_prompt": img.full_prompt, "negative_prompt": img.negative_prompt, "seed": img.seed,
        "steps": img.steps, "guidance": img.guidance, "scheduler": img.scheduler, "width": img.width,
        "height": img.height, "model_uri": job.model.uri, "model_version": job.model.version,
        "model_hash": job.model.hash, "base_model": job.model.base, "pixel_sha256": pixels,
        "device": renderer.device_label, "dtype": renderer.dtype_label, "cpu_threads": renderer.cpu_threads,
        "batch_size": len(batch),
        "batch_position": batch.index(img), "truncated": truncated,
    }


def history_row(record: dict, file: str, seconds: float | None) -> dict:
    return {**record, "file": file, "sha256": sha256_file(file), "seconds": seconds,
            "created_at": dt.datetime.now(dt.timezone.utc)}


def prepare_job(job: Job) -> None:
    """Before any shard renders (once, in one process): create out_dir, clear interrupted writes and, for
    the DVC stage, delete files the job no longer produces."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {Path(f) for f in job.output_files()}
    remove_stale(job.out_dir, keep=wanted.__contains__ if job.prune else None)


def _logged_files(job: Job) -> set[tuple[str, str]]:
    if job.history_dir is None or not job.history_dir.is_dir():
        return set()
    rows = read_history(job.history_dir)
    rows = rows[rows.job_id == job.job_id]
    return set(zip(rows.image_id, rows.file))


def _recover_unlogged(job: Job, images: list[ImagePlan], logged: set[tuple[str, str]]) -> set[str]:
    """Log images a killed run wrote but did not log; returns the ids of files that are whole and usable."""
    usable, rows = set(), []
    for img in images:
        if not Path(img.file).is_file():
            continue
        record = read_record(img.file)
        if not record or record.get("image_id") != img.image_id or set(RECORD_KEYS) - set(record):
            continue  # not one of ours (or from an older format): render it again
        usable.add(img.image_id)
        if job.history_dir is not None and (img.image_id, img.file) not in logged:
            rows.append(history_row({k: record[k] for k in RECORD_KEYS}, img.file, None))
    if job.history_dir is not None and rows:
        append_rows(rows, job.history_dir)
        log.info("logged %d image(s) an interrupted run had written", len(rows))
    return usable


def render_shard(job: Job, shard_index: int = 0, num_shards: int = 1, device: torch.device | None = None) -> dict:
    """Render the missing images of one shard; returns counts and timing."""
    batches = job.shard(shard_index, num_shards)
    images = [img for batch in batches for img in batch]
    logged = _logged_files(job)
    done = _recover_unlogged(job, images, logged)
    todo = [batch for batch in batches if any(img.image_id not in done for img in batch)]
    result = {"shard": shard_index, "shards": num_shards, "images": len(images), "rendered": 0,
              "reused": len(done), "pipeline_images": 0, "render_seconds": 0.0}
    if not todo:
        return result

    renderer = Renderer(job.model, job.model_settings, device=device)
    overflow = {text: renderer.overflow(text) for text in dict.fromkeys(img.full_prompt for b in todo for img in b)}
    for text, cut in overflow.items():
        if cut:
            log.warning("prompt longer than the tokenizer's window; truncated: %r (of %r)", cut, text)
    progress = tqdm(total=sum(len(b) for b in todo), unit="img", desc=f"generate {shard_index + 1}/{num_shards}",
                    disable=None)

    def save(img: ImagePlan, picture, batch: tuple[ImagePlan, ...], seconds: float) -> dict | None:
        """Write one image; its history row, or None if the history has it already."""
        record = image_record(img, job, renderer, batch, pixel_sha256(picture), overflow[img.full_prompt])
        write_image(img.file, picture, job.image_format, parameters_text(record, job.model.name), record)
        return None if (img.image_id, img.file) in logged else history_row(record, img.file, seconds / len(batch))

    def log_written(writes: list[Future]) -> None:
        rows = [row for row in (w.result() for w in writes) if row is not None]
        if job.history_dir is not None:
            append_rows(rows, job.history_dir)
        result["rendered"] += len(writes)
        progress.update(len(writes))

    started = time.perf_counter()
    writing: list[Future] = []
    with ThreadPoolExecutor(FILE_WRITERS, thread_name_prefix="image-writer") as writers:
        for batch in todo:
            start = time.perf_counter()
            pictures = renderer.render(batch[0].scheduler, [img.request() for img in batch])
            seconds = time.perf_counter() - start
            log_written(writing)  # the previous batch's files were written while this one rendered
            # images finished by an earlier run are skipped; their batch mates needed the same batch to stay exact
            writing = [writers.submit(save, img, picture, batch, seconds)
                       for img, picture in zip(batch, pictures) if img.image_id not in done]
            result["pipeline_images"] += len(batch)
        log_written(writing)
    result["render_seconds"] = time.perf_counter() - started
    progress.close()
    if job.model_settings.compile:
        compiling.save_cache("inference")
    return result


def finalize_job(job: Job, shard_results: list[dict] | tuple[dict, ...] = ()) -> dict:
    """Contact sheets, optional zip and summary.json from the files on disk; safe to run again."""
    records = {img.image_id: read_record(img.file) for img in job.images if Path(img.file).is_file()}
    by_id = {img.image_id: img for img in job.images}
    for sheet in job.sheets:
        size = next((by_id[i].width, by_id[i].height) for _, _, i in sheet.cells)
        cells = {(r, c): Path(by_id[i].file) for r, c, i in sheet.cells}
        save_png(sheet.file, contact_sheet(sheet.title, list(sheet.columns), list(sheet.rows), cells, size))
    if job.export_zip:
        export_zip(job, records)
    truncated = {r["full_prompt"]: r["truncated"] for r in records.values() if r and r.get("truncated")}
    summary = {
        "job_id": job.job_id,
        "model": {"uri": job.model.uri, "version": job.model.version, "hash": job.model.hash, "base": job.model.base},
        "images": len(job.images),
        "missing": len(job.images) - len(records),
        "prompts": list(dict.fromkeys(img.prompt for img in job.images)),
        "styles": list(dict.fromkeys(img.style for img in job.images)),
        "seeds": list(dict.fromkeys(img.seed for img in job.images)),
        "sheets": [s.file for s in job.sheets],
        "zip": str(job.out_dir / ZIP_NAME) if job.export_zip else None,
        "truncated": truncated,
        "files": {img.image_id: img.file for img in job.images},
    }
    atomic_write_text(job.out_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return {**summary, **_timing(shard_results)}


def _timing(shard_results) -> dict:
    """Counts and speed over all shards; images/s is pipeline images per second of rendering, encoding and
    writing files (shards in parallel add up)."""
    rendered = sum(r["rendered"] for r in shard_results)
    reused = sum(r["reused"] for r in shard_results)
    rates = [r["pipeline_images"] / r["render_seconds"] for r in shard_results if r["render_seconds"] > 0]
    return {"rendered": rendered, "reused": reused, "shards": len(shard_results),
            "render_seconds": round(max([r["render_seconds"] for r in shard_results] + [0.0]), 3),
            "images_per_second": round(sum(rates), 3) if rates else None}


def export_zip(job: Job, records: dict[str, dict | None]) -> Path:
    """The job's images plus metadata.csv (one row per image: its file name and record), written atomically."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as archive:  # images are already compressed
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=["file"] + RECORD_KEYS, extrasaction="ignore")
        writer.writeheader()
        for img in job.images:
            record = records.get(img.image_id)
            if record is None:
                continue
            name = Path(img.file).relative_to(job.out_dir).as_posix()
            archive.writestr(_entry(name), Path(img.file).read_bytes())
            writer.writerow({**record, "file": name})
        archive.writestr(_entry("metadata.csv"), table.getvalue())
    return atomic_write_bytes(job.out_dir / ZIP_NAME, buf.getvalue())


def _entry(name: str) -> zipfile.ZipInfo:
    return zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)  # fixed time: same images, same zip bytes


def run_job(job: Job, *, shard_index: int = 0, num_shards: int = 1, device: torch.device | None = None) -> dict:
    """The whole job (num_shards=1), or one shard of it: then call prepare_job first and finalize_job after."""
    if num_shards > 1:
        return render_shard(job, shard_index, num_shards, device)
    prepare_job(job)
    result = render_shard(job, device=device)
    return finalize_job(job, [result])


def run_launched(job: Job) -> dict:
    """Run the job across the processes of `accelerate launch` (or alone); process 0 returns the summary."""
    processes = launched_processes(job.model_settings.device)
    if processes.count == 1:
        return run_job(job)
    if processes.is_main:
        prepare_job(job)
    processes.wait()
    result = render_shard(job, processes.index, processes.count, processes.device)
    results = processes.gather(result)
    summary = finalize_job(job, results) if processes.is_main else result
    processes.wait()
    return summary
