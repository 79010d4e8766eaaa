"""``dino-speech score`` (embeddings + trials → scores, EER, minDCF) and ``dino-speech eer``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dino_speech.cli.options import (
    FILE,
    embeddings_option,
    json_option,
    json_out_option,
    progress_option,
    show_progress,
)

if TYPE_CHECKING:
    import numpy as np

_P_TARGETS = (0.01, 0.05)

_trials_option = click.option(
    "--trials",
    required=True,
    type=FILE,
    help="Trial list: Kaldi 'utt1 utt2 target|nontarget' or VoxCeleb '1|0 utt1 utt2' lines.",
)
_p_target_option = click.option(
    "--p-target",
    "p_targets",
    multiple=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Prior of a target trial for minDCF (C_miss = C_fa = 1); repeatable. "
    "[default: 0.01 and 0.05]",
)
_det_option = click.option(
    "--det-plot",
    type=FILE,
    default=None,
    help="Write the DET curve (normal-deviate axes) to this PNG file.",
)
_json_option = json_option(
    '{"eer": <percent>, "min_dcf": {"0.01": x, "0.05": y}, "targets": n, "nontargets": m}'
)


@click.command()
@_trials_option
@embeddings_option("Embeddings of the trial utterances")
@click.option(
    "--norm",
    type=click.Choice(["none", "snorm", "asnorm"]),
    default="none",
    show_default=True,
    help="Score normalisation against --cohort: symmetric (snorm) or adaptive top-N (asnorm).",
)
@click.option(
    "--cohort",
    type=click.Path(path_type=Path),
    default=None,
    help="Cohort embeddings for --norm (e.g. one averaged embedding per training speaker).",
)
@click.option(
    "--top-n",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Number of highest cohort scores AS-norm uses per utterance.",
)
@click.option(
    "--mean-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Subtract the mean of these embeddings (e.g. the training set) from every embedding "
    "before cosine scoring.",
)
@click.option(
    "--whiten-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Whiten every embedding with the mean and (Ledoit-Wolf shrunk) covariance of these "
    "length-normalised embeddings, e.g. the unlabelled training set, before cosine scoring; "
    "instead of --mean-from.",
)
@click.option(
    "--scores-out",
    type=FILE,
    default=None,
    help="Write 'utt1 utt2 score' lines (trial order) to this file.",
)
@_det_option
@_p_target_option
@_json_option
@json_out_option()
@progress_option()
def score(
    trials: Path,
    embeddings: Path,
    norm: str,
    cohort: Path | None,
    top_n: int,
    mean_from: Path | None,
    whiten_from: Path | None,
    scores_out: Path | None,
    det_plot: Path | None,
    p_targets: tuple[float, ...],
    as_json: bool,
    json_out: Path | None,
    progress: bool | None,
) -> None:
    """Score a trial list by cosine similarity and report EER and minDCF.

    \b
    Example:
        dino-speech score --trials data/test/trials --embeddings exp/emb/test/xvector.scp \\
            --norm asnorm --cohort exp/emb/train/xvector.scp --top-n 300 --json
    """
    from dino_speech.embedding_io import read_embeddings
    from dino_speech.eval.verification import read_trials, score_trials, write_scores
    from dino_speech.eval.whitening import Whitening

    if norm != "none" and cohort is None:
        raise click.UsageError(f"--norm {norm} needs --cohort")
    if norm == "none" and cohort is not None:
        raise click.UsageError("--cohort is only used with --norm snorm or --norm asnorm")
    if mean_from is not None and whiten_from is not None:
        raise click.UsageError("--whiten-from centres the embeddings already: drop --mean-from")
    p_targets = p_targets or _P_TARGETS
    inputs = {
        "trials": trials,
        "embeddings": embeddings,
        "cohort": cohort,
        "mean_from": mean_from,
        "whiten_from": whiten_from,
    }
    settings = {"norm": norm, "top_n": top_n, "p_targets": p_targets}
    if whiten_from is not None:  # the same file as --mean-from is another result
        settings["whiten"] = "ledoit-wolf"
    if json_out is not None and _up_to_date(json_out, settings, inputs, [scores_out, det_plot]):
        return
    trial_list = read_trials(trials)
    trial_list.check_both_classes(f"trial list {trials}")
    ids, X = read_embeddings(embeddings)
    mean = _reference(mean_from, "--mean-from", X.shape[1])
    if mean is not None:
        mean = mean.mean(axis=0)
    reference = _reference(whiten_from, "--whiten-from", X.shape[1])
    whitening = None if reference is None else Whitening.fit(reference)
    C = read_embeddings(cohort)[1] if cohort is not None else None
    scores = score_trials(
        (ids, X),
        trial_list,
        norm=norm,
        cohort=C,
        top_n=top_n,
        mean=mean,
        whitening=whitening,
        progress=show_progress(progress),
    )
    if scores_out is not None:
        write_scores(scores_out, trial_list, scores)
    metrics = _report(scores, trial_list.labels, p_targets, det_plot, as_json, str(trials))
    if json_out is not None:
        _write_json_out(json_out, metrics, settings, inputs)


@click.command()
@_trials_option
@click.option(
    "--scores",
    required=True,
    type=FILE,
    help="Score file of 'utt1 utt2 score' lines (any order; every trial needs a score).",
)
@_det_option
@_p_target_option
@_json_option
@json_out_option()
def eer(
    trials: Path,
    scores: Path,
    det_plot: Path | None,
    p_targets: tuple[float, ...],
    as_json: bool,
    json_out: Path | None,
) -> None:
    """EER and minDCF of precomputed scores against a trial list's labels.

    \b
    Example:
        dino-speech eer --trials data/test/trials --scores exp/scores/test.txt --json
    """
    from dino_speech.eval.trials import check_classes, read_scored_trials

    matched, labels = read_scored_trials(trials, scores)
    check_classes(labels, f"trial list {trials}")
    p_targets = p_targets or _P_TARGETS
    metrics = _report(matched, labels, p_targets, det_plot, as_json, str(trials))
    if json_out is not None:
        inputs = {"trials": trials, "scores": scores}
        _write_json_out(json_out, metrics, {"p_targets": p_targets}, inputs)


def _reference(path: Path | None, flag: str, dim: int) -> np.ndarray | None:
    """The embeddings of a reference set given with ``flag`` (None when not given), checked
    against the trial embeddings' dimension."""
    from dino_speech.embedding_io import read_embeddings
    from dino_speech.errors import DataError

    if path is None:
        return None
    _, M = read_embeddings(path)
    if M.shape[1] != dim:
        raise DataError(f"{flag} embeddings have dimension {M.shape[1]}, not {dim}")
    return M


def _up_to_date(
    path: Path, settings: dict, inputs: dict[str, Path | None], outputs: list[Path | None]
) -> bool:
    """Whether ``path`` holds this very result already (then say so, with its EER)."""
    from dino_speech.provenance import finished, request

    given = [v for v in inputs.values() if v is not None]
    wanted = [path, *(o for o in outputs if o is not None)]
    record = finished(path, request(settings, given), wanted)
    if record is None:
        return False
    click.echo(f"scores up to date: {path} (EER {record.get('eer', float('nan')):.3f}%)")
    return True


def _write_json_out(
    path: Path, metrics: dict, settings: dict, inputs: dict[str, Path | None]
) -> None:
    """The metrics, the input files (absolute paths) and what they were made from."""
    from dino_speech.provenance import request, write_record

    given = {k: v for k, v in inputs.items() if v is not None}
    files = {k: str(v.resolve()) for k, v in given.items()}
    write_record(path, request(settings, given.values()), **metrics, **files)


def _report(
    scores: np.ndarray,
    labels: np.ndarray,
    p_targets: tuple[float, ...],
    det_plot: Path | None,
    as_json: bool,
    name: str,
) -> dict:
    """Print the metrics (and the last line of JSON with ``as_json``); returns them with the
    EER threshold (``eer_threshold``, which ``verify --threshold-from`` reads)."""
    from dino_speech.eval.verification import operating_points

    points = operating_points(scores, labels)
    metrics = points.metrics(p_targets)
    eer_thr = points.eer()[1]
    click.echo(f"trials: {name} ({metrics['targets']} target, {metrics['nontargets']} non-target)")
    click.echo(f"EER: {metrics['eer']:.3f}% (threshold {eer_thr:.4f})")
    for p in p_targets:
        value, thr = points.min_dcf(p)
        click.echo(f"minDCF(p_target={p:g}): {value:.4f} (threshold {thr:.4f})")
    if det_plot is not None:
        from dino_speech.eval.det import plot_det

        plot_det((scores, labels), det_plot, title=f"DET: {Path(name).name}", p_target=p_targets[0])
        click.echo(f"DET curve: {det_plot}")
    if as_json:
        click.echo(json.dumps(metrics))
    return {**metrics, "eer_threshold": float(eer_thr)}
