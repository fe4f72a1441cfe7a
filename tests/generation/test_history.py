"""The history log: pinned schema, pandera validation, append-only new files, concurrent appends, queries."""

import datetime as dt
from pathlib import Path
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from boothline.generation.history import SCHEMA, HistoryError, append_rows, query, read_history
from conftest import REPO


def row(i: int = 0, **fields) -> dict:
    return {
        "image_id": f"{i:016x}", "job_id": "job-1", "created_at": dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc),
        "prompt": "{subject} on the beach", "style": "anime", "full_prompt": "anime key visual of sks dog on the beach",
        "negative_prompt": "photo", "seed": i, "steps": 10, "guidance": 7.5, "scheduler": "dpm++", "width": 64,
        "height": 64, "model_uri": "data/model", "model_version": "fp-abc", "model_hash": "0123456789",
        "base_model": "builtin:tiny@v1", "file": f"data/jobs/job-1/x/anime-seed{i}.png", "sha256": "a" * 64,
        "pixel_sha256": "b" * 64, "seconds": 0.25, "device": "cpu", "dtype": "fp32", "cpu_threads": 2, "batch_size": 4,
        "batch_position": 0, "truncated": "", **fields,
    }


def test_append_writes_new_files_in_the_pinned_schema(tmp_path):
    first = append_rows([row(0), row(1)], tmp_path)
    second = append_rows([row(2, seconds=None)], tmp_path)
    assert first != second and first.name.startswith("part-") and first.suffix == ".parquet"
    assert pq.read_schema(first).remove_metadata() == SCHEMA
    frame = read_history(tmp_path)
    assert frame.image_id.tolist() == [f"{i:016x}" for i in range(3)]
    assert pd.isna(frame.seconds.iloc[2])  # unknown timing is allowed, as null
    assert str(frame.created_at.dtype) == "datetime64[us, UTC]"
    assert append_rows([], tmp_path) is None


def test_invalid_rows_are_rejected_before_writing(tmp_path):
    with pytest.raises(HistoryError) as err:
        append_rows([row(0, image_id="not-an-id"), row(1, seed=-1), row(2, style="Oil Painting")], tmp_path)
    message = str(err.value)
    assert "image_id" in message and "seed" in message and "style" in message
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_foreign_file_fails_naming_itself(tmp_path):
    append_rows([row(0)], tmp_path)
    pq.write_table(pa.table({"image_id": ["x"], "seed": ["not a number"]}), tmp_path / "part-zzz.parquet")
    with pytest.raises(HistoryError, match="part-zzz.parquet: not a boothline history file"):
        read_history(tmp_path)
    # Columns missing or extra, with no type clash, would otherwise be read as nulls without a word.
    (tmp_path / "part-zzz.parquet").unlink()
    table = pq.read_table(next(tmp_path.glob("part-*.parquet"))).drop_columns(["seed"]).append_column(
        "colour", pa.array(["red"]))
    pq.write_table(table.set_column(0, "image_id", pa.array([1])), tmp_path / "part-zzz.parquet")
    with pytest.raises(HistoryError, match=r"part-zzz.parquet: not a boothline history file \(missing columns: seed; "
                                           r"unexpected columns: colour; image_id is int64, not string\)"):
        read_history(tmp_path)


def test_empty_history_has_the_schema(tmp_path):
    frame = read_history(tmp_path / "none")
    assert frame.empty and list(frame.columns) == SCHEMA.names


APPENDER = """
import sys
sys.path[:0] = [{here!r}, {tests!r}]
from test_history import row
from boothline.generation.history import append_rows
worker = int(sys.argv[1])
for batch in range(20):
    append_rows([row(worker * 1000 + batch * 5 + k) for k in range(5)], sys.argv[2])
"""


def test_concurrent_appends_from_two_processes_lose_no_rows(tmp_path):
    code = APPENDER.format(here=str(Path(__file__).resolve().parent), tests=str(REPO / "tests"))
    env = {"PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w), str(tmp_path)], env=env) for w in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    frame = read_history(tmp_path)
    assert len(frame) == 200 and frame.image_id.is_unique
    assert len(list(tmp_path.glob("part-*.parquet"))) == 40
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_queries(tmp_path):
    day = lambda d: dt.datetime(2026, 11, d, 9, tzinfo=dt.timezone.utc)  # noqa: E731
    append_rows([
        row(1, created_at=day(20), style="anime"),
        row(2, created_at=day(21), style="watercolor", prompt="{subject} in the snow",
            full_prompt="watercolor painting of sks dog in the snow", model_version="fp-new", job_id="job-2"),
        row(3, created_at=day(22), style="pixel-art", model_uri="models:/dogs/3", model_version="dogs/v3"),
    ], tmp_path)
    frame = read_history(tmp_path)
    ids = lambda **kw: [int(i, 16) for i in query(frame, **kw).image_id]  # noqa: E731
    assert ids(prompt="SNOW") == [2]
    assert ids(prompt="watercolor painting") == [2]  # matches the full prompt too
    assert ids(style="anime,pixel-art") == [1, 3]
    assert ids(model="fp-new") == [2] and ids(model="models:/dogs") == [3]
    assert ids(since="2026-11-21") == [2, 3] and ids(until="2026-11-21") == [1, 2]
    assert ids(since="2026-11-21", until="2026-11-21") == [2]
    assert ids(job="job-2") == [2]
    assert ids(image_id="000000000000000") == [1, 2, 3]
    with pytest.raises(HistoryError, match="not a date"):
        query(frame, since="last tuesday")
