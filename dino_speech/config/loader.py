"""The config loader: nested dataclasses, strict YAML load/save, dotted overrides.

One YAML file describes one experiment. Loading is strict: an unknown or mistyped key, or a
value of the wrong type, raises :class:`~dino_speech.errors.ConfigError` naming the key and
listing the valid ones. Overrides on the command line use dotted paths::

    dino-speech train dino --config configs/mini.yaml --exp-dir exp/mini train.epochs=3 \
        optim.lr=0.01 data.crops.num_local=2

Values in overrides are parsed as YAML scalars (``3`` is an int, ``[2, 4]`` a list, ``null``
None) and then checked against the field's type.

A field documents itself with ``metadata={"help": ...}`` (see :func:`setting`); errors about
a key show its help, and :func:`describe_config` lists every key with its default and help.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from dino_speech.errors import ConfigError

__all__ = [
    "apply_overrides",
    "describe_config",
    "field_help",
    "from_dict",
    "load_config",
    "save_config",
    "setting",
    "to_dict",
]

T = TypeVar("T")


def setting(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:  # noqa: A002
    """A dataclass field with a default and its ``help`` text (``metadata={"help": help}``)."""
    return dataclasses.field(default=default, metadata={"help": help} if help else {}, **kwargs)


def field_help(f: dataclasses.Field[Any]) -> str:
    """The help text of a config field ('' when it has none)."""
    return str(f.metadata.get("help", ""))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts/lists (tuples become lists), ready for YAML."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from nested mappings, checking every key and type."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_label(where)} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(_unknown_key_message(unknown[0], where, list(fields), cls))
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            try:
                kwargs[name] = _coerce(data[name], hints[name], key)
            except ConfigError as exc:
                if _is_section(hints[name]):  # the error is about a key inside, with its help
                    raise
                raise ConfigError(f"{exc}{_help_suffix(key, f)}") from None
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required config key '{key}'{_help_suffix(key, f)}")
    return cls(**kwargs)


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with dotted ``key=value`` overrides applied."""
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key.subkey=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': cannot parse value: {exc}") from None
        node: dict[str, Any] = data
        parts = key.split(".")
        cls: Any = type(cfg)
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth])
            names = [f.name for f in dataclasses.fields(cls)]
            if part not in names:
                raise ConfigError(_unknown_key_message(part, where, names, cls))
            if depth == len(parts) - 1:
                node[part] = value
                break
            sub = typing.get_type_hints(cls)[part]
            if not (isinstance(sub, type) and dataclasses.is_dataclass(sub)):
                raise ConfigError(
                    f"'{'.'.join(parts[: depth + 1])}' is not a section; cannot set '{key}'"
                )
            cls = sub
            node = node[part]
    return from_dict(type(cfg), data)


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file (or defaults when ``path`` is None), then apply overrides."""
    data: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        cfg = from_dict(cls, data)
    except ConfigError as exc:
        if path is None:
            raise
        raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(cfg, overrides)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML; ``load_config(type(cfg), path)`` gives it back unchanged."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def describe_config(cls: type, where: str = "") -> list[str]:
    """One line per leaf key of ``cls``: ``key = default`` and the key's help, sections nested."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if _is_section(hints[f.name]):
            lines.extend(describe_config(hints[f.name], key))
            continue
        if f.default is not dataclasses.MISSING:
            text = f"{key} = {_yaml_value(f.default)}"
        elif f.default_factory is not dataclasses.MISSING:
            text = f"{key} = {_yaml_value(f.default_factory())}"
        else:
            text = f"{key} (required)"
        lines.append(f"{text}: {field_help(f)}" if field_help(f) else text)
    return lines


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(to_dict(value), default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _help_suffix(key: str, f: dataclasses.Field[Any]) -> str:
    text = field_help(f)
    return f". {key}: {text}" if text else ""


def _label(where: str) -> str:
    return f"'{where}'" if where else "the config"


def _unknown_key_message(key: str, where: str, valid: list[str], cls: Any) -> str:
    full = f"{where}.{key}" if where else key
    hint = difflib.get_close_matches(key, valid, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    message = (
        f"unknown config key '{full}'{did_you_mean}; valid keys of {_label(where)}: "
        + ", ".join(valid)
    )
    if hint:
        suggested = next(f for f in dataclasses.fields(cls) if f.name == hint[0])
        message += _help_suffix(f"{where}.{hint[0]}" if where else hint[0], suggested)
    return message


def _coerce(value: Any, tp: Any, key: str) -> Any:  # noqa: C901 - one branch per type form
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"'{key}': {value!r} fits none of {tp}"
        )
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"'{key}' must be one of {choices}, got {value!r}")
        return value
    if _is_section(tp):
        return from_dict(tp, value, where=key)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"'{key}' must have {len(args)} items, got {len(value)}")
            items = [
                _coerce(v, a, f"{key}[{i}]")
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept any number spelled as text.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list, tuple)) or value is None:
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"'{key}': unsupported config type {tp}")
