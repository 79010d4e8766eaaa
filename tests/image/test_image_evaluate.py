"""kNN, linear probe and collapse diagnostics on inputs whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dino_speech.image.evaluate import (
    collapse_diagnostics,
    effective_rank,
    evaluate_features,
    extract_features,
    knn_accuracy,
    linear_probe_accuracy,
)


def _clusters(n_per: int, dim: int, seed: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:4] * 5
    x = np.concatenate([c + spread * rng.standard_normal((n_per, dim)) for c in centres])
    return x, np.repeat(np.arange(4), n_per)


def test_knn_and_probe_on_separable_clusters() -> None:
    xtr, ytr = _clusters(30, 8, 0, 0.3)
    xte, yte = _clusters(10, 8, 1, 0.3)
    assert knn_accuracy(xtr, ytr, xte, yte, k=20) == 100.0
    assert knn_accuracy(xtr, ytr, xte, yte, k=500) == 100.0  # k capped at the train size
    assert linear_probe_accuracy(xtr, ytr, xte, yte) == 100.0


def test_knn_is_temperature_weighted_not_majority() -> None:
    # one very close neighbour of class 1 against four farther ones of class 0
    train = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.52], [0.5, 0.48], [0.5, 0.51]])
    labels = np.array([1, 0, 0, 0, 0])
    test = np.array([[1.0, 0.01]])
    assert knn_accuracy(train, labels, test, np.array([1]), k=5) == 100.0
    # with a huge temperature every vote weighs the same: majority wins
    assert knn_accuracy(train, labels, test, np.array([1]), k=5, temperature=1e6) == 0.0


def test_collapsed_features_have_rank_one_and_zero_std() -> None:
    x = np.tile(np.random.default_rng(0).standard_normal(16), (100, 1))
    d = collapse_diagnostics(x * np.random.default_rng(1).uniform(0.5, 2, (100, 1)))
    assert d["eff_rank"] == pytest.approx(1.0, abs=1e-6)
    assert d["std"] == pytest.approx(0.0, abs=1e-9)
    assert d["std_ref"] == pytest.approx(0.25)


def test_isotropic_gaussian_has_high_rank_and_reference_std() -> None:
    x = np.random.default_rng(0).standard_normal((4000, 32))
    d = collapse_diagnostics(x)
    assert d["eff_rank"] > 30
    assert d["std"] == pytest.approx(1 / math.sqrt(32), rel=0.05)
    assert d["offdiag_corr"] < 0.03
    assert d["dead_dims"] == 0


def test_correlated_and_dead_dimensions() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 1))
    x = np.concatenate([base, 2 * base + 0.01 * rng.standard_normal((500, 1)),
                        np.zeros((500, 1)), rng.standard_normal((500, 1))], axis=1)  # fmt: skip
    d = collapse_diagnostics(x)
    assert d["dead_dims"] == 1
    assert d["offdiag_corr"] > 0.3  # the first two dimensions are nearly one


def test_effective_rank_of_equal_singular_values() -> None:
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((50, 50)))
    assert effective_rank(q[:, :5] * 3.0) == pytest.approx(5.0, rel=1e-9)
    assert effective_rank(np.zeros((4, 4))) == 0.0


def test_extract_features_restores_mode_and_batches() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    net.train()
    images = torch.randn(10, 1, 2, 2)
    feats = extract_features(net, images, lambda b: b * 2, batch_size=3)
    assert feats.shape == (10, 3) and net.training
    net.eval()
    torch.testing.assert_close(torch.from_numpy(feats), net(images * 2).detach())


def test_evaluate_features_keys() -> None:
    xtr, ytr = _clusters(30, 8, 0, 1.0)
    xte, yte = _clusters(10, 8, 1, 1.0)
    out = evaluate_features(xtr, ytr, xte, yte)
    assert {"knn@20", "knn@200", "linear", "std", "eff_rank", "offdiag_corr"} <= set(out)
