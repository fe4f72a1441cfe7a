"""What a user may change through the API, described and checked by the pipeline's own typed params.

Training settings are dotted params keys from the allow-list (`service.training_settings`; `train.lora.*`
means every key of that section). A submission's settings are merged into the service's params and
parsed by `Params`, so a value out of range is refused with the same message the pipeline gives; a key
outside the allow-list is refused by name. `describe` lists each editable key with its type, range and
default for `GET /v1/settings`.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

from boothline.params import Params, deep_merge, dotted
from boothline.params.loading import format_errors

GENERATION_SETTINGS = ("generate.steps", "generate.guidance", "generate.scheduler", "generate.negative_prompt",
                       "generate.width", "generate.height")


class SettingsError(ValueError):
    def __init__(self, field: str, reason: str):
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


def allowed(key: str, allow_list: tuple[str, ...]) -> bool:
    return any(key == entry or (entry.endswith(".*") and key.startswith(entry[:-1])) for entry in allow_list)


def nested(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def apply_settings(params: Params, settings: dict[str, Any], allow_list: tuple[str, ...]) -> Params:
    """`params` with the user's dotted settings merged in, checked; SettingsError names the first bad key."""
    if not isinstance(settings, dict):
        raise SettingsError("settings", "must be an object of dotted params keys, e.g. {\"train.max_train_steps\": 50}")
    flat = dotted(settings)
    for key in flat:
        if not allowed(key, allow_list):
            raise SettingsError(f"settings.{key}", f"not a setting users may change (allowed: {', '.join(allow_list)})")
    merged = deep_merge(params.model_dump(mode="json"), nested(flat))
    try:
        return Params.model_validate(merged)
    except ValidationError as err:
        first = err.errors()[0]  # pydantic says where: its location is the dotted key
        key = ".".join(str(part) for part in first["loc"])
        reason = " ".join(format_errors(err, "settings").split("\n", 1)[-1].split())
        raise SettingsError(f"settings.{key}" if key else "settings", reason) from None


def _field(model: type[BaseModel], path: list[str]):
    info = model.model_fields[path[0]]
    if len(path) == 1:
        return info
    return _field(info.annotation, path[1:])


def _type_name(annotation) -> tuple[str, list | None]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice", list(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        name, choices = _type_name(args[0])
        return name + " or null", choices
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(annotation, "list"), None


def describe(params: Params, keys: tuple[str, ...]) -> list[dict]:
    """One entry per editable key: its type, choices or range, and the value the service uses now."""
    current = dotted(params.model_dump(mode="json"))
    expanded = [k for key in keys for k in (sorted(c for c in current if c.startswith(key[:-1]))
                                           if key.endswith(".*") else [key])]
    out = []
    for key in expanded:
        info = _field(Params, key.split("."))
        kind, choices = _type_name(info.annotation)
        entry = {"key": key, "type": kind, "default": current.get(key)}
        if choices:
            entry["choices"] = choices
        for rule in info.metadata:
            for cls, attr, name in ((Ge, "ge", "minimum"), (Gt, "gt", "exclusive_minimum"), (Le, "le", "maximum"),
                                    (Lt, "lt", "exclusive_maximum")):
                if isinstance(rule, cls):
                    entry[name] = getattr(rule, attr)
        out.append(entry)
    return out
