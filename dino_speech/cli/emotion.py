"""``dino-speech eval-emotion``: emotion recognition probe on frozen embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dino_speech.cli.options import (
    FILE,
    embeddings_option,
    json_option,
    json_out_option,
    progress_option,
    show_progress,
)


def _folds(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    if value == "auto":
        return value
    try:
        k = int(value)
    except ValueError:
        raise click.BadParameter("expected 'auto' or an integer >= 2") from None
    if k < 2:
        raise click.BadParameter("expected 'auto' or an integer >= 2")
    return k


@click.command("eval-emotion")
@embeddings_option("Embeddings of the labelled utterances")
@click.option(
    "--labels",
    required=True,
    type=FILE,
    multiple=True,
    help="'utt emotion' lines (utt2emo); only these utterances are used. Repeatable "
    "(e.g. the train and test parts' lists).",
)
@click.option(
    "--groups",
    type=FILE,
    multiple=True,
    help="'utt group' lines for group-disjoint folds: utt2sess (IEMOCAP, leave one "
    "session out) or utt2spk (speaker-independent folds). Without it folds are "
    "stratified but not speaker-independent. Repeatable like --labels.",
)
@click.option(
    "--test-labels",
    type=FILE,
    default=None,
    help="'utt emotion' lines of a fixed test set: no cross-validation; the probe is "
    "trained once on the --labels utterances and tested on these (MSP-Podcast: "
    "--labels train/utt2emo --test-labels test1/utt2emo). Not with --groups or --folds.",
)
@click.option(
    "--classes",
    default=None,
    metavar="A,B,...",
    help="Use only the utterances labelled with one of these classes (comma- or "
    "space-separated), in --labels and --test-labels alike.  [default: every class]",
)
@click.option(
    "--classifier",
    type=click.Choice(["logreg", "mlp"]),
    default="logreg",
    show_default=True,
    help="Probe: standardise, then logistic regression or an MLP "
    "with one hidden layer of 256 units.",
)
@click.option(
    "--folds",
    default="auto",
    show_default=True,
    metavar="auto|K",
    callback=_folds,
    help="'auto': leave-one-group-out with at most 10 groups, else 5 group-disjoint "
    "stratified folds; or a number of folds.",
)
@click.option(
    "--confusion-plot",
    type=FILE,
    default=None,
    help="Write the confusion matrix (counts and row-normalised recall) to this PNG.",
)
@click.option(
    "--predictions-out",
    type=FILE,
    default=None,
    help="Write 'utt true predicted' lines (held-out predictions) to this file.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of fold shuffling and the MLP."
)
@json_option('{"micro_f1": <percent>, "macro_f1": <percent>, "folds": k}')
@json_out_option()
@progress_option()
def eval_emotion(
    embeddings: Path,
    labels: tuple[Path, ...],
    groups: tuple[Path, ...],
    test_labels: Path | None,
    classes: str | None,
    classifier: str,
    folds: int | str,
    confusion_plot: Path | None,
    predictions_out: Path | None,
    seed: int,
    as_json: bool,
    json_out: Path | None,
    progress: bool | None,
) -> None:
    """Emotion probe on frozen embeddings, cross-validated (or on a fixed split):
    micro-F1 (= accuracy for single-label classes, the paper's metric), macro-F1, UAR and
    per-class recall of the held-out predictions.

    \b
    Example (IEMOCAP, leave one session out):
        dino-speech eval-emotion --embeddings exp/emb/iemocap/xvector.scp \\
            --labels data/iemocap/all/utt2emo --groups data/iemocap/all/utt2sess --json

    \b
    Example (MSP-Podcast, official split):
        dino-speech eval-emotion --embeddings exp/emb/msp/xvector.scp \\
            --labels data/msp/train/utt2emo --test-labels data/msp/test1/utt2emo --json
    """
    from dino_speech.data.manifests import read_kaldi_list
    from dino_speech.embedding_io import read_embeddings
    from dino_speech.eval.emotion import evaluate_labelled, plot_confusion
    from dino_speech.provenance import finished, request, write_record

    if test_labels is not None and (groups or folds != "auto"):
        raise click.UsageError(
            "--test-labels (a fixed split) cannot be combined with --groups or --folds"
        )
    inputs = [embeddings, *labels, *groups, *([test_labels] if test_labels else [])]
    keep = sorted(set(classes.replace(",", " ").split())) if classes else None
    settings = {"classifier": classifier, "folds": folds, "seed": seed, "classes": keep}
    outputs = [p for p in (json_out, confusion_plot, predictions_out) if p is not None]
    done = finished(json_out, request(settings, inputs), outputs) if json_out else None
    if done is not None:
        micro = done.get("micro_f1", float("nan"))
        click.echo(f"emotion probe up to date: {json_out} (micro-F1 {micro:.2f}%)")
        return
    ids, X = read_embeddings(embeddings)
    result = evaluate_labelled(
        ids,
        X,
        _only(_merged(labels), keep),
        groups=_merged(groups) if groups else None,
        test_labels=_only(read_kaldi_list(test_labels), keep) if test_labels else None,
        classifier=classifier,
        folds=folds,
        seed=seed,
        progress=show_progress(progress),
    )
    click.echo(
        f"utterances: {result['num_utterances']}, classes: {len(result['classes'])}, "
        f"folds: {result['scheme']}"
    )
    click.echo(f"micro-F1 (accuracy): {result['micro_f1']:.2f}%")
    click.echo(f"macro-F1: {result['macro_f1']:.2f}%   UAR: {result['uar']:.2f}%")
    per_fold = ", ".join(f"{v:.1f}" for v in result["fold_micro_f1"])
    click.echo(f"per-fold micro-F1: {per_fold}")
    click.echo(
        "per-class recall: "
        + ", ".join(f"{c} {r:.1f}%" for c, r in result["per_class_recall"].items())
    )
    if confusion_plot is not None:
        plot_confusion(
            result["confusion"],
            result["classes"],
            confusion_plot,
            title=f"{classifier} probe, {result['scheme']}",
        )
        click.echo(f"confusion matrix: {confusion_plot}")
    if predictions_out is not None:
        predictions_out.parent.mkdir(parents=True, exist_ok=True)
        predictions_out.write_text(
            "".join(
                f"{u} {t} {p}\n"
                for u, t, p in zip(
                    result["utterances"], result["truth"], result["predictions"], strict=True
                )
            ),
            encoding="utf-8",
        )
    if json_out is not None:
        write_record(
            json_out,
            request(settings, inputs),
            **{k: result[k] for k in ("micro_f1", "macro_f1", "uar", "folds", "scheme")},
            classes=list(result["classes"]),
            classifier=classifier,
            utterances=result["num_utterances"],
            embeddings=str(embeddings.resolve()),
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "micro_f1": result["micro_f1"],
                    "macro_f1": result["macro_f1"],
                    "folds": result["folds"],
                }
            )
        )


def _merged(paths: tuple[Path, ...]) -> dict[str, str]:
    """The Kaldi lists ``paths`` as one mapping (keys in sorted order when there are several,
    so the folds do not depend on the order of the options); a key in two is an error."""
    from dino_speech.data.manifests import read_kaldi_list
    from dino_speech.errors import DataError

    merged: dict[str, str] = {}
    for path in paths:
        part = read_kaldi_list(path)
        twice = next((k for k in part if k in merged), None)
        if twice is not None:
            raise DataError(f"{twice} is in more than one of {', '.join(map(str, paths))}")
        merged.update(part)
    return merged if len(paths) == 1 else dict(sorted(merged.items()))


def _only(labels: dict[str, str], classes: list[str] | None) -> dict[str, str]:
    """``labels`` restricted to ``classes`` (all of them for None)."""
    if classes is None:
        return labels
    kept = {u: c for u, c in labels.items() if c in classes}
    if not kept:
        from dino_speech.errors import DataError

        raise DataError(f"no utterance is labelled with any of --classes {','.join(classes)}")
    return kept
