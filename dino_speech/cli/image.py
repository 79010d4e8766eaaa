"""``dino-speech image``: image-domain non-contrastive SSL and the prediction-head study.

``image train`` and ``image predictor-study`` read their settings as ``dino-speech train dino``
does: an optional config YAML (``--config``: an :class:`~dino_speech.config.ImageTrainConfig`,
e.g. ``configs/image_simsiam.yaml``, or a :class:`~dino_speech.config.StudyConfig`), then
dotted ``KEY=VALUE`` overrides, then the shortcut options (``--method simsiam`` is
``method=simsiam``), all through the config loader. Choices come from the schema, whose names
are the registries the image modules build from; nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dino_speech.cli.run_options import config_option, literal_choices, load_run_config
from dino_speech.config import describe_config, field_help
from dino_speech.config.image import (
    METHODS,
    TRAIN_PREDICTORS,
    VARIANTS,
    ImageTrainConfig,
    StudyConfig,
)

__all__ = ["METHODS", "TRAIN_PREDICTORS", "VARIANTS", "image"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _set_threads(num_threads: int) -> None:
    if num_threads > 0:
        import torch

        torch.set_num_threads(num_threads)


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'") from None
    if not items:
        raise click.BadParameter("give at least one value")
    return items


def _name_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    # the names are checked with the rest of the config (StudyConfig.check)
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _shortcut(cls: type, key: str, *decls: str, choices: bool = False, **kwargs: Any) -> Decorator:
    """A shortcut option for config key ``key`` of ``cls``: not given (None) unless used, its
    help the field's, its default the schema's."""
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    default = f.default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    shown = str(shown).lower() if isinstance(shown, bool) else shown
    note = f"[{key}; default: {shown}]" if default is not None else f"[{key}]"
    if choices:
        kwargs["metavar"] = "[" + "|".join(literal_choices(cls, key)) + "]"
    decls = decls or ("--" + key.replace("_", "-"),)
    return click.option(*decls, key, default=None, help=f"{field_help(f)}  {note}", **kwargs)


def _keys_epilog(cls: type) -> str:
    """The config keys of ``cls`` with defaults and help, for a command's epilog."""
    lines = [
        wrapped
        for line in describe_config(cls)
        for wrapped in textwrap.wrap(line, 96, initial_indent="  ", subsequent_indent="      ")
    ]
    return "\b\nConfig keys (YAML or KEY=VALUE), with their defaults:\n" + "\n".join(lines)


_threads_option = click.option(
    "--num-threads",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="CPU threads for torch (0: torch's default). 1 is often fastest on a busy machine.",
)
_progress_option = click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show a progress bar."
)
_overrides_argument = click.argument("overrides", nargs=-1)

TRAIN_SHORTCUTS = (
    "method", "predictor", "dataset", "data_dir", "backbone", "epochs", "batch_size", "lr",
    "optimizer", "weight_decay", "warmup_epochs", "seed", "device", "out_dir", "linear_probe",
)  # fmt: skip
STUDY_SHORTCUTS = ("seeds", "steps", "variants", "num_strong", "num_weak", "strong", "weak",
                   "width", "lr")  # fmt: skip


@click.group()
def image() -> None:
    """Image-domain non-contrastive SSL: BYOL, SimSiam, Barlow Twins, VICReg, predictor study."""


_T = ImageTrainConfig


@image.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
OVERRIDES are dotted config keys with YAML values, applied after the config; the options
above are shortcuts for the same keys and are applied last:
  dino-speech image train --config configs/image_simsiam.yaml epochs=10 lr=0.002
Unknown keys are an error that lists the valid ones.

"""
    + _keys_epilog(ImageTrainConfig),
)
@config_option(
    "Config YAML (an ImageTrainConfig), e.g. configs/image_simsiam.yaml [default: the "
    "defaults below].",
    required=False,
)
@_shortcut(_T, "method", choices=True)
@_shortcut(_T, "predictor", choices=True)
@_shortcut(_T, "dataset", choices=True)
@_shortcut(_T, "data_dir", type=click.Path())
@_shortcut(_T, "backbone", choices=True)
@_shortcut(_T, "epochs", type=click.IntRange(min=1))
@_shortcut(_T, "batch_size", type=click.IntRange(min=2))
@_shortcut(_T, "lr", type=click.FloatRange(min=0, min_open=True))
@_shortcut(_T, "optimizer", choices=True)
@_shortcut(_T, "weight_decay", type=click.FloatRange(min=0))
@_shortcut(_T, "warmup_epochs", type=click.IntRange(min=0))
@_shortcut(_T, "seed", type=int)
@_shortcut(_T, "device")
@_shortcut(_T, "out_dir", type=click.Path(file_okay=False))
@_shortcut(_T, "linear_probe", "--linear-probe/--no-linear-probe")
@_threads_option
@_progress_option
@_overrides_argument
def train(
    config_path: Path | None,
    num_threads: int,
    progress: bool,
    overrides: tuple[str, ...],
    **shortcuts: Any,
) -> None:
    """Train one SSL method and print kNN / linear / collapse diagnostics of its frozen
    backbone next to the same backbone at random init and raw pixels. A rerun of a finished
    run's config in the same --out-dir (its metrics.json) only prints its table.

    OVERRIDES are KEY=VALUE settings on top of the config (see below).
    """
    from dino_speech.image.report import format_results_table
    from dino_speech.image.train import finished_run, train_image_ssl

    cfg = load_run_config(ImageTrainConfig, config_path, overrides, shortcuts=shortcuts)
    done = finished_run(cfg)
    if done is not None:
        click.echo(f"already trained with this config ({cfg.out_dir}/metrics.json)")
        click.echo(format_results_table([done]))
        return
    _set_threads(num_threads)
    result = train_image_ssl(cfg, progress=progress)
    click.echo(format_results_table([result]))
    if cfg.out_dir:
        click.echo(f"wrote {cfg.out_dir}/metrics.json, encoder.pt, config.yaml")


@image.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
def report(runs: tuple[Path, ...]) -> None:
    """Print one table of finished runs (their folders or metrics.json files), with the
    random-init and raw-pixel baselines."""
    from dino_speech.image.report import format_results_table, load_runs

    click.echo(format_results_table(load_runs(runs)))


_S = StudyConfig


@image.command(
    "predictor-study",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
OVERRIDES are dotted config keys with YAML values, applied after the config; the options
above are shortcuts for the same keys and are applied last:
  dino-speech image predictor-study --seeds 0,1 steps=2000 presence=0.3

"""
    + _keys_epilog(StudyConfig),
)
@config_option("Settings YAML (a StudyConfig) [default: the defaults below].", required=False)
@_shortcut(_S, "seeds", callback=_int_list, metavar="N,N,...")
@_shortcut(_S, "steps", type=click.IntRange(min=1))
@_shortcut(_S, "variants", callback=_name_list, metavar="NAME,NAME,...")
@_shortcut(_S, "num_strong", type=click.IntRange(min=0))
@_shortcut(_S, "num_weak", type=click.IntRange(min=0))
@_shortcut(_S, "strong", type=float)
@_shortcut(_S, "weak", type=float)
@_shortcut(_S, "width", type=click.IntRange(min=1))
@_shortcut(_S, "lr", type=click.FloatRange(min=0, min_open=True))
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every run's numbers here as JSON.",
)
@_threads_option
@_progress_option
@_overrides_argument
def predictor_study(
    config_path: Path | None,
    json_out: Path | None,
    num_threads: int,
    progress: bool,
    overrides: tuple[str, ...],
    **shortcuts: Any,
) -> None:
    """Train a one-layer ReLU network with normalised outputs on a synthetic model of strong
    and weak features, with each predictor variant and seed, and print how many features each
    learns, the effective rank and the final loss (Wen & Li, NeurIPS 2022).

    OVERRIDES are KEY=VALUE settings on top of the config (see below).
    """
    from dino_speech.image.predictor_study import format_study_table, run_study

    cfg = load_run_config(StudyConfig, config_path, overrides, shortcuts=shortcuts)
    _set_threads(num_threads)
    rows = run_study(cfg, progress=progress)
    click.echo(format_study_table(cfg, rows))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows, indent=2))
