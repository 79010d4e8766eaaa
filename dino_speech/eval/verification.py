"""Speaker verification: cosine scoring, score normalisation, EER and normalised minDCF.

Trial lists and score files are read by :mod:`dino_speech.eval.trials` (re-exported here).

Metrics are computed from the detection operating points, all obtained with ONE sort of the
scores (:func:`operating_points`): a trial is accepted when its score is ``>= t``, and ``t``
runs over every distinct score plus ``+inf`` (accept nothing). For each threshold

    P_miss(t) = #{targets with score < t} / #targets
    P_fa(t)   = #{non-targets with score >= t} / #non-targets

Tied scores move both rates at once, so no tie-breaking order is ever assumed. These are
exactly the points of ``sklearn.metrics.roc_curve(..., drop_intermediate=False)`` with
``P_miss = 1 - tpr`` and ``P_fa = fpr``.

EER: consecutive operating points are joined by straight segments (the ROC convention: a
segment is what randomised tie-breaking / threshold mixing between the two points achieves),
and the EER is where that polyline crosses ``P_miss = P_fa``. With points ordered by
decreasing threshold, ``i`` is the first point with ``P_miss_i <= P_fa_i``; writing
``d_j = P_miss_j - P_fa_j`` (so ``d_{i-1} > 0 >= d_i``), ``a = d_{i-1} / (d_{i-1} - d_i)`` and
``EER = P_fa_{i-1} + a (P_fa_i - P_fa_{i-1})`` (which equals the miss rate at that point).

minDCF (NIST SRE): ``DCF(t) = C_miss P_miss(t) p + C_fa P_fa(t) (1 - p)``, normalised by the
cost of the best trivial system ``min(C_miss p, C_fa (1 - p))`` and minimised over the same
thresholds (accept-all and reject-all included, so the value is at most 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dino_speech.embedding_io import as_table
from dino_speech.errors import DataError
from dino_speech.eval.trials import (
    Trials,
    check_classes,
    read_scores,
    read_trials,
    scores_for_trials,
    write_scores,
)
from dino_speech.eval.whitening import Whitening
from dino_speech.vectors import l2_normalize

__all__ = [
    "OperatingPoints",
    "Trials",
    "check_trial_ids",
    "compute_eer",
    "compute_min_dcf",
    "cosine_scores",
    "operating_points",
    "read_scores",
    "read_trials",
    "scores_for_trials",
    "score_trials",
    "verification_metrics",
    "write_scores",
]

# --------------------------------------------------------------------------- metrics


@dataclass
class OperatingPoints:
    """Detection operating points by decreasing threshold (``(K + 1,)`` arrays each).

    ``thresholds[0] = +inf`` (reject all: ``p_miss = 1``, ``p_fa = 0``); the last threshold is
    the lowest score (accept all: ``p_miss = 0``, ``p_fa = 1``).
    """

    thresholds: np.ndarray
    p_miss: np.ndarray
    p_fa: np.ndarray
    num_targets: int
    num_nontargets: int

    def eer(self) -> tuple[float, float]:
        """``(EER as a fraction, threshold)`` — the crossing described in the module docstring.

        The threshold is the lower score of the crossing segment, i.e. accepting ``>= thr``
        gives the operating point at or just past the crossing.
        """
        d = self.p_miss - self.p_fa  # d[0] = 1 > 0, d[-1] = -1 < 0: a crossing always exists
        i = int(np.argmax(d <= 0))
        a = d[i - 1] / (d[i - 1] - d[i])
        eer = self.p_fa[i - 1] + a * (self.p_fa[i] - self.p_fa[i - 1])
        return float(eer), float(self.thresholds[i])

    def min_dcf(
        self, p_target: float, c_miss: float = 1.0, c_fa: float = 1.0
    ) -> tuple[float, float]:
        """``(normalised minDCF, threshold attaining it)`` at prior ``p_target``."""
        if not 0.0 < p_target < 1.0:
            raise DataError(f"p_target must be in (0, 1), got {p_target}")
        dcf = c_miss * p_target * self.p_miss + c_fa * (1.0 - p_target) * self.p_fa
        i = int(np.argmin(dcf))
        c_def = min(c_miss * p_target, c_fa * (1.0 - p_target))
        return float(dcf[i] / c_def), float(self.thresholds[i])

    def metrics(self, p_targets: Sequence[float] = (0.01, 0.05)) -> dict:
        """The dict of :func:`verification_metrics`."""
        return {
            "eer": 100.0 * self.eer()[0],
            "min_dcf": {f"{p:g}": self.min_dcf(p)[0] for p in p_targets},
            "targets": self.num_targets,
            "nontargets": self.num_nontargets,
        }


def operating_points(
    scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[bool]
) -> OperatingPoints:
    """All operating points from one sort of the scores (see the module docstring).

    Args:
        scores: ``(N,)`` real scores, higher = more likely the same speaker.
        labels: ``(N,)`` bool (or 0/1), True for target trials.

    Raises:
        DataError: empty input, length mismatch, NaN/Inf scores, or only one class.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise DataError(f"{scores.size} scores but {labels.size} labels")
    check_classes(labels, "trial list")
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    n_tar = int(labels.sum())
    n_non = labels.size - n_tar
    order = np.argsort(scores)[::-1]  # decreasing score
    s = scores[order]
    tp = np.cumsum(labels[order], dtype=np.int64)
    # the last position of each run of equal scores is one threshold
    last = np.flatnonzero(s[1:] != s[:-1])
    last = np.append(last, s.size - 1)
    tp = tp[last]
    fp = last + 1 - tp
    p_miss = np.empty(last.size + 1)
    p_fa = np.empty(last.size + 1)
    p_miss[0], p_fa[0] = 1.0, 0.0
    p_miss[1:] = (n_tar - tp) / n_tar
    p_fa[1:] = fp / n_non
    thresholds = np.concatenate(([np.inf], s[last]))
    return OperatingPoints(thresholds, p_miss, p_fa, n_tar, n_non)


def compute_eer(scores: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[bool]) -> float:
    """Equal error rate in percent (crossing taken as in the module docstring)."""
    return 100.0 * operating_points(scores, labels).eer()[0]


def compute_min_dcf(
    scores: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[bool],
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost at ``p_target`` (NIST SRE definition)."""
    return operating_points(scores, labels).min_dcf(p_target, c_miss, c_fa)[0]


def verification_metrics(
    scores: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[bool],
    p_targets: Sequence[float] = (0.01, 0.05),
) -> dict:
    """EER (percent) and minDCF at each ``p_target`` from one sort.

    Returns:
        ``{"eer": float, "min_dcf": {"0.01": float, ...}, "targets": int, "nontargets": int}``
        (the JSON line of ``dino-speech score --json``; keys of ``min_dcf`` use ``%g``).
    """
    return operating_points(scores, labels).metrics(p_targets)


# --------------------------------------------------------------------------- scoring


def check_trial_ids(trials: Trials, known: Mapping[str, int], where: str = "embeddings") -> None:
    """Raise DataError naming how many trial utterances are not in ``known`` (and a few)."""
    missing = sorted({u for u in (*trials.enroll, *trials.test) if u not in known})
    if missing:
        hint = ""
        if any(u.endswith((".wav", ".flac")) for u in missing[:3]):
            hint = " (trial ids look like file names; embedding ids are utterance ids)"
        raise DataError(
            f"{len(missing)} utterances in the trial list have no embedding in {where} "
            f"(first: {', '.join(missing[:5])}){hint}"
        )


def cosine_scores(
    X: np.ndarray, enroll_idx: np.ndarray, test_idx: np.ndarray, chunk: int = 65536
) -> np.ndarray:
    """Row-wise dot products ``<X[e], X[t]>`` for index pairs; ``X`` must be length-normalised.

    ``X (N, D)``, ``enroll_idx``/``test_idx (M,)`` → ``(M,)`` float64, in chunks so memory
    stays at ``2 * chunk * D`` floats however many trials there are.
    """
    out = np.empty(len(enroll_idx), dtype=np.float64)
    for start in range(0, len(enroll_idx), chunk):
        sl = slice(start, start + chunk)
        out[sl] = np.einsum("ij,ij->i", X[enroll_idx[sl]], X[test_idx[sl]])
    return out


def score_trials(
    embeddings: Mapping[str, np.ndarray] | tuple[Sequence[str], np.ndarray],
    trials: Trials,
    *,
    norm: str = "none",
    cohort: np.ndarray | None = None,
    top_n: int | None = 300,
    mean: np.ndarray | None = None,
    whitening: Whitening | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Cosine scores of ``trials`` (``(N,)`` float64), optionally score-normalised.

    Args:
        embeddings: ``{id: vector}`` or ``(ids, X (N, D))``.
        trials: from :func:`read_trials`; every id must have an embedding. A path-like id of an
            official VoxCeleb list (``id10270/x6uYqmx31kE/00001.wav``) that is not an embedding
            id is looked up as ``id10270-x6uYqmx31kE-00001``, the id ``data_prep`` gives it.
        norm: ``"none"``, ``"snorm"`` (symmetric normalisation over the whole cohort) or
            ``"asnorm"`` (adaptive: statistics of the ``top_n`` highest cohort scores).
        cohort: ``(C, D)`` cohort embeddings, required by S-norm / AS-norm.
        top_n: cohort size for AS-norm (clipped to C).
        mean: ``(D,)`` vector subtracted from every embedding (and the cohort) before length
            normalisation, e.g. the mean of a training set (``--mean-from``).
        whitening: applied to every embedding (and the cohort) instead of ``mean``, e.g. one
            fitted on a training set (``--whiten-from``).
        progress: show a progress bar while scoring against the cohort.
    """
    from dino_speech.eval.score_norm import cohort_statistics, normalize_scores

    ids, X = as_table(embeddings)
    index = {u: i for i, u in enumerate(ids)}
    trials = _alias_path_ids(trials, index)
    check_trial_ids(trials, index)
    if mean is not None and whitening is not None:
        raise DataError("subtract a mean or whiten, not both (whitening centres already)")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float32).ravel()
        if mean.shape[0] != X.shape[1]:
            raise DataError(f"mean vector has dimension {mean.shape[0]}, embeddings {X.shape[1]}")
    # only the utterances the trials use are normalised and scored
    used = sorted({index[u] for u in (*trials.enroll, *trials.test)})
    remap = np.full(len(ids), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    U = _prepare(X[used], mean, whitening)
    e_idx = remap[np.fromiter((index[u] for u in trials.enroll), np.int64, len(trials))]
    t_idx = remap[np.fromiter((index[u] for u in trials.test), np.int64, len(trials))]
    scores = cosine_scores(U, e_idx, t_idx)
    if norm == "none":
        return scores
    if norm not in ("snorm", "asnorm"):
        raise DataError(f"unknown score normalisation '{norm}'; valid: none, snorm, asnorm")
    if cohort is None or len(cohort) == 0:
        raise DataError(f"{norm} needs cohort embeddings")
    cohort = np.asarray(cohort, dtype=np.float32)
    if cohort.ndim != 2 or cohort.shape[1] != X.shape[1]:
        raise DataError(
            f"cohort embeddings have shape {cohort.shape}, trials' dimension {X.shape[1]}"
        )
    mu, sigma = cohort_statistics(
        U,
        _prepare(cohort, mean, whitening),
        top_n if norm == "asnorm" else None,
        progress=progress,
    )
    return normalize_scores(scores, e_idx, t_idx, mu, sigma)


def _alias_path_ids(trials: Trials, known: Mapping[str, int]) -> Trials:
    """Trials with unknown ``a/b/c.wav`` ids replaced by ``a-b-c`` where that id is known."""
    alias: dict[str, str] = {}
    for u in {*trials.enroll, *trials.test}:
        if u not in known and "/" in u:
            candidate = "-".join(u.rsplit(".", 1)[0].split("/"))
            if candidate in known:
                alias[u] = candidate
    if not alias:
        return trials
    return Trials(
        [alias.get(u, u) for u in trials.enroll],
        [alias.get(u, u) for u in trials.test],
        trials.labels,
    )


def _prepare(X: np.ndarray, mean: np.ndarray | None, whitening: Whitening | None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if whitening is not None:
        X = whitening.apply(X)
    elif mean is not None:
        X = X - mean
    return l2_normalize(X, zero_rows="keep")
