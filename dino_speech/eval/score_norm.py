"""Score normalisation against a cohort: S-norm and adaptive S-norm (AS-norm).

For each utterance ``u`` of a trial, its cosine scores against the cohort give a mean
``mu_u`` and a standard deviation ``sigma_u`` — over the whole cohort (S-norm) or over its
``top_n`` highest scores only (AS-norm, Matejka et al. 2017, in the per-utterance form most
toolkits use). A raw score ``s(e, t)`` becomes

    0.5 * ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t).

The cohort is scored in blocks of utterances, so memory stays bounded (``block * C`` floats)
for any number of trial utterances and cohort size.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

__all__ = ["cohort_statistics", "normalize_scores"]

_BLOCK_FLOATS = 32 * 1024 * 1024  # 128 MiB of float32 per block of cohort scores


def cohort_statistics(
    U: np.ndarray, cohort: np.ndarray, top_n: int | None = None, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each utterance's cohort scores.

    Args:
        U: ``(N, D)`` length-normalised utterance embeddings.
        cohort: ``(C, D)`` length-normalised cohort embeddings.
        top_n: use only the ``top_n`` highest scores of each row (AS-norm); ``None`` = all.

    Returns:
        ``(mu (N,), sigma (N,))`` float64; ``sigma`` is floored at 1e-6.
    """
    C = cohort.shape[0]
    k = C if top_n is None else max(1, min(int(top_n), C))
    block = max(1, _BLOCK_FLOATS // max(C, 1))
    mu = np.empty(U.shape[0])
    sigma = np.empty(U.shape[0])
    starts = range(0, U.shape[0], block)
    bar = tqdm(starts, desc="cohort scores", unit="block", disable=not progress or len(starts) < 2)
    for start in bar:
        S = U[start : start + block] @ cohort.T  # (b, C)
        if k < C:
            S = np.partition(S, C - k, axis=1)[:, C - k :]
        S = S.astype(np.float64)
        mu[start : start + block] = S.mean(axis=1)
        sigma[start : start + block] = S.std(axis=1)
    return mu, np.maximum(sigma, 1e-6)


def normalize_scores(
    scores: np.ndarray,
    enroll_idx: np.ndarray,
    test_idx: np.ndarray,
    mu: np.ndarray,
    sigma: np.ndarray,
) -> np.ndarray:
    """Symmetric normalisation of ``scores (M,)`` with per-utterance ``mu``/``sigma``.

    ``enroll_idx``/``test_idx (M,)`` index the rows of ``mu`` and ``sigma``.
    """
    z_enroll = (scores - mu[enroll_idx]) / sigma[enroll_idx]
    z_test = (scores - mu[test_idx]) / sigma[test_idx]
    return 0.5 * (z_enroll + z_test)
