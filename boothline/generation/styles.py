"""The style registry: curated looks (`registry/styles.yaml`) plus a user's own file, checked on load.

A style is a slug name, a one-line description, a prompt template with `{prompt}` at most once, a negative
prompt, and optional per-style settings (steps, guidance, scheduler). Every problem in a file is reported at
once, one `<file>: <reason>` line each; an unknown style name lists the known ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from boothline.errors import StageError
from boothline.params import SLUG, SchedulerName, Section
from boothline.world.captions import PLACEHOLDER, apply_template

REGISTRY = Path("registry/styles.yaml")
# The checkout's copy, for a `boothline` run outside the project directory (or a test's temp dir).
PACKAGED_REGISTRY = Path(__file__).resolve().parents[2] / REGISTRY
BRACED = re.compile(r"\{[^{}]*\}")


class StyleError(StageError):
    """A style file that cannot be used, or a style name that does not exist."""


class StyleSettings(Section):
    steps: int | None = Field(None, ge=1, le=1000)
    guidance: float | None = Field(None, ge=0, le=50)
    scheduler: SchedulerName | None = None

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class Style:
    name: str
    description: str
    prompt: str
    negative: str
    settings: dict[str, object] = field(default_factory=dict)
    source: str = ""

    def apply(self, prompt: str) -> str:
        """The style's template around `prompt`; a template without `{prompt}` follows the prompt."""
        return apply_template(self.prompt, prompt)


def default_registry() -> Path:
    return REGISTRY if REGISTRY.is_file() else PACKAGED_REGISTRY


def _entry_problems(entry: object, where: str) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{where}: expected a mapping with name, description, prompt, negative"]
    problems = []
    allowed = {"name", "description", "prompt", "negative", "settings"}
    problems += [f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
                 for key in entry if key not in allowed]
    for key in ("name", "description", "prompt", "negative"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {key} is missing or empty")
    name, template = entry.get("name"), entry.get("prompt")
    if isinstance(name, str) and name and not SLUG.fullmatch(name):
        problems.append(f"{where}: name {name!r} must be a slug [a-z0-9-]+, e.g. 'oil-painting'")
    if isinstance(template, str):
        if template.count(PLACEHOLDER) > 1:
            problems.append(f"{where}: prompt template contains {PLACEHOLDER} {template.count(PLACEHOLDER)} times "
                            "(at most once)")
        unknown = sorted(set(BRACED.findall(template)) - {PLACEHOLDER})
        if unknown:
            problems.append(f"{where}: prompt template has unknown placeholder(s) {', '.join(unknown)} "
                            f"(only {PLACEHOLDER})")
    settings = entry.get("settings") or {}
    try:
        StyleSettings.model_validate(settings)
    except ValidationError as err:
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "settings"
            msg = "unknown key (allowed: steps, guidance, scheduler)" if e["type"] == "extra_forbidden" else e["msg"]
            problems.append(f"{where}: settings.{key}: {msg}")
    return problems


def read_styles(path: str | Path) -> list[Style]:
    """All styles in one file, or StyleError listing every problem in it."""
    path = Path(path)
    if not path.is_file():
        raise StyleError(f"{path}: style file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StyleError(f"{path}: not valid YAML: {err}") from None
    entries = data.get("styles") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise StyleError(f"{path}: expected a top-level 'styles:' list with at least one style")

    problems: list[str] = []
    styles: list[Style] = []
    for i, entry in enumerate(entries):
        label = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else f"#{i + 1}"
        entry_problems = _entry_problems(entry, f"{path}: style {label}")
        problems += entry_problems
        if not entry_problems:
            settings = StyleSettings.model_validate(entry.get("settings") or {}).as_dict()
            styles.append(Style(entry["name"], entry["description"].strip(), entry["prompt"].strip(),
                                entry["negative"].strip(), settings, str(path)))
    if problems:
        raise StyleError("\n".join(problems))
    return styles


def load_styles(extra: str | Path | None = None, registry: str | Path | None = None) -> dict[str, Style]:
    """The registry plus an optional extra file, by name, in file order; names must be unique across both."""
    files = [Path(registry) if registry else default_registry()] + ([Path(extra)] if extra else [])
    styles: dict[str, Style] = {}
    problems: list[str] = []
    for path in files:
        for style in read_styles(path):
            if style.name in styles:
                problems.append(f"{path}: style {style.name}: name already defined in {styles[style.name].source}")
            else:
                styles[style.name] = style
    if problems:
        raise StyleError("\n".join(problems))
    return styles


def select_styles(styles: dict[str, Style], names: str | tuple[str, ...] | list[str]) -> list[Style]:
    """The named styles in the order given ("all": registry order); unknown names list the known ones."""
    if names == "all":
        return list(styles.values())
    unknown = [n for n in names if n not in styles]
    if unknown:
        raise StyleError(f"unknown style(s) {', '.join(unknown)}; known styles: {', '.join(styles)}")
    return [styles[n] for n in dict.fromkeys(names)]
