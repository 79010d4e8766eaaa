"""Whitening of length-normalised embeddings, learnt without labels, before cosine scoring.

An encoder's embedding can put most of its variance into a few directions that every
utterance shares (on 2,000 read-speech utterances the DINO teacher's 128 dimensions have an
effective rank of ~14), and hand-made statistics such as ``logmel-stats`` have dimensions of
very different scales. Whitening with the mean and covariance of unlabelled embeddings (the
training set) gives every direction the same weight in the cosine. The covariance is shrunk
towards a multiple of the identity by the Ledoit-Wolf rule (:class:`sklearn.covariance.LedoitWolf`),
so the amount of shrinkage comes from the data, not from a setting tuned on trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dino_speech.errors import DataError
from dino_speech.vectors import l2_normalize

__all__ = ["Whitening"]


@dataclass(frozen=True)
class Whitening:
    """``x -> (x / |x| - mean) @ matrix``: ``mean (D,)``, ``matrix (D, D)``."""

    mean: np.ndarray
    matrix: np.ndarray
    shrinkage: float

    @classmethod
    def fit(cls, X: np.ndarray) -> Whitening:
        """Learn it from ``X (N, D)`` embeddings (rows length-normalised first); ``N > D``
        is not required, the shrinkage keeps the covariance invertible."""
        from sklearn.covariance import LedoitWolf

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 2:
            raise DataError(f"whitening needs at least 2 embeddings, got shape {X.shape}")
        U = l2_normalize(X, zero_rows="keep")
        est = LedoitWolf().fit(U)
        eigval, eigvec = np.linalg.eigh(est.covariance_)
        floor = max(float(eigval.max()) * 1e-9, np.finfo(np.float64).tiny)
        matrix = eigvec / np.sqrt(np.maximum(eigval, floor))
        mean = est.location_.astype(np.float32)
        return cls(mean, matrix.astype(np.float32), float(est.shrinkage_))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """``X (N, D)`` -> whitened ``(N, D)`` float32 (not length-normalised again)."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise DataError(
                f"embeddings of shape {X.shape} do not match a whitening of dimension "
                f"{self.mean.shape[0]}"
            )
        return (l2_normalize(X, zero_rows="keep") - self.mean) @ self.matrix
