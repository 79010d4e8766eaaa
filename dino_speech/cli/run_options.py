"""Click glue shared by the commands that run a job from a config file.

``dino-speech train dino``, ``dino-speech pseudo-label run`` and the ``dino-speech image``
commands take a config YAML (``--config``) and dotted ``KEY=VALUE`` overrides; the training
commands add ``--device`` and ``--max-minutes`` shortcuts for ``train.device`` and
``train.max_minutes`` and ``--quiet``. :func:`load_run_config` turns them into the config
object; shortcut options become overrides (:func:`shortcut_overrides`), so every value goes
through the same loader and its checks.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from dino_speech.config import load_config

__all__ = [
    "config_option",
    "literal_choices",
    "load_run_config",
    "run_options",
    "shortcut_overrides",
]

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")


def config_option(help_text: str, *, required: bool = True) -> Callable[[F], F]:
    """``--config PATH`` (an existing file; required unless ``required=False``), as
    ``config_path``."""
    return click.option(
        "--config",
        "config_path",
        required=required,
        default=None,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


def run_options(max_minutes_help: str) -> Callable[[F], F]:
    """``--device``, ``--max-minutes``, ``--quiet`` and the ``OVERRIDES`` arguments."""

    def decorate(fn: F) -> F:
        fn = click.argument("overrides", nargs=-1)(fn)
        fn = click.option("--quiet", is_flag=True, help="No progress bars.")(fn)
        fn = click.option(
            "--max-minutes",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help=max_minutes_help,
        )(fn)
        return click.option(
            "--device",
            default=None,
            help="Override train.device: 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1'.",
        )(fn)

    return decorate


def shortcut_overrides(values: Mapping[str, Any]) -> list[str]:
    """``KEY=VALUE`` overrides of the shortcut options given (a value of ``None``: not given).

    Values are written as JSON, which the loader reads back as YAML: a path, or a string such
    as ``yes``, stays a string; tuples become lists.
    """
    return [
        f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}"
        for key, value in values.items()
        if value is not None
    ]


def literal_choices(cls: type, name: str) -> tuple[Any, ...]:
    """The values a ``Literal`` (or ``Literal | None``) field of config ``cls`` accepts."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is not typing.Literal:
        tp = next(a for a in typing.get_args(tp) if typing.get_origin(a) is typing.Literal)
    return typing.get_args(tp)


def load_run_config(
    cls: type[T],
    config_path: Path | None,
    overrides: Sequence[str],
    *,
    device: str | None = None,
    max_minutes: float | None = None,
    shortcuts: Mapping[str, Any] | None = None,
) -> T:
    """The config file (or ``cls``'s defaults without one) with the overrides applied, then the
    shortcut options: ``--device``, ``--max-minutes`` and ``shortcuts`` ({key: value})."""
    given = {"train.device": device, "train.max_minutes": max_minutes, **(shortcuts or {})}
    return load_config(cls, config_path, [*overrides, *shortcut_overrides(given)])
