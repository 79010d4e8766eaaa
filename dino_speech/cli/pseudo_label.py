"""``dino-speech pseudo-label run``: iterative pseudo-labeling from a trained (DINO) model;
``dino-speech pseudo-label cluster``: its clustering step on an embedding file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dino_speech.cli.options import FILE, embeddings_option, progress_option, show_progress
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
  dino-speech pseudo-label run --config configs/pseudo_label_mini.yaml \\
      --init exp/mini --exp-dir exp/mini_pl --rounds 1 \\
      data.train_cuts=data/synthetic/synthetic_cuts_train.jsonl.gz finetune.full_epochs=5
Unknown override keys are an error listing the valid ones. Sections: data (augment),
embed, cluster, margin, finetune, eval, train; round_overrides sets keys for one round,
e.g. round_overrides='{2: [cluster.ahc_threshold=0.6]}'.

\b
Multi-GPU: torchrun --nproc_per_node 4 -m dino_speech.cli.main pseudo-label run ...
(embedding is sharded, fine-tuning data-parallel; data.batch_size is per process).""",
)
@config_option("Config YAML (a PseudoLabelConfig), e.g. configs/pseudo_label_lresnet34.yaml.")
@click.option(
    "--init",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The model to start from: a DINO experiment directory (its embedder.pt, the "
    "teacher), an embedder file, a DINO training checkpoint, or a speechbrain ECAPA model "
    "folder (hyperparams.yaml + embedding_model.ckpt, e.g. spkrec-ecapa-voxceleb: the "
    "pretrained speaker model is adapted, with its own front end, to the unlabelled data).",
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

    OVERRIDES are KEY=VALUE settings on top of the config (see below). A rerun of a
    finished run's request (config, rounds, INIT file, manifests: EXP-DIR/summary.json)
    does nothing; a changed one redoes only the stages it affects.
    """
    from dino_speech.config import PseudoLabelConfig
    from dino_speech.pseudo_label.loop import finished_rounds, format_summary, run_pseudo_label

    cfg = load_run_config(
        PseudoLabelConfig, config_path, overrides, device=device, max_minutes=max_minutes
    )
    summary = finished_rounds(cfg, init, exp_dir, rounds=rounds)
    if summary is not None:
        click.echo(f"pseudo-labeling already done for this request ({exp_dir / 'summary.json'})")
    else:
        summary = run_pseudo_label(cfg, init, exp_dir, rounds=rounds, progress=not quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun: one table, not one per process
        click.echo(format_summary(summary))


@pseudo_label.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
The clustering of one pseudo-labeling round, on embeddings you already have: L2, PCA,
k-means over-clustering (N / samples_per_cluster pre-clusters, never capped), cosine AHC
of the centroids, size filter. Above cluster.max_preclusters pre-clusters it runs by
parts (k-means with an inverted-file assignment, AHC in cells, then of the cells'
clusters), so 10^6 embeddings fit a few GB. Writes OUT/utt2cluster ('utt cluster',
left-out utterances absent) and OUT/summary.json; a warning says when the settings
leave out more than half of the utterances.

\b
Examples:
  dino-speech pseudo-label cluster --embeddings exp/embed/train/xvector.scp \\
      --config configs/pseudo_label_ecapa_c512.yaml --out-dir exp/clusters \\
      --utt2spk data/train/utt2spk
  dino-speech pseudo-label cluster --embeddings emb.npz --out-dir OUT \\
      cluster.ahc_threshold_mode=neighbours cluster.min_size=4
  dino-speech pseudo-label cluster --embeddings emb.npz --out-dir OUT \\
      --utt2session data/train/utt2session cluster.aggregate=session""",
)
@embeddings_option("Embeddings to cluster")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Config YAML (a PseudoLabelConfig): its 'cluster' section is used. "
    "Default: the built-in cluster defaults.",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where utt2cluster and summary.json go (created).",
)
@click.option(
    "--cuts",
    type=click.Path(path_type=Path),
    default=None,
    help="Lhotse cuts whose custom['speaker'] (speaker_key) scores NMI and purity.",
)
@click.option(
    "--utt2spk",
    type=FILE,
    default=None,
    help="Kaldi utt2spk that scores NMI and purity (instead of --cuts).",
)
@click.option(
    "--utt2session",
    type=FILE,
    default=None,
    help="Kaldi-style 'utt session' list for cluster.aggregate=session (default: the cuts' "
    "custom['session'], cluster.session_key).",
)
@progress_option()
@click.argument("overrides", nargs=-1)
def cluster(
    embeddings: Path,
    config_path: Path | None,
    out_dir: Path,
    cuts: Path | None,
    utt2spk: Path | None,
    utt2session: Path | None,
    progress: bool | None,
    overrides: tuple[str, ...],
) -> None:
    """Cluster embeddings into pseudo-speakers, as one round of pseudo-labeling does.

    OVERRIDES are KEY=VALUE settings of the config, e.g. cluster.min_size=4.
    """
    from dino_speech.config import PseudoLabelConfig, load_config
    from dino_speech.errors import ConfigError
    from dino_speech.pseudo_label.cluster_files import (
        cluster_embedding_file,
        format_cluster_summary,
        utterance_labels,
    )

    if cuts is not None and utt2spk is not None:
        raise ConfigError("give --cuts or --utt2spk, not both")
    cfg = load_config(PseudoLabelConfig, config_path, overrides)
    speakers = utterance_labels(cuts, utt2spk, cfg.speaker_key)
    sessions = None
    if cfg.cluster.aggregate == "session":
        if cuts is None and utt2session is None:
            raise ConfigError("cluster.aggregate=session needs --utt2session or --cuts")
        sessions = utterance_labels(
            cuts if utt2session is None else None, utt2session, cfg.cluster.session_key
        )
    summary = cluster_embedding_file(
        embeddings,
        cfg.cluster,
        out_dir,
        speakers=speakers,
        sessions=sessions,
        progress=show_progress(progress),
    )
    click.echo(format_cluster_summary(summary))
    click.echo(f"labels: {out_dir / 'utt2cluster'}  summary: {out_dir / 'summary.json'}")
