"""``dino-speech image``: image-domain non-contrastive SSL and the prediction-head study."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dino_speech.image.study_config import VARIANTS, StudyConfig

# Literal copies of the library registries (checked by the tests) keep this module free of torch.
METHODS = ("byol", "simsiam", "barlow", "vicreg")
TRAIN_PREDICTORS = ("mlp", "linear", "offdiag_identity", "directpred")
_STUDY = StudyConfig()


def _set_threads(num_threads: int) -> None:
    if num_threads > 0:
        import torch

        torch.set_num_threads(num_threads)


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'") from None
    if not items:
        raise click.BadParameter("give at least one value")
    return items


def _name_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in items if v not in VARIANTS]
    if bad or not items:
        raise click.BadParameter(
            f"unknown variant '{bad[0] if bad else value}'; valid: {', '.join(VARIANTS)}"
        )
    return items


_threads_option = click.option(
    "--num-threads",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="CPU threads for torch (0: torch's default). 1 is often fastest on a busy machine.",
)


@click.group()
def image() -> None:
    """Image-domain non-contrastive SSL: BYOL, SimSiam, Barlow Twins, VICReg, predictor study."""


@image.command()
@click.option(
    "--method", type=click.Choice(METHODS), default="byol", show_default=True, help="SSL method."
)
@click.option(
    "--predictor",
    type=click.Choice(TRAIN_PREDICTORS),
    default=None,
    help="Predictor of BYOL/SimSiam [default: mlp]; not allowed for barlow/vicreg.",
)
@click.option(
    "--dataset",
    type=click.Choice(["digits", "cifar10"]),
    default="digits",
    show_default=True,
    help="digits: bundled 8x8 digits (sklearn); cifar10: local folder.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder holding cifar-10-batches-py/ (cifar10 only; nothing is downloaded).",
)
@click.option(
    "--backbone",
    type=click.Choice(["small_cnn", "resnet18_cifar"]),
    default=None,
    help="Encoder [default: small_cnn for digits, resnet18_cifar for cifar10].",
)
@click.option(
    "--epochs", default=60, show_default=True, type=click.IntRange(min=1), help="Training epochs."
)
@click.option(
    "--batch-size",
    default=256,
    show_default=True,
    type=click.IntRange(min=2),
    help="Images per batch (two views each).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak learning rate [default: 2e-3 x batch/256 (AdamW, digits); "
    "0.05 x batch/256 (SGD, cifar10)].",
)
@click.option(
    "--optimizer",
    type=click.Choice(["adamw", "sgd"]),
    default=None,
    help="Optimiser [default: adamw for digits, sgd with momentum 0.9 for cifar10].",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=None,
    help="Weight decay [default: 1e-4 digits, 5e-4 cifar10].",
)
@click.option(
    "--warmup-epochs",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Linear learning-rate warm-up before the cosine decay.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda, ...).")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write config.yaml, encoder.pt and metrics.json here.",
)
@click.option(
    "--linear-probe/--no-linear-probe",
    default=True,
    show_default=True,
    help="Also fit the logistic-regression probe (the slowest metric on CIFAR-10).",
)
@_threads_option
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show a progress bar."
)
def train(
    method: str,
    predictor: str | None,
    dataset: str,
    data_dir: Path | None,
    backbone: str | None,
    epochs: int,
    batch_size: int,
    lr: float | None,
    optimizer: str | None,
    weight_decay: float | None,
    warmup_epochs: int,
    seed: int,
    device: str,
    out_dir: Path | None,
    linear_probe: bool,
    num_threads: int,
    progress: bool,
) -> None:
    """Train one SSL method and print kNN / linear / collapse diagnostics of its frozen
    backbone next to the same backbone at random init and raw pixels."""
    from dino_speech.image.report import format_results_table
    from dino_speech.image.train import ImageTrainConfig, train_image_ssl

    _set_threads(num_threads)
    cfg = ImageTrainConfig(
        method=method, predictor=predictor, dataset=dataset,
        data_dir=str(data_dir) if data_dir else None, backbone=backbone, epochs=epochs,
        batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
        warmup_epochs=warmup_epochs, seed=seed, device=device, linear_probe=linear_probe,
        out_dir=str(out_dir) if out_dir else None,
    )  # fmt: skip
    result = train_image_ssl(cfg, progress=progress)
    click.echo(format_results_table([result]))
    if out_dir:
        click.echo(f"wrote {out_dir}/metrics.json, encoder.pt, config.yaml")


@image.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
def report(runs: tuple[Path, ...]) -> None:
    """Print one table of finished runs (their folders or metrics.json files), with the
    random-init and raw-pixel baselines."""
    from dino_speech.image.report import format_results_table, load_runs

    click.echo(format_results_table(load_runs(runs)))


@image.command("predictor-study")
@click.option(
    "--seeds",
    default=",".join(map(str, _STUDY.seeds)),
    show_default=True,
    callback=_int_list,
    help="Comma-separated seeds; each gives its own data rotation and init.",
)
@click.option(
    "--steps",
    default=_STUDY.steps,
    show_default=True,
    type=click.IntRange(min=1),
    help="SGD steps per run (a fresh batch from the data model each step).",
)
@click.option(
    "--variants",
    default=",".join(_STUDY.variants),
    show_default=True,
    callback=_name_list,
    help=f"Comma-separated, from: {', '.join(VARIANTS)}.",
)
@click.option(
    "--num-strong",
    default=_STUDY.num_strong,
    show_default=True,
    type=click.IntRange(min=0),
    help="Number of strong features.",
)
@click.option(
    "--num-weak",
    default=_STUDY.num_weak,
    show_default=True,
    type=click.IntRange(min=0),
    help="Number of weak features.",
)
@click.option(
    "--strong",
    default=_STUDY.strong,
    show_default=True,
    type=float,
    help="Magnitude of the strong features.",
)
@click.option(
    "--weak",
    default=_STUDY.weak,
    show_default=True,
    type=float,
    help="Magnitude of the weak features.",
)
@click.option(
    "--width",
    default=_STUDY.width,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of neurons.",
)
@click.option(
    "--lr",
    default=_STUDY.lr,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="SGD learning rate.",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write every run's numbers here as JSON.",
)
@_threads_option
@click.option(
    "--progress/--no-progress", default=True, show_default=True, help="Show a progress bar."
)
def predictor_study(
    seeds: tuple[int, ...],
    steps: int,
    variants: tuple[str, ...],
    num_strong: int,
    num_weak: int,
    strong: float,
    weak: float,
    width: int,
    lr: float,
    json_out: Path | None,
    num_threads: int,
    progress: bool,
) -> None:
    """Train a one-layer ReLU network with normalised outputs on a synthetic model of strong
    and weak features, with each predictor variant and seed, and print how many features each
    learns, the effective rank and the final loss (Wen & Li, NeurIPS 2022)."""
    from dino_speech.image.predictor_study import StudyConfig, format_study_table, run_study

    _set_threads(num_threads)
    cfg = StudyConfig(
        seeds=seeds, steps=steps, variants=variants, num_strong=num_strong, num_weak=num_weak,
        strong=strong, weak=weak, width=width, lr=lr,
    )  # fmt: skip
    rows = run_study(cfg, progress=progress)
    click.echo(format_study_table(cfg, rows))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(rows, indent=2))
