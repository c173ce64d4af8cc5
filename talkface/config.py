"""YAML configs parsed into typed dataclasses.

A config file is a YAML mapping whose keys mirror a dataclass (nested dataclasses are nested
mappings). `_base_: other.yaml` inherits from another file (path relative to this one) and the
file's own keys override it; a nested section may say `_base_` too, so a pipeline's config can
take each stage's shipped file as the base of its section. Command-line overrides are `a.b=value`, parsed as YAML scalars.
Every key must exist in the dataclass and every value must have its field's type; anything else
is a one-line `ConfigError` naming the key and the file (or the override).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from talkface.atomic import atomic_path
from talkface.errors import ConfigError

T = TypeVar("T")

BASE_KEY = "_base_"


def load_config(cls: type[T], path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> T:
    """Build `cls` from its defaults, then the YAML file at `path` (if any), then `overrides`."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        tree = _read_yaml_tree(Path(path))
        source = str(path)
    config = _build(cls, tree, prefix="", source=source)
    for override in overrides:
        config = apply_override(config, override)
    return config


def apply_override(config: T, override: str) -> T:
    """Return a copy of `config` with one `a.b=value` override applied (type-checked)."""
    source = f"--set {override}"
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source}: expected KEY=VALUE, KEY a dotted path into the config (e.g. train.batch_size=8)")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise ConfigError(f"{source}: the value is not valid YAML ({problem})") from None
    return _replace_path(config, parts, value, prefix="", source=source)


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as plain YAML-able data (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))


# --------------------------------------------------------------------------------------------
# reading YAML


def _read_yaml_tree(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("config file not found", path)
    if path.resolve() in seen:
        raise ConfigError(f"{BASE_KEY} inheritance loops back to this file", path)
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}", path) from None
    if not isinstance(tree, dict):
        raise ConfigError("a config file must be a mapping of keys to values", path)
    return _resolve_bases(tree, path, seen)


def _resolve_bases(tree: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """Replace every `_base_` (at the top or in a nested section) by the file it names, merged under its section."""
    tree = {key: _resolve_bases(value, path, seen) if isinstance(value, dict) else value
            for key, value in tree.items()}
    base = tree.pop(BASE_KEY, None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ConfigError(f"{BASE_KEY} must name a YAML file, got {base!r}", path)
    return _merge(_read_yaml_tree(path.parent / base, seen + (path.resolve(),)), tree)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------------------------
# typed construction


def _build(cls: type[T], tree: dict[str, Any], prefix: str, source: str) -> T:
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'config'}: expected a mapping, got {tree!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(tree) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}' (valid keys here: {', '.join(fields)})"
        )
    kwargs = {}
    for name, value in tree.items():
        kwargs[name] = _convert(hints[name], value, f"{prefix}{name}", source)
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field without a default
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {error}") from None
    except ValueError as error:  # a dataclass's own __post_init__ validation
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {error}") from None


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    """Check `value` against the type `hint`, converting YAML lists to tuples and ints to floats."""

    def fail() -> typing.NoReturn:
        raise ConfigError(f"{source}: {key}: expected {_type_name(hint)}, got {value!r}")

    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{source}: {key}: expected one of {list(get_args(hint))}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, key, source)
            except ConfigError:
                continue
        fail()
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            fail()
        args = get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{source}: {key}: expected {len(args)} values, got {len(value)}")
            items = [_convert(a, v, f"{key}[{i}]", source) for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_hint = args[0] if args else Any
            items = [_convert(item_hint, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if hint is float:
        if isinstance(value, bool):
            fail()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                fail()
        fail()
    if hint is str:
        if not isinstance(value, str):
            fail()
        return value
    raise TypeError(f"config field {key} has a type the config system does not support: {hint}")


def _replace_path(config: Any, parts: list[str], value: Any, prefix: str, source: str) -> Any:
    fields = {f.name for f in dataclasses.fields(config)}
    name = parts[0]
    if name not in fields:
        raise ConfigError(f"{source}: unknown key '{prefix}{name}' (valid keys here: {', '.join(fields)})")
    hint = get_type_hints(type(config))[name]
    if len(parts) == 1:
        new_value = _convert(hint, value, f"{prefix}{name}", source)
    else:
        current = getattr(config, name)
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{source}: '{prefix}{name}' has no sub-keys")
        new_value = _replace_path(current, parts[1:], value, f"{prefix}{name}.", source)
    try:
        return dataclasses.replace(config, **{name: new_value})
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
