"""The whole params file: its sections checked together, read from YAML with overrides merged in."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from boothline.errors import ParamsError
from boothline.params.sections import Eval, Generate, Model, Priors, Register, Section, Subject
from boothline.params.service import Service
from boothline.params.templates import SUBJECT_PLACEHOLDERS, fill_subject, unknown_placeholders
from boothline.params.training import Train

# pydantic warns that the `register` section shadows ABCMeta.register; the key name is part of the contract.
warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)


class Params(Section):
    subject: Subject
    model: Model = Model()
    priors: Priors = Priors()
    train: Train = Train()
    eval: Eval = Eval()
    register: Register = Register()
    generate: Generate = Generate()
    service: Service = Service()

    @model_validator(mode="after")
    def _templates_expand(self) -> "Params":
        templates = {"train.instance_prompt": self.train.instance_prompt, "priors.prompt": self.priors.prompt,
                     **{f"train.validation_prompts[{i}]": t for i, t in enumerate(self.train.validation_prompts)},
                     **{f"eval.prompts[{i}]": t for i, t in enumerate(self.eval.prompts or ())}}
        for key, template in templates.items():
            if unknown := unknown_placeholders(template):
                raise ValueError(f"{key} = {template!r}: unknown placeholder(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(SUBJECT_PLACEHOLDERS)})")
        return self

    @model_validator(mode="after")
    def _prompts_fit_subject(self) -> "Params":
        if self.subject.token not in self.fill(self.train.instance_prompt).split():
            raise ValueError(
                f"train.instance_prompt = {self.train.instance_prompt!r}: must contain the subject token "
                f"({self.subject.token!r}, or the placeholder {{token}} or {{subject}})"
            )
        return self

    @model_validator(mode="after")
    def _deterministic_runs_are_eager(self) -> "Params":
        compiled = [f"{section}.compile" for section in ("model", "train") if getattr(self, section).compile]
        if self.model.deterministic and compiled:
            raise ValueError(f"model.deterministic = true promises bit-for-bit repeats, and compiled kernels are only "
                             f"held to matching eager ones within rounding: set {' and '.join(compiled)} to false, "
                             f"or model.deterministic to false")
        return self

    @property
    def instance_prompt(self) -> str:
        return self.fill(self.train.instance_prompt)

    @property
    def class_prompt(self) -> str:
        return self.fill(self.priors.prompt)

    def fill(self, template: str) -> str:
        """Expand {subject} ("sks dog"), {token} and {class_noun} in a prompt template (`fill_subject`)."""
        return fill_subject(template, self.subject.token, self.subject.class_noun)

    def section_dict(self, name: str) -> dict[str, Any]:
        return getattr(self, name).model_dump(mode="json")


def dotted(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as flat `section.key.subkey: value` pairs (what a params key looks like)."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(dotted(value, name) if isinstance(value, dict) else {name: value})
    return flat


def format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid params"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "is required"
        value = e.get("input")
        shown = "" if e["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) else f" = {value!r}"
        lines.append(f"  {key}{shown}: {msg}" if key else f"  {msg}")
    return "\n".join(lines)


def parse_params(data: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ParamsError(format_errors(err, source)) from None


def deep_merge(base: dict, overrides: dict) -> dict:
    """A copy of `base` with `overrides` (same shape) merged in, section by section."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """The params file, with `overrides` shaped like it ({"train": {"max_train_steps": 10}}) merged over it."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (subject, model, priors, ...)")
    source = f"{path} with overrides {overrides}" if overrides else str(path)
    return parse_params(deep_merge(data, overrides or {}), source)
