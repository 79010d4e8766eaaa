"""How well pseudo-labels match the true speakers: NMI, purity, cluster count, coverage.

Clustering leaves some utterances out (label -1). The scores below are computed over the kept
utterances only, and ``coverage`` says what fraction that is, so a clustering cannot look good
by throwing most of the data away without it showing in the summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from dino_speech.errors import DataError

__all__ = ["cluster_quality", "format_quality"]


def cluster_quality(pred: np.ndarray | Sequence[int], true: np.ndarray | Sequence[Any]) -> dict:
    """Compare predicted clusters with the true classes (speakers).

    Args:
        pred: ``(N,)`` integer cluster labels, ``-1`` for utterances left out.
        true: ``(N,)`` true labels of the same utterances (strings or integers).

    Returns:
        ``{"nmi", "purity", "clusters", "coverage", "kept", "utterances", "speakers"}``: NMI
        (arithmetic normalisation) and purity over the kept utterances (NaN when none is
        kept), the number of predicted clusters, the fraction and number of utterances kept,
        ``N``, and the number of distinct true labels over all ``N`` utterances.
    """
    pred_arr = np.asarray(pred)
    if pred_arr.ndim != 1:
        raise DataError(f"predicted labels must be 1-D, got shape {pred_arr.shape}")
    if pred_arr.size and not np.issubdtype(pred_arr.dtype, np.integer):
        raise DataError(f"predicted labels must be integers, got dtype {pred_arr.dtype}")
    true_codes = _encode(true)
    if len(true_codes) != len(pred_arr):
        raise DataError(
            f"{len(pred_arr)} predicted labels but {len(true_codes)} true labels; "
            "they must describe the same utterances"
        )
    if len(pred_arr) == 0:
        raise DataError("no utterances to score the clustering on")
    if pred_arr.min() < -1:
        raise DataError(f"predicted labels must be >= -1 (-1: left out), got {pred_arr.min()}")

    kept = pred_arr >= 0
    n_kept = int(kept.sum())
    result: dict[str, float | int] = {
        "nmi": math.nan,
        "purity": math.nan,
        "clusters": int(np.unique(pred_arr[kept]).size),
        "coverage": n_kept / len(pred_arr),
        "kept": n_kept,
        "utterances": len(pred_arr),
        "speakers": int(np.unique(true_codes).size),
    }
    if n_kept:
        p, t = pred_arr[kept], true_codes[kept]
        result["nmi"] = float(normalized_mutual_info_score(t, p))
        table = contingency_matrix(p, t, sparse=True)
        result["purity"] = float(table.max(axis=1).sum() / n_kept)
    return result


def format_quality(quality: dict) -> str:
    """One log line from :func:`cluster_quality`'s result."""
    return (
        f"clusters {quality['clusters']} | kept {quality['kept']}/{quality['utterances']} "
        f"({100 * quality['coverage']:.1f}%) | NMI {quality['nmi']:.4f} "
        f"| purity {quality['purity']:.4f} | true speakers {quality['speakers']}"
    )


def _encode(labels: np.ndarray | Sequence[Any]) -> np.ndarray:
    """``(N,)`` integer codes for arbitrary hashable labels; ``None`` is refused."""
    arr = np.asarray(labels, dtype=object) if not isinstance(labels, np.ndarray) else labels
    if arr.ndim != 1:
        raise DataError(f"true labels must be 1-D, got shape {arr.shape}")
    if arr.dtype != object:
        return np.unique(arr, return_inverse=True)[1].reshape(-1)
    codes: dict[Any, int] = {}
    out = np.empty(len(arr), dtype=np.int64)
    for i, label in enumerate(arr):
        if label is None:
            raise DataError(f"true label of utterance #{i} is missing (None)")
        out[i] = codes.setdefault(label, len(codes))
    return out
