"""Job configuration: dataclass defaults < a recipe's base < a config file < the command line.

Fields whose type is itself a dataclass (a job's `captioner`) are nested objects in a config file and
`--PREFIX-FIELD` options on the command line, so every field of every nested config can be set either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path

from recap.errors import RecapError


def load_config_file(path: str) -> dict:
    """A JSON (or, with PyYAML installed, YAML) file of config fields."""
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)


def _scalar_type(hint):
    """`int | None` -> int; the type argparse converts an option's text with."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) in (dict, list) or hint in (dict, list):
        return json.loads
    return hint


def nested_configs(cls) -> dict[str, type]:
    """Fields of `cls` whose type is a dataclass: name -> that dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def add_nested_arguments(
    parser: argparse.ArgumentParser,
    defaults,
    prefix: str,
    *,
    helps: dict[str, str] | None = None,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """`--PREFIX-FIELD` for every field of the dataclass instance `defaults` (plus `aliases`), parsed into
    `PREFIX.FIELD`; the help shows `helps[field]` and the default the job uses."""
    helps, aliases = helps or {}, aliases or {}
    cls = type(defaults)
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{prefix} options ({cls.__name__} fields; a config file nests them)")
    for f in dataclasses.fields(cls):
        flags = [f"--{prefix}-{f.name.replace('_', '-')}", *aliases.get(f.name, ())]
        default = getattr(defaults, f.name)
        text = helps.get(f.name, f.name.replace("_", " "))
        if default not in (None, ""):
            text += f" (default: {default})"
        kind = _scalar_type(hints[f.name])
        options = {"dest": f"{prefix}.{f.name}", "help": text}
        if kind is bool:
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, default=None, **options)
        else:
            group.add_argument(*flags, type=kind, metavar=f.name.upper(), **options)


def nested_from(cls, value, where: str):
    """A nested config from a dict (or a dataclass already); RecapError naming unknown or bad fields."""
    if dataclasses.is_dataclass(value):
        return value
    if not isinstance(value, dict):
        raise RecapError(f"{where} must be an object of {cls.__name__} fields, got {value!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise RecapError(f"unknown field(s) {unknown} in {where}; {cls.__name__} has {sorted(known)}")
    try:
        return cls(**value)
    except (TypeError, ValueError) as error:
        raise RecapError(f"{where}: {error}") from None


def config_from_args(cls, args: argparse.Namespace, base: dict | None = None, *, moved: dict[str, str] | None = None):
    """Build `cls` from base < `args.config` file < command line. `moved` maps old top-level field names to the
    nested config that now holds them, for a helpful error. RecapError names a bad field or file."""
    options = json.loads(json.dumps(base or {}))  # a deep copy
    source = "the recipe's base config"
    if getattr(args, "config", None):
        source = args.config
        try:
            loaded = load_config_file(args.config)
        except (OSError, ValueError) as error:
            raise RecapError(f"cannot read config file {args.config}: {error}") from None
        nested = nested_configs(cls)
        for name, value in loaded.items():
            if name in nested and isinstance(value, dict) and isinstance(options.get(name), dict):
                options[name] = {**options[name], **value}
            else:
                options[name] = value
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        hints = [f"{name!r} belongs under {(moved or {})[name]!r}" for name in unknown if name in (moved or {})]
        raise RecapError(
            f"unknown config field(s) {unknown} in {source}" + (f" ({'; '.join(hints)})" if hints else "")
        )
    for name in known:
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    for name in nested_configs(cls):
        given = {key.split(".", 1)[1]: value for key, value in vars(args).items() if key.startswith(f"{name}.")}
        given = {key: value for key, value in given.items() if value is not None}
        if given:
            current = options.get(name, {})
            if isinstance(current, str):  # a config file may give a nested config as its model path
                current = {"model": current}
            options[name] = {**current, **given}
    try:
        return cls(**options)
    except (TypeError, ValueError) as error:
        raise RecapError(str(error)) from None
