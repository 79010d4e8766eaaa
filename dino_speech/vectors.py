"""Row-wise vector operations that scoring and clustering share."""

from __future__ import annotations

from typing import Literal

import numpy as np

from dino_speech.errors import DataError

__all__ = ["l2_normalize"]


def l2_normalize(X: np.ndarray, *, zero_rows: Literal["keep", "error"]) -> np.ndarray:
    """Rows of ``X (N, D)`` scaled to unit length.

    ``zero_rows``: what an all-zero row (whose direction is undefined) becomes. ``"keep"``: it
    stays zero, so its cosine with anything is 0 (scoring: a silent utterance is scored, not
    refused); the dtype of ``X`` is kept. ``"error"``: a :class:`DataError` naming the first
    such row (clustering: a zero vector would join whichever cluster sorts first); the result
    is float32.
    """
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if zero_rows == "keep":
        return X / np.maximum(norms, 1e-12)
    if zero_rows != "error":
        raise ValueError(f"zero_rows must be 'keep' or 'error', got {zero_rows!r}")
    zero = norms[:, 0] == 0
    if zero.any():
        raise DataError(
            f"{int(zero.sum())} embeddings are all zeros (first: row {np.flatnonzero(zero)[0]}); "
            "cosine clustering needs non-zero vectors"
        )
    return (X / norms).astype(np.float32, copy=False)
