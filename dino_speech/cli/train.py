"""``dino-speech train dino``: self-supervised DINO training from a config."""

from __future__ import annotations

from pathlib import Path

import click

from dino_speech.cli.run_options import config_option, load_run_config, run_options


@click.group()
def train() -> None:
    """Train models (DINO self-distillation; the untrained encoder as a baseline)."""


@train.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Overrides are dotted config keys with YAML values, applied after the config:
  dino-speech train dino --config configs/mini.yaml --exp-dir exp/mini \\
      train.epochs=3 optim.lr=0.01 data.crops.num_local=2 model.kwargs='{embed_dim: 64}'
Unknown keys are an error that lists the valid ones. Sections: data (crops, augment,
features), model (name, kwargs), dino, optim, train.

\b
Multi-GPU: torchrun --nproc_per_node 8 -m dino_speech.cli.main train dino ...
(data.batch_size is per process; the learning rate scales with the total batch).""",
)
@config_option("Config YAML (a DinoExperimentConfig), e.g. configs/dino_ecapa_c512.yaml.")
@click.option(
    "--exp-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Experiment directory: config.yaml, train.log, tb/, checkpoints/, embedder.pt.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from the newest checkpoint in EXP-DIR if there is one. --no-resume "
    "refuses to touch an EXP-DIR that already holds checkpoints.",
)
@run_options("Override train.max_minutes: stop cleanly (checkpoint + embedder) after this time.")
def dino(
    config_path: Path,
    exp_dir: Path,
    resume: bool,
    device: str | None,
    max_minutes: float | None,
    quiet: bool,
    overrides: tuple[str, ...],
) -> None:
    """Train DINO on unlabelled speech; the teacher's encoder becomes EXP-DIR/embedder.pt.

    OVERRIDES are KEY=VALUE settings on top of the config (see below). A rerun with the
    same config and training manifest as a finished run (EXP-DIR/summary.json) does nothing;
    changed settings (e.g. more epochs, a larger --max-minutes) resume from the newest
    checkpoint.
    """
    from dino_speech.config import DinoExperimentConfig
    from dino_speech.train.trainer import finished_run, train_dino

    cfg = load_run_config(
        DinoExperimentConfig, config_path, overrides, device=device, max_minutes=max_minutes
    )
    done = finished_run(cfg, exp_dir) if resume else None
    if done is not None:
        click.echo(f"already trained with this config and manifest ({exp_dir / 'summary.json'})")
    result = done or train_dino(cfg, exp_dir, resume=resume, progress=not quiet)
    click.echo(result.summary())


@train.command(context_settings={"help_option_names": ["-h", "--help"]})
@config_option("Config YAML (a DinoExperimentConfig): its model, features and train.seed.")
@click.option(
    "--exp-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes EXP-DIR/embedder.pt and EXP-DIR/config.yaml.",
)
@click.argument("overrides", nargs=-1)
def untrained(config_path: Path, exp_dir: Path, overrides: tuple[str, ...]) -> None:
    """Write the config's encoder, randomly initialised and untrained, as an embedder.

    The weights are those `train dino` starts from with the same train.seed. Use it as the
    untrained baseline (`dino-speech embed --model EXP-DIR`), or as the --init of a supervised
    run from scratch (`pseudo-label run ... cluster.method=oracle`).

    \b
    Example:
      dino-speech train untrained --config configs/speechocean_dino.yaml --exp-dir exp/untrained
    """
    from dino_speech.config import DinoExperimentConfig
    from dino_speech.train.trainer import write_untrained_embedder

    cfg = load_run_config(
        DinoExperimentConfig, config_path, overrides, device=None, max_minutes=None
    )
    click.echo(f"untrained {cfg.model.name} encoder -> {write_untrained_embedder(cfg, exp_dir)}")
