"""Frozen-feature evaluation: kNN and linear-probe accuracy, and collapse diagnostics.

* kNN (Wu et al., 2018, as used by DINO and solo-learn): cosine similarity between
  L2-normalised features; each of the ``k`` nearest training images votes for its class with
  weight ``exp(sim / T)``, ``T = 0.07`` (temperature-weighted, not majority).
* Linear probe: multinomial logistic regression (scikit-learn, L-BFGS) on standardised frozen
  features, trained on the train split and scored on the test split.
* Collapse diagnostics, on the L2-normalised features ``Z`` (N, D):
  - ``std``: mean over dimensions of the per-dimension std of ``Z``. Complete collapse gives 0;
    features spread evenly on the sphere give about ``1/sqrt(D)`` (``std_ref``) (Chen & He 2021).
  - ``eff_rank``: ``exp(H(p))`` with ``p_k = s_k / sum s`` the normalised singular values of
    ``Z`` (uncentred; Roy & Vetterli 2007, RankMe). One direction -> 1; isotropic -> close to D.
  - ``offdiag_corr``: mean ``|corr_ij|``, ``i != j``, of the Pearson correlation between feature
    dimensions (dimensions with zero variance excluded and counted in ``dead_dims``): the
    decorrelation view of Liu et al., NeurIPS 2022 (*Bridging the Gap from Asymmetry Tricks to
    Decorrelation Principles in Non-contrastive SSL*).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from dino_speech.train.monitor import effective_rank as core_effective_rank

KNN_TEMPERATURE = 0.07


@torch.inference_mode()
def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Features ``(N, D)`` float32 of ``images`` (N, C, H, W) with ``encoder`` in eval mode.

    ``prepare`` maps a raw batch to the encoder's input (float conversion and normalisation).
    The encoder's train/eval mode is restored afterwards.
    """
    was_training = encoder.training
    encoder.eval()
    chunks = []
    try:
        for start in range(0, len(images), batch_size):
            batch = prepare(images[start : start + batch_size]).to(device)
            chunks.append(encoder(batch).float().cpu())
    finally:
        encoder.train(was_training)
    return torch.cat(chunks).numpy()


def knn_accuracy(
    train_f: np.ndarray,
    train_y: np.ndarray,
    test_f: np.ndarray,
    test_y: np.ndarray,
    k: int = 20,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
) -> float:
    """Temperature-weighted cosine kNN accuracy (percent). Shapes ``(N, D)``, ``(N,)``."""
    train = torch.nn.functional.normalize(torch.as_tensor(train_f, dtype=torch.float32), dim=1)
    test = torch.nn.functional.normalize(torch.as_tensor(test_f, dtype=torch.float32), dim=1)
    ytr = torch.as_tensor(train_y, dtype=torch.long)
    yte = torch.as_tensor(test_y, dtype=torch.long)
    num_classes = num_classes or int(max(ytr.max(), yte.max())) + 1
    k = min(k, len(train))
    correct = 0
    for start in range(0, len(test), 1024):
        sims = test[start : start + 1024] @ train.T
        top_sim, top_idx = sims.topk(k, dim=1)
        votes = torch.zeros(len(top_sim), num_classes)
        votes.scatter_add_(1, ytr[top_idx], (top_sim / temperature).exp())
        correct += int((votes.argmax(1) == yte[start : start + 1024]).sum())
    return 100.0 * correct / len(test)


def linear_probe_accuracy(
    train_f: np.ndarray,
    train_y: np.ndarray,
    test_f: np.ndarray,
    test_y: np.ndarray,
    *,
    c: float = 1.0,
    max_iter: int = 1000,
) -> float:
    """Logistic-regression accuracy (percent) on standardised frozen features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
    probe.fit(train_f, train_y)
    return 100.0 * float(probe.score(test_f, test_y))


def effective_rank(x: np.ndarray) -> float:
    """The core's :func:`~dino_speech.train.monitor.effective_rank` of the rows of ``x``
    (N, D) as given (uncentred, RankMe), in float64; 0.0 when ``x`` is all zeros."""
    return core_effective_rank(torch.tensor(np.asarray(x, dtype=np.float64)), center=False)


def collapse_diagnostics(features: np.ndarray) -> dict[str, float]:
    """``std``, ``std_ref``, ``eff_rank``, ``offdiag_corr``, ``dead_dims`` of features (N, D)."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    z = x / np.maximum(norms, 1e-12)
    dim = z.shape[1]
    std = z.std(axis=0)
    alive = std > 1e-8 * max(float(std.max()), 1e-30)
    if alive.sum() >= 2:
        corr = np.corrcoef(z[:, alive], rowvar=False)
        off = np.abs(corr[~np.eye(len(corr), dtype=bool)])
        offdiag = float(off.mean())
    else:
        offdiag = float("nan")
    return {
        "std": float(std.mean()),
        "std_ref": 1.0 / math.sqrt(dim),
        "eff_rank": effective_rank(z),
        "offdiag_corr": offdiag,
        "dead_dims": int(dim - alive.sum()),
        "dim": dim,
    }


def evaluate_features(
    train_f: np.ndarray,
    train_y: np.ndarray,
    test_f: np.ndarray,
    test_y: np.ndarray,
    *,
    ks: tuple[int, ...] = (20, 200),
    probe: bool = True,
) -> dict[str, float]:
    """All metrics for one set of frozen features: ``knn@k`` per k, ``linear``, diagnostics.

    Diagnostics are computed on the test features.
    """
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    out: dict[str, float] = {}
    for k in ks:
        out[f"knn@{k}"] = knn_accuracy(train_f, train_y, test_f, test_y, k=k)
    if probe:
        out["linear"] = linear_probe_accuracy(train_f, train_y, test_f, test_y)
    out.update(collapse_diagnostics(test_f))
    return out
