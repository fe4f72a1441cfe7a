"""The generation history: an append-only Parquet dataset, one row per image, under `data/history/`.

Every append writes a new file (`part-<time>-<pid>-<random>.parquet`, temp file + rename), so concurrent
writers never touch each other's files and a killed writer leaves either a whole file or none (its
hidden temp file is ignored by readers). Rows are validated by a pandera model and written with a pinned
pyarrow schema; reading checks every file against that schema, so a foreign file fails loudly, naming
itself and what differs.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from pathlib import Path
from typing import Annotated, Iterable

import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.parquet as pq
from pandera.errors import SchemaError, SchemaErrors
from pandera.typing import Series

from boothline.errors import StageError
from boothline.io.files import atomic_write_bytes

IMAGE_ID = r"^[0-9a-f]{16}$"

SCHEMA = pyarrow.schema([
    ("image_id", pyarrow.string()),
    ("job_id", pyarrow.string()),
    ("created_at", pyarrow.timestamp("us", tz="UTC")),
    ("prompt", pyarrow.string()),  # as the user wrote it, placeholders and all
    ("style", pyarrow.string()),
    ("full_prompt", pyarrow.string()),  # the exact text rendered
    ("negative_prompt", pyarrow.string()),
    ("seed", pyarrow.int64()),
    ("steps", pyarrow.int64()),
    ("guidance", pyarrow.float64()),
    ("scheduler", pyarrow.string()),
    ("width", pyarrow.int64()),
    ("height", pyarrow.int64()),
    ("model_uri", pyarrow.string()),
    ("model_version", pyarrow.string()),
    ("model_hash", pyarrow.string()),
    ("base_model", pyarrow.string()),
    ("file", pyarrow.string()),
    ("sha256", pyarrow.string()),  # of the file
    ("pixel_sha256", pyarrow.string()),  # of the decoded RGB pixels: what `regenerate` must reproduce
    ("seconds", pyarrow.float64()),  # render time per image (its batch's time / batch length); null if unknown
    ("device", pyarrow.string()),
    ("dtype", pyarrow.string()),
    ("cpu_threads", pyarrow.int64()),  # intra-op threads on CPU, which change the last bits; 0 on a GPU
    ("batch_size", pyarrow.int64()),  # the batch it was rendered in, which fixes its exact pixels
    ("batch_position", pyarrow.int64()),
    ("truncated", pyarrow.string()),  # prompt text beyond the tokenizer's window, "" if none
])
COLUMNS = SCHEMA.names


class HistoryError(StageError):
    """A history file or row that does not fit the schema."""


class HistoryRow(pa.DataFrameModel):
    image_id: Series[str] = pa.Field(str_matches=IMAGE_ID)
    job_id: Series[str] = pa.Field(str_length={"min_value": 1})
    created_at: Series[Annotated[pd.DatetimeTZDtype, "us", "UTC"]]
    prompt: Series[str]
    style: Series[str] = pa.Field(str_matches=r"^[a-z0-9-]+$")
    full_prompt: Series[str] = pa.Field(str_length={"min_value": 1})
    negative_prompt: Series[str]
    seed: Series[int] = pa.Field(ge=0)
    steps: Series[int] = pa.Field(ge=1)
    guidance: Series[float] = pa.Field(ge=0)
    scheduler: Series[str]
    width: Series[int] = pa.Field(gt=0)
    height: Series[int] = pa.Field(gt=0)
    model_uri: Series[str]
    model_version: Series[str]
    model_hash: Series[str]
    base_model: Series[str]
    file: Series[str] = pa.Field(str_length={"min_value": 1})
    sha256: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$")
    pixel_sha256: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$")
    seconds: Series[float] = pa.Field(ge=0, nullable=True)
    device: Series[str]
    dtype: Series[str]
    cpu_threads: Series[int] = pa.Field(ge=0)
    batch_size: Series[int] = pa.Field(ge=1)
    batch_position: Series[int] = pa.Field(ge=0)
    truncated: Series[str]

    class Config:
        strict = True
        ordered = True


def rows_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows as a frame in schema order and dtypes (created_at may be a datetime or ISO text)."""
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).astype("datetime64[us, UTC]")
    frame["seconds"] = frame["seconds"].astype("float64")
    for column in ("seed", "steps", "width", "height", "cpu_threads", "batch_size", "batch_position"):
        frame[column] = frame[column].astype("int64")
    frame["guidance"] = frame["guidance"].astype("float64")
    return frame


def validate(frame: pd.DataFrame) -> pd.DataFrame:
    try:
        return HistoryRow.validate(frame, lazy=True)
    except (SchemaError, SchemaErrors) as err:
        raise HistoryError(f"history rows do not fit the schema:\n{err}") from None


def append_rows(rows: list[dict], directory: str | Path) -> Path | None:
    """Validate `rows` and write them as one new file of the dataset; returns its path (None if no rows)."""
    if not rows:
        return None
    frame = validate(rows_frame(rows))
    table = pyarrow.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
    return atomic_write_bytes(Path(directory) / name, buf.getvalue())


def history_files(directory: str | Path) -> list[Path]:
    return sorted(Path(directory).glob("part-*.parquet"))


def read_history(directory: str | Path, files: list[Path] | None = None) -> pd.DataFrame:
    """Every row of the dataset (or of just `files` of it), oldest file first, in the pinned schema."""
    files = history_files(directory) if files is None else files
    tables = []
    for path in files:
        try:
            problems = schema_problems(pq.read_schema(path))
            if problems:  # read_table(schema=...) would fill missing columns with nulls and say nothing
                raise HistoryError(f"{path}: not a boothline history file ({'; '.join(problems)})")
            tables.append(pq.read_table(path, schema=SCHEMA))
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, ValueError) as err:
            raise HistoryError(f"{path}: not a boothline history file ({err})") from None
    table = pyarrow.concat_tables(tables) if tables else SCHEMA.empty_table()
    return table.to_pandas()


def schema_problems(found: pyarrow.Schema) -> list[str]:
    """How a file's schema differs from the pinned one: missing and unexpected columns, other types."""
    missing = [name for name in COLUMNS if name not in found.names]
    extra = [name for name in found.names if name not in COLUMNS]
    retyped = [f"{name} is {found.field(name).type}, not {SCHEMA.field(name).type}" for name in COLUMNS
               if name in found.names and found.field(name).type != SCHEMA.field(name).type]
    return ([f"missing columns: {', '.join(missing)}"] if missing else []) + (
        [f"unexpected columns: {', '.join(extra)}"] if extra else []) + retyped


def parse_when(value: str | dt.date | dt.datetime, *, end: bool = False) -> pd.Timestamp:
    """A date (whole day; `end` means through its last microsecond) or a datetime, as UTC."""
    if isinstance(value, str):
        try:
            stamp = pd.Timestamp(value)
        except ValueError:
            raise HistoryError(f"{value!r}: not a date or time (use e.g. 2026-11-23 or 2026-11-23T14:00)") from None
        whole_day = len(value.strip()) == 10
    else:
        stamp, whole_day = pd.Timestamp(value), not isinstance(value, dt.datetime)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if whole_day and end:
        stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return stamp


def query(frame: pd.DataFrame, *, prompt: str | None = None, style: str | None = None, model: str | None = None,
          since: str | dt.date | None = None, until: str | dt.date | None = None, job: str | None = None,
          image_id: str | None = None) -> pd.DataFrame:
    """Rows matching every filter given, oldest first.

    prompt: text in the prompt or the full prompt (case-insensitive); style: a name or a comma list;
    model: text in the model version or URI; since/until: dates or times, inclusive; job: a job id;
    image_id: an id or its prefix.
    """
    keep = pd.Series(True, index=frame.index)
    if prompt:
        needle = prompt.lower()
        keep &= frame.prompt.str.lower().str.contains(needle, regex=False) | \
            frame.full_prompt.str.lower().str.contains(needle, regex=False)
    if style:
        keep &= frame["style"].isin([s.strip() for s in style.split(",")])
    if model:
        keep &= frame.model_version.str.contains(model, regex=False) | frame.model_uri.str.contains(model, regex=False)
    if since:
        keep &= frame.created_at >= parse_when(since)
    if until:
        keep &= frame.created_at <= parse_when(until, end=True)
    if job:
        keep &= frame.job_id == job
    if image_id:
        keep &= frame.image_id.str.startswith(image_id)
    return frame[keep].sort_values("created_at", kind="stable")
