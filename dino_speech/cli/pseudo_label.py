"""``dino-speech pseudo-label run``: iterative pseudo-labeling from a trained (DINO) model."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dino_speech.cli.run_options import config_option, load_run_config, run_options


@click.group("pseudo-label", context_settings={"help_option_names": ["-h", "--help"]})
def pseudo_label() -> None:
    """Iterative pseudo-labeling: cluster the embeddings, fine-tune on the clusters, repeat."""


@pseudo_label.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Per round: embed data.train_cuts with the current model -> cluster (PCA, k-means,
cosine AHC, size filter) -> EXP/roundR/cuts_pseudo.jsonl.gz (custom['pseudo_speaker'])
-> margin-softmax fine-tuning, backbone frozen then all layers -> embed eval.cuts and
score eval.trials (cosine). Round 0 scores the initial model. Results: EXP/summary.json
and a table (EER, minDCF, clusters, NMI/purity against custom['speaker'] when present);
the final model is EXP/embedder.pt.

\b
Rerunning skips finished stages (EXP/roundR/.STAGE.done); a changed config redoes the
stages it affects; a killed fine-tuning stage resumes from its last checkpoint.

\b
Example:
  dino-speech pseudo-label run --config recipes/pseudo_label_mini.yaml \\
      --init exp/mini --exp-dir exp/mini_pl --rounds 1 \\
      data.train_cuts=data/synthetic/synthetic_cuts_train.jsonl.gz finetune.full_epochs=5
Unknown override keys are an error listing the valid ones. Sections: data (augment),
embed, cluster, margin, finetune, eval, train; round_overrides sets keys for one round,
e.g. round_overrides='{2: [cluster.ahc_threshold=0.6]}'.

\b
Multi-GPU: torchrun --nproc_per_node 4 -m dino_speech.cli.main pseudo-label run ...
(embedding is sharded, fine-tuning data-parallel; data.batch_size is per process).""",
)
@config_option("Recipe YAML (a PseudoLabelConfig), e.g. recipes/pseudo_label_lresnet34.yaml.")
@click.option(
    "--init",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The model to start from: a DINO experiment directory (its embedder.pt, the "
    "teacher), an embedder file, or a DINO training checkpoint.",
)
@click.option(
    "--exp-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Experiment directory of the rounds (created; rerun to resume).",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=0),
    default=None,
    help="Number of rounds (overrides 'rounds' of the config; 0 only scores the init model).",
)
@run_options("Override train.max_minutes: time budget of EACH fine-tuning stage.")
def run(
    config_path: Path,
    init: Path,
    exp_dir: Path,
    rounds: int | None,
    device: str | None,
    max_minutes: float | None,
    quiet: bool,
    overrides: tuple[str, ...],
) -> None:
    """Run (or resume) pseudo-labeling rounds starting from the model INIT.

    OVERRIDES are KEY=VALUE settings on top of the recipe (see below).
    """
    from dino_speech.config import PseudoLabelConfig
    from dino_speech.pseudo_label.loop import format_summary, run_pseudo_label

    cfg = load_run_config(
        PseudoLabelConfig, config_path, overrides, device=device, max_minutes=max_minutes
    )
    summary = run_pseudo_label(cfg, init, exp_dir, rounds=rounds, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: one table, not one per process
        click.echo(format_summary(summary))
