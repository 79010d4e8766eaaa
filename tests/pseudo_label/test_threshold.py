"""The data-driven AHC threshold: where nearest-neighbour and random-pair similarities cross."""

from __future__ import annotations

import numpy as np
import pytest

from dino_speech.config import ClusterConfig
from dino_speech.errors import DataError
from dino_speech.pseudo_label.cluster import cluster_embeddings, cluster_quality, merge_threshold
from dino_speech.pseudo_label.threshold import (
    nearest_neighbour_similarity,
    neighbour_threshold,
)


def speakers(n_spk: int, per: int, spread: float, dim: int = 32, seed: int = 0):
    """Unit vectors around ``n_spk`` random centres; ``spread`` is the within-speaker noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_spk, dim))
    labels = np.repeat(np.arange(n_spk), per)
    X = centres[labels] + spread * rng.standard_normal((labels.size, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32), labels


def test_nearest_neighbour_matches_brute_force() -> None:
    Z, _ = speakers(5, 7, 0.5)
    S = Z @ Z.T
    np.fill_diagonal(S, -np.inf)
    np.testing.assert_allclose(nearest_neighbour_similarity(Z, block=4), S.max(1), rtol=1e-6)


def test_threshold_separates_same_from_different_speakers() -> None:
    Z, labels = speakers(40, 10, 0.4)
    t = neighbour_threshold(Z)
    S = Z @ Z.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    # between the bulk of the different-speaker and the bulk of the same-speaker similarities
    assert np.quantile(S[~same], 0.99) < t < np.quantile(S[same & off], 0.5)


def test_threshold_follows_the_spread_of_the_data() -> None:
    tight = neighbour_threshold(speakers(40, 10, 0.3)[0])
    loose = neighbour_threshold(speakers(40, 10, 0.8)[0])
    assert loose < tight - 0.05


@pytest.mark.parametrize("spread", [0.4, 0.8])
def test_neighbours_mode_recovers_speakers_a_fixed_threshold_misses(spread: float) -> None:
    Z, labels = speakers(60, 12, spread, seed=1)
    base = {"method": "kmeans_ahc", "samples_per_cluster": 3.0, "min_size": 1, "max_size": None}
    auto = cluster_embeddings(Z, ClusterConfig(**base, ahc_threshold_mode="neighbours"))
    quality = cluster_quality(auto, labels.tolist())
    assert quality["nmi"] > 0.9 and quality["purity"] > 0.9
    # A fixed 0.9 suits neither spread as well.
    fixed = cluster_embeddings(Z, ClusterConfig(**base, ahc_threshold=0.9))
    assert cluster_quality(fixed, labels.tolist())["nmi"] < quality["nmi"]


def test_offset_and_fixed_mode() -> None:
    Z, _ = speakers(20, 6, 0.5)
    auto = merge_threshold(Z, ClusterConfig(ahc_threshold_mode="neighbours"))
    shifted = merge_threshold(
        Z, ClusterConfig(ahc_threshold_mode="neighbours", ahc_threshold_offset=0.05)
    )
    assert shifted == pytest.approx(auto + 0.05)
    assert merge_threshold(Z, ClusterConfig(ahc_threshold=0.42)) == 0.42


def test_too_few_points() -> None:
    with pytest.raises(DataError, match="at least 3"):
        neighbour_threshold(np.eye(2, dtype=np.float32))
