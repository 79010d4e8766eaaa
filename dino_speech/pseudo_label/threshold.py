"""A merge threshold for cosine AHC read off the embeddings themselves.

A fixed threshold (hyperion's 0.8, or 0.9) fits one model: a DINO model after a few thousand
CPU steps, the same model after pseudo-labeling, and a VoxCeleb model spread their
similarities over quite different ranges. Without labels, two proxies stand in for the target
and non-target score distributions of a verification test:

- the similarity of each point to its **nearest neighbour**, which is nearly always the same
  speaker once there are several points per speaker (a k-means over-clustering's centroids,
  or the utterances themselves);
- the similarity of **random pairs**, which are nearly always different speakers once there
  are more than a handful of speakers.

The threshold is where the two proxies cross like an EER: the fraction of nearest-neighbour
similarities below it equals the fraction of random-pair similarities above it. It needs
``O(N · block)`` memory, never ``N × N``.
"""

from __future__ import annotations

import numpy as np

from dino_speech.errors import DataError

__all__ = ["neighbour_threshold", "nearest_neighbour_similarity"]


def nearest_neighbour_similarity(Z: np.ndarray, *, block: int = 1024) -> np.ndarray:
    """Cosine similarity of every row of ``Z`` ``(N, D)`` (L2-normalised) to its nearest other
    row, in blocks of ``block`` rows. Returns ``(N,)`` float32."""
    n = Z.shape[0]
    if n < 2:
        raise DataError(f"need at least 2 points for nearest neighbours, got {n}")
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        S = Z[rows] @ Z.T  # (b, N)
        b = S.shape[0]
        S[np.arange(b), start + np.arange(b)] = -np.inf
        out[rows] = S.max(axis=1)
    return out


def neighbour_threshold(
    Z: np.ndarray, *, num_pairs: int = 200_000, seed: int = 0, block: int = 1024
) -> float:
    """The cosine threshold at which nearest-neighbour and random-pair similarities cross.

    Args:
        Z: ``(N, D)`` L2-normalised points (N >= 3).
        num_pairs: random pairs of distinct points drawn for the non-target proxy.
        seed: of the pair draw.
        block: rows per block of the nearest-neighbour search.

    Returns:
        ``t`` with ``P(nn < t) ≈ P(random >= t)``.
    """
    n = Z.shape[0]
    if n < 3:
        raise DataError(f"need at least 3 points to estimate a threshold, got {n}")
    nn = np.sort(nearest_neighbour_similarity(Z, block=block))
    rng = np.random.default_rng(seed)
    i = rng.integers(n, size=num_pairs)
    j = rng.integers(n - 1, size=num_pairs)
    j += j >= i  # a partner other than i, uniformly
    rand = np.sort(np.einsum("ij,ij->i", Z[i], Z[j], dtype=np.float64).astype(np.float32))
    candidates = np.concatenate([nn, rand])
    miss = np.searchsorted(nn, candidates, side="left") / nn.size  # nn below t
    false_alarm = 1.0 - np.searchsorted(rand, candidates, side="left") / rand.size  # rand >= t
    return float(candidates[np.argmin(np.abs(miss - false_alarm))])
