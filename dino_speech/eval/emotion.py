"""Emotion recognition probe on frozen utterance embeddings.

A small classifier (standardise → logistic regression, or → one-hidden-layer MLP) is trained
on the embeddings of all folds but one and predicts the held-out fold, so every utterance gets
exactly one prediction from a model that never saw its group. Folds are speaker- (or
session-) independent when ``groups`` are given:

* ``folds="auto"`` with at most ``max_logo_groups`` distinct groups: leave one group out
  (IEMOCAP with ``utt2sess``: leave one session out, 5 folds);
* with more groups (e.g. CREMA-D's 91 speakers from ``utt2spk``): ``k = 5``
  ``StratifiedGroupKFold`` (speaker-disjoint folds with similar class balance);
* an integer ``folds = k``: leave-one-group-out if ``k`` equals the number of groups, else
  ``StratifiedGroupKFold(k)``;
* no groups: ``StratifiedKFold(5)`` — NOT speaker-independent, reported as such;
* ``test`` given: no cross-validation but the corpus's fixed split — train on the rows not
  in ``test``, predict the rows in ``test`` (MSP-Podcast: train on ``train``, test on
  ``test1``).

Metrics are computed on the pooled held-out predictions (with a fixed split: the test rows).
Micro-F1 (the paper's metric) pools every decision; for single-label multiclass data it equals
accuracy. Macro-F1 averages the per-class F1; UAR is the mean per-class recall.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dino_speech.errors import DataError

__all__ = [
    "CLASSIFIERS",
    "align_labels",
    "evaluate_emotion",
    "evaluate_labelled",
    "fixed_split",
    "make_folds",
    "plot_confusion",
]

logger = logging.getLogger(__name__)

CLASSIFIERS = ("logreg", "mlp")


def evaluate_emotion(
    X: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[str] | None = None,
    classifier: str = "logreg",
    *,
    folds: int | str = "auto",
    max_logo_groups: int = 10,
    seed: int = 0,
    progress: bool = False,
    test: Sequence[bool] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Cross-validated emotion probe, or one fixed train/test split.

    Args:
        X: ``(N, D)`` embeddings.
        labels: N emotion labels (strings).
        groups: N group ids (session or speaker) for group-disjoint folds, or None.
        classifier: ``"logreg"`` or ``"mlp"``.
        folds: ``"auto"`` or a number of folds (see the module docstring).
        max_logo_groups: with ``folds="auto"``, leave-one-group-out up to this many groups.
        seed: seeds fold shuffling and the MLP.
        progress: show a progress bar over folds.
        test: N booleans marking a fixed test set (then ``groups`` and ``folds`` must be left
            at their defaults): the probe is trained once on the other rows.

    Returns:
        ``micro_f1``, ``macro_f1``, ``uar`` (percent), ``per_class_recall`` ({class: percent}),
        ``classes``, ``confusion`` (rows = true class, columns = predicted, counts),
        ``folds`` (k; 1 for a fixed split), ``scheme`` (how folds were made),
        ``fold_micro_f1`` (per fold, percent), ``num_utterances`` (evaluated ones),
        ``num_train`` (fixed split only), ``predictions`` (the predicted labels of the evaluated
        rows, in row order: all N, or the test rows).
    """
    from sklearn.metrics import confusion_matrix, f1_score, recall_score

    if classifier not in CLASSIFIERS:
        raise DataError(f"unknown classifier '{classifier}'; valid: {', '.join(CLASSIFIERS)}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray([str(v) for v in labels])
    if X.ndim != 2 or X.shape[0] != y.size:
        raise DataError(f"{X.shape[0] if X.ndim else 0} embeddings but {y.size} labels")
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise DataError(f"emotion probe needs at least 2 classes, got {classes}")
    fixed = test is not None
    if not fixed:
        splits, scheme = make_folds(y, groups, folds, max_logo_groups=max_logo_groups, seed=seed)
        evaluated = np.arange(y.size)
    else:
        splits, scheme = fixed_split(test, y, groups, folds)
        evaluated = splits[0][1]
    predictions = np.empty(y.size, dtype=object)
    fold_acc = []
    for train_idx, test_idx in tqdm(
        splits, desc=f"emotion probe ({classifier})", disable=not progress
    ):
        model = _make_classifier(classifier, seed)
        if np.unique(y[train_idx]).size < 2:
            raise DataError("a training fold holds a single emotion class; use fewer folds")
        model.fit(X[train_idx], y[train_idx])
        predictions[test_idx] = model.predict(X[test_idx])
        fold_acc.append(100.0 * float(np.mean(predictions[test_idx] == y[test_idx])))
    pred = predictions[evaluated].astype(str)
    y = y[evaluated]
    # per-class figures over the classes that are evaluated (a fixed test set may lack some)
    scored = sorted(set(y.tolist()))
    recall = recall_score(y, pred, labels=scored, average=None, zero_division=0)
    extra = {"num_train": int(splits[0][0].size)} if fixed else {}
    return {
        "micro_f1": 100.0 * float(f1_score(y, pred, labels=classes, average="micro")),
        "macro_f1": 100.0
        * float(f1_score(y, pred, labels=scored, average="macro", zero_division=0)),
        "uar": 100.0 * float(np.mean(recall)),
        "per_class_recall": {c: 100.0 * float(r) for c, r in zip(scored, recall, strict=True)},
        "classes": classes,
        "confusion": confusion_matrix(y, pred, labels=classes).tolist(),
        "folds": len(splits),
        "scheme": scheme,
        "fold_micro_f1": fold_acc,
        "num_utterances": int(y.size),
        **extra,
        "predictions": pred.tolist(),
    }


def fixed_split(
    test: Sequence[bool] | np.ndarray,
    y: np.ndarray,
    groups: Sequence[str] | None = None,
    folds: int | str = "auto",
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The one ``(train_idx, test_idx)`` split of a fixed test set, and its description."""
    mask = np.asarray(test, dtype=bool)
    if mask.shape != y.shape:
        raise DataError(f"{y.size} labels but {mask.size} test flags")
    if groups is not None or folds != "auto":
        raise DataError("a fixed train/test split takes no groups and no number of folds")
    train_idx, test_idx = np.flatnonzero(~mask), np.flatnonzero(mask)
    if train_idx.size == 0 or test_idx.size == 0:
        raise DataError(
            f"a fixed split needs utterances on both sides, got {train_idx.size} train "
            f"and {test_idx.size} test"
        )
    unseen = sorted(set(y[test_idx].tolist()) - set(y[train_idx].tolist()))
    if unseen:
        logger.warning("test classes never seen in training: %s", ", ".join(unseen))
    scheme = f"fixed split ({train_idx.size} train, {test_idx.size} test utterances)"
    return [(train_idx, test_idx)], scheme


def make_folds(
    y: np.ndarray,
    groups: Sequence[str] | None,
    folds: int | str = "auto",
    *,
    max_logo_groups: int = 10,
    seed: int = 0,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """``([(train_idx, test_idx), ...], description)`` as described in the module docstring."""
    from sklearn.model_selection import LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

    if folds != "auto" and (not isinstance(folds, int) or folds < 2):
        raise DataError(f"folds must be 'auto' or an integer >= 2, got {folds!r}")
    dummy = np.zeros((y.size, 1))
    if groups is None:
        k = 5 if folds == "auto" else int(folds)
        smallest = min(np.unique(y, return_counts=True)[1])
        if smallest < k:
            raise DataError(
                f"the rarest emotion class has {smallest} utterances, fewer than {k} folds"
            )
        logger.warning("no groups given: folds are stratified but NOT speaker-independent")
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
        return list(splitter.split(dummy, y)), f"stratified {k}-fold (not speaker-independent)"
    g = np.asarray([str(v) for v in groups])
    if g.size != y.size:
        raise DataError(f"{y.size} labels but {g.size} group ids")
    num_groups = np.unique(g).size
    if num_groups < 2:
        raise DataError("group-disjoint folds need at least 2 groups (sessions or speakers)")
    k = (num_groups if num_groups <= max_logo_groups else 5) if folds == "auto" else int(folds)
    if k > num_groups:
        raise DataError(f"{k} folds requested but only {num_groups} groups")
    if k == num_groups:
        return list(LeaveOneGroupOut().split(dummy, y, g)), f"leave-one-group-out ({k} groups)"
    splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    return list(
        splitter.split(dummy, y, g)
    ), f"group-disjoint stratified {k}-fold ({num_groups} groups)"


def evaluate_labelled(
    ids: Sequence[str],
    X: np.ndarray,
    labels: Mapping[str, str],
    *,
    groups: Mapping[str, str] | None = None,
    test_labels: Mapping[str, str] | None = None,
    classifier: str = "logreg",
    folds: int | str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate_emotion` on the labelled utterances of the embeddings ``(ids, X (N, D))``.

    Args:
        labels: ``{utt: emotion}`` of the utterances to use (the training set when
            ``test_labels`` is given); other embeddings are ignored.
        groups: ``{utt: session or speaker}`` for group-disjoint folds.
        test_labels: ``{utt: emotion}`` of a fixed test set, disjoint from ``labels``: the probe
            is trained once on ``labels`` and tested on these (no ``groups``, ``folds``).

    Returns:
        :func:`evaluate_emotion`'s dict plus ``utterances`` (the ids of the evaluated rows, in the
        order of ``predictions``) and ``truth`` (their labels).
    """
    test_set: set[str] = set()
    if test_labels is not None:
        both = sorted(set(labels) & set(test_labels))
        if both:
            raise DataError(
                f"{len(both)} utterances are both training and test utterances "
                f"(first: {', '.join(both[:5])})"
            )
        labels = {**labels, **test_labels}
        test_set = set(test_labels)
    X_lab, y, g, utts = align_labels(ids, X, labels, groups)
    test = [u in test_set for u in utts] if test_labels is not None else None
    result = evaluate_emotion(
        X_lab, y, g, classifier, folds=folds, seed=seed, progress=progress, test=test
    )
    if test is not None:
        utts = [u for u in utts if u in test_set]
    result["utterances"] = utts
    result["truth"] = [labels[u] for u in utts]
    return result


def align_labels(
    ids: Sequence[str],
    X: np.ndarray,
    labels: Mapping[str, str],
    groups: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, list[str], list[str] | None, list[str]]:
    """Rows of ``X`` for the labelled utterances: ``(X_lab, labels, groups, utt_ids)``.

    Embeddings without a label are ignored (logged); a labelled utterance without an embedding,
    or without a group when groups are given, is an error naming how many and the first few.
    """
    index = {u: i for i, u in enumerate(ids)}
    utts = list(labels)
    missing = [u for u in utts if u not in index]
    if missing:
        raise DataError(
            f"{len(missing)} of {len(utts)} labelled utterances have no embedding "
            f"(first: {', '.join(missing[:5])})"
        )
    if groups is not None:
        no_group = [u for u in utts if u not in groups]
        if no_group:
            raise DataError(
                f"{len(no_group)} labelled utterances have no group "
                f"(first: {', '.join(no_group[:5])})"
            )
    unused = len(ids) - len(utts)
    if unused:
        logger.info("%d embeddings have no emotion label and are not used", unused)
    rows = np.fromiter((index[u] for u in utts), np.int64, len(utts))
    group_list = [groups[u] for u in utts] if groups is not None else None
    return X[rows], [labels[u] for u in utts], group_list, utts


def plot_confusion(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, *, title: str = ""
) -> Path:
    """Confusion matrix PNG: cells coloured by row-normalised recall, annotated with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=np.float64)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.6 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    try:
        im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}\n{100 * rates[i, j]:.0f}%",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black",
                )
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title or "emotion confusion matrix")
        fig.colorbar(im, ax=ax, fraction=0.046, label="recall")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def _make_classifier(name: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logreg":
        head = LogisticRegression(max_iter=2000, C=1.0)
    elif name == "mlp":
        head = MLPClassifier(
            hidden_layer_sizes=(256,),
            alpha=1e-3,
            early_stopping=True,
            max_iter=300,
            random_state=seed,
        )
    else:
        raise DataError(f"unknown classifier '{name}'; valid: {', '.join(CLASSIFIERS)}")
    return make_pipeline(StandardScaler(), head)
