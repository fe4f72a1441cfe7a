"""A generation job: prompts x styles x seeds (x swept settings), planned into images with deterministic ids.

Settings come from four layers; where they collide the first that sets a key wins:
    command line  >  job file (YAML/JSON, same keys as the `generate` section)  >  style settings  >  params.
Job-wide keys (prompts, styles, seeds, size, batch size, format, model...) skip the style layer. A layer's
`sweep` renders every listed value of steps/guidance/scheduler; within a layer it replaces the single value.

An image's id hashes the model version, final prompt, negative prompt, seed and settings, so the same
image has the same id in every run, shard and process. Images render in fixed batches of the whole plan
(same settings, at most `batch_size`), and shards are sets of whole batches: an image's pixels do not
depend on how many shards or processes share the job, nor on whether a killed run was resumed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from boothline.errors import ParamsError, StageError
from boothline.generation.model_uri import ResolvedModel, resolve_model
from boothline.generation.prompts import enhance
from boothline.generation.styles import Style, load_styles, select_styles
from boothline.io.image_formats import EXTENSIONS
from boothline.params import Generate, Model, Params, Subject, fill_subject, format_errors
from boothline.paths import Workspace
from boothline.pipelines.loading import render_numerics
from boothline.pipelines.sampling import Request

SWEEPABLE = ("steps", "guidance", "scheduler")
SUMMARY = "summary.json"
ZIP_NAME = "images.zip"


@dataclass(frozen=True)
class ImagePlan:
    image_id: str
    prompt: str  # as the user wrote it
    style: str
    full_prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    scheduler: str
    width: int
    height: int
    file: str
    row: str = ""  # its contact-sheet row label

    @property
    def settings(self) -> tuple:
        """What a batch must share: one pipeline call, one scheduler."""
        return (self.scheduler, self.steps, self.guidance, self.width, self.height)

    def request(self) -> Request:
        return Request(self.full_prompt, self.seed, self.negative_prompt, self.steps, self.guidance, self.width,
                       self.height)


@dataclass(frozen=True)
class SheetPlan:
    file: str
    title: str
    columns: tuple[str, ...]  # style names
    rows: tuple[str, ...]  # seed (and swept settings) labels
    cells: tuple[tuple[int, int, str], ...]  # (row, column, image id)


@dataclass(frozen=True)
class Job:
    job_id: str
    out_dir: Path
    model: ResolvedModel
    model_settings: Model  # device, dtype, memory switches
    images: tuple[ImagePlan, ...]
    sheets: tuple[SheetPlan, ...]
    batch_size: int
    image_format: str
    export_zip: bool
    history_dir: Path | None  # None: no history log (the DVC stage)
    prune: bool  # delete files in out_dir the job does not produce (the DVC stage)

    def batches(self) -> list[tuple[ImagePlan, ...]]:
        """Fixed batches of the whole plan: same settings, at most batch_size, plan order within settings."""
        ordered = sorted(self.images, key=lambda img: img.settings)  # stable sort keeps plan order
        batches: list[list[ImagePlan]] = []
        for img in ordered:
            if batches and len(batches[-1]) < self.batch_size and batches[-1][0].settings == img.settings:
                batches[-1].append(img)
            else:
                batches.append([img])
        return [tuple(b) for b in batches]

    def shard(self, index: int, count: int) -> list[tuple[ImagePlan, ...]]:
        """Shard `index` of `count`: every count-th batch, so shards partition the images and stay balanced."""
        if not 0 <= index < count:
            raise ValueError(f"shard index {index} is not in 0..{count - 1}")
        return self.batches()[index::count]

    def output_files(self) -> set[str]:
        """Every file the job writes into out_dir."""
        files = {img.file for img in self.images} | {s.file for s in self.sheets} | {str(self.out_dir / SUMMARY)}
        return files | ({str(self.out_dir / ZIP_NAME)} if self.export_zip else set())


def read_job_file(path: str | Path) -> Generate:
    """A job file: the keys of the `generate` section, in YAML or JSON; only the keys it sets count."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: job file not found")
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (ValueError, yaml.YAMLError) as err:
        raise ParamsError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of generate keys (prompts, styles, seeds, ...)")
    return parse_layer(data, str(path))


def parse_layer(data: dict, source: str) -> Generate:
    try:
        return Generate.model_validate(data)
    except ValidationError as err:
        raise ParamsError(format_errors(err, source)) from None


def image_id(model_version: str, full_prompt: str, negative_prompt: str, seed: int, steps: int, guidance: float,
             scheduler: str, width: int, height: int, numerics: tuple[str, str]) -> str:
    """`numerics` is (dtype, device kind): a CUDA generator draws other noise than a CPU one for the same seed,
    and half precision rounds differently, so each makes another picture."""
    key = json.dumps([model_version, full_prompt, negative_prompt, seed, steps, float(guidance), scheduler, width,
                      height, *numerics])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def slugify(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower())[:limit].strip("-") or "prompt"


class _Layers:
    """Looks a key up through the layers in precedence order."""

    def __init__(self, params: Params, overrides: list[Generate]):
        self.params = params
        self.overrides = overrides  # highest precedence first

    def job_wide(self, key: str):
        for layer in self.overrides:
            if key in layer.model_fields_set:
                return getattr(layer, key)
        return getattr(self.params.generate, key)

    def per_style(self, key: str, style: Style) -> tuple:
        for layer in self.overrides:
            swept = getattr(layer.sweep, key) if "sweep" in layer.model_fields_set else None
            if swept:
                return swept
            if key in layer.model_fields_set:
                return (self._value(key, getattr(layer, key)),)
        if key in style.settings:
            return (style.settings[key],)
        return getattr(self.params.generate.sweep, key) or (self._value(key, getattr(self.params.generate, key)),)

    def _value(self, key: str, value):
        return self.params.model.scheduler if key == "scheduler" and value is None else value


def _seeds(seeds: int | tuple[int, ...], first: int) -> tuple[int, ...]:
    return tuple(range(first, first + seeds)) if isinstance(seeds, int) else tuple(dict.fromkeys(seeds))


def build_job(params: Params, *, job_file: str | Path | None = None, overrides: dict | None = None,
              for_stage: bool = False, workspace: Workspace = Workspace()) -> Job:
    """Resolve layers, styles and the model, and plan every image. Bad input fails here, before rendering.

    overrides: command-line values by `generate` key (e.g. {"prompts": ["..."], "sweep": {"guidance": [5, 7]}}).
    for_stage: the DVC stage's job (params only, into data/generations/, no history, stale files pruned).
    """
    layers = [] if for_stage else [parse_layer(overrides or {}, "command line")]
    if job_file and not for_stage:
        layers.append(read_job_file(job_file))
    look = _Layers(params, layers)

    prompts = tuple(look.job_wide("prompts"))
    if not prompts or any(not p.strip() for p in prompts):
        raise StageError("generate.prompts: give at least one non-empty prompt")
    extra = look.job_wide("extra_styles")
    styles = select_styles(load_styles(extra), look.job_wide("styles"))
    seeds = _seeds(look.job_wide("seeds"), look.job_wide("seed"))
    width = look.job_wide("width") or params.train.resolution
    height = look.job_wide("height") or params.train.resolution
    image_format = look.job_wide("image_format")
    subject = params.subject
    for prompt in prompts:  # unknown placeholders fail before the model is resolved (it may be downloaded)
        fill_subject(prompt, subject.token, subject.class_noun)
    model = resolve_model(look.job_wide("model"), params, workspace)

    planned = _expand(prompts, styles, seeds, look, model, width, height)
    job_id = "generations" if for_stage else "job-" + hashlib.sha256(
        json.dumps([image_format] + sorted(p["image_id"] for p in planned)).encode()).hexdigest()[:12]
    out_dir = workspace.generations_dir if for_stage else workspace.jobs_dir / job_id
    ext = EXTENSIONS[image_format]
    for p in planned:
        p["file"] = str(out_dir / p["slug"] / f"{p['style']}-seed{p['seed']}-{p['image_id'][:8]}{ext}")
    images, sheets = _sheets(planned, out_dir, subject)
    return Job(job_id=job_id, out_dir=out_dir, model=model, model_settings=params.model, images=images,
               sheets=sheets, batch_size=look.job_wide("batch_size"), image_format=image_format,
               export_zip=look.job_wide("export_zip"),
               history_dir=None if for_stage else Path(look.job_wide("history_dir") or workspace.history_dir),
               prune=for_stage)


def _expand(prompts: tuple[str, ...], styles: list[Style], seeds: tuple[int, ...], look: _Layers,
            model: ResolvedModel, width: int, height: int) -> list[dict]:
    """Every image of the job in plan order (prompt, style, swept settings, seed), each id once."""
    subject = look.params.subject
    quality, negative = look.job_wide("quality_tokens"), look.job_wide("negative_prompt")
    numerics = render_numerics(look.params.model)
    planned: list[dict] = []
    seen: set[str] = set()
    slugs: dict[str, str] = {}
    for prompt in prompts:
        if prompt not in slugs:  # distinct prompts get distinct folders even when their slugs collide
            base = slug = slugify(fill_subject(prompt, subject.token, subject.class_noun))
            suffix = 2
            while slug in slugs.values():
                slug, suffix = f"{base}-{suffix}", suffix + 1
            slugs[prompt] = slug
        for style in styles:
            final = enhance(prompt, style, token=subject.token, class_noun=subject.class_noun, quality_tokens=quality,
                            default_negative=negative)
            values = [look.per_style(k, style) for k in SWEEPABLE]
            swept = [k for k, v in zip(SWEEPABLE, values) if len(v) > 1]
            for steps, guidance, scheduler in itertools.product(*values):
                setting = {"steps": steps, "guidance": float(guidance), "scheduler": scheduler}
                for seed in seeds:
                    iid = image_id(model.version, final.prompt, final.negative, seed, steps, guidance, scheduler,
                                   width, height, numerics)
                    if iid not in seen:
                        seen.add(iid)
                        planned.append(dict(image_id=iid, prompt=prompt, style=style.name, full_prompt=final.prompt,
                                            negative_prompt=final.negative, seed=seed, **setting, width=width,
                                            height=height, slug=slugs[prompt],
                                            row=_row_label(seed, {k: setting[k] for k in swept})))
    return planned


def _row_label(seed: int, swept: dict) -> str:
    return " ".join([f"seed {seed}"] + [f"{k} {v:g}" if isinstance(v, (int, float)) else str(v)
                                         for k, v in swept.items()])


def _sheets(planned: list[dict], out_dir: Path, subject: Subject) -> tuple[tuple[ImagePlan, ...],
                                                                          tuple[SheetPlan, ...]]:
    """One sheet per prompt: styles as columns; rows are seeds (with the swept settings, if any)."""
    images: list[ImagePlan] = []
    sheets: list[SheetPlan] = []
    for slug, group in itertools.groupby(planned, key=lambda p: p["slug"]):
        group = list(group)
        columns = list(dict.fromkeys(p["style"] for p in group))
        rows = list(dict.fromkeys(p["row"] for p in group))
        cells = []
        for p in group:
            cells.append((rows.index(p["row"]), columns.index(p["style"]), p["image_id"]))
            images.append(ImagePlan(**{k: v for k, v in p.items() if k != "slug"}))
        title = fill_subject(group[0]["prompt"], subject.token, subject.class_noun)
        sheets.append(SheetPlan(str(out_dir / f"{slug}-sheet.png"), title, tuple(columns), tuple(rows), tuple(cells)))
    return tuple(images), tuple(sheets)
