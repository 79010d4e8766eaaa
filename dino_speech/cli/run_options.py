"""Click glue shared by the commands that run a training job from a recipe.

``dino-speech train dino`` and ``dino-speech pseudo-label run`` both take a recipe YAML
(``--config``), ``--device`` and ``--max-minutes`` shortcuts for ``train.device`` and
``train.max_minutes``, ``--quiet``, and dotted ``KEY=VALUE`` overrides; :func:`load_run_config`
turns them into the config object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click

__all__ = ["config_option", "load_run_config", "run_options"]

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")


def config_option(help_text: str) -> Callable[[F], F]:
    """``--config PATH`` (required, an existing file), passed as ``config_path``."""
    return click.option(
        "--config",
        "config_path",
        required=True,
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


def load_run_config(
    cls: type[T],
    config_path: Path,
    overrides: Sequence[str],
    *,
    device: str | None,
    max_minutes: float | None,
) -> T:
    """The recipe with the overrides applied, then ``--device`` and ``--max-minutes``."""
    from dino_speech.config import load_config

    extra = list(overrides)
    if device is not None:
        extra.append(f"train.device={device}")
    if max_minutes is not None:
        extra.append(f"train.max_minutes={max_minutes}")
    return load_config(cls, config_path, extra)
