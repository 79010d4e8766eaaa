"""The k-means + AHC chain by parts: what the whole chain gives, at sizes where it cannot run."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dino_speech.config import ClusterConfig
from dino_speech.errors import ConfigError, DataError
from dino_speech.pseudo_label import cluster_large
from dino_speech.pseudo_label import kmeans as kmeans_mod
from dino_speech.pseudo_label.cluster import ahc_cosine, cluster_embeddings
from dino_speech.pseudo_label.quality import cluster_quality
from dino_speech.vectors import l2_normalize

needs_faiss = pytest.mark.skipif(kmeans_mod._faiss() is None, reason="faiss not installed")


def speakers(n_spk, per_spk, dim=32, session=0.5, noise=0.8, sessions=4, seed=0):
    """Speaker directions + session offsets + utterance noise (the shape of the scale bench)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((n_spk, dim))
    offsets = session * rng.standard_normal((n_spk, sessions, dim))
    y = np.repeat(np.arange(n_spk), per_spk)
    s = rng.integers(0, sessions, y.size)
    X = means[y] + offsets[y, s] + noise * rng.standard_normal((y.size, dim))
    perm = rng.permutation(y.size)
    return X[perm].astype(np.float32), y[perm]


def same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_mean_similarity_ahc_is_cosine_ahc_on_unit_rows():
    X = l2_normalize(
        np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32), zero_rows="error"
    )
    for threshold in (0.1, 0.4, 0.7):
        assert same_partition(
            cluster_large.ahc_mean_similarity(X, threshold), ahc_cosine(X, threshold)
        )


def test_merge_by_parts_takes_one_dense_step_below_the_limit():
    X = l2_normalize(
        np.random.default_rng(1).standard_normal((200, 8)).astype(np.float32), zero_rows="error"
    )
    cfg = ClusterConfig(max_preclusters=200)
    assert same_partition(cluster_large.merge_by_parts(X, 0.3, cfg), ahc_cosine(X, 0.3))


def test_merge_by_parts_rejoins_what_the_cells_cut_apart():
    # 12 tight groups, cells that cut every group in half: level 0 leaves 24 halves, the level
    # above must merge each pair back
    rng = np.random.default_rng(2)
    centres = l2_normalize(rng.standard_normal((12, 16)).astype(np.float32), zero_rows="error")
    y = np.repeat(np.arange(12), 20)
    P = l2_normalize(
        centres[y] + 0.05 * rng.standard_normal((y.size, 16)).astype(np.float32), zero_rows="error"
    )
    cells = (np.arange(y.size) % 20 >= 10).astype(np.int64)  # two cells, half of each group
    cfg = ClusterConfig(max_preclusters=150)
    labels = cluster_large.merge_by_parts(P, 0.6, cfg, cells)
    assert same_partition(labels, y)


@needs_faiss
def test_by_parts_chain_matches_the_whole_chain():
    X, y = speakers(40, 50)
    whole = cluster_embeddings(X, ClusterConfig(ahc_threshold_mode="neighbours", min_size=4))
    cfg = ClusterConfig(ahc_threshold_mode="neighbours", min_size=4, max_preclusters=100)
    parts = cluster_embeddings(X, cfg)
    q_whole, q_parts = cluster_quality(whole, y), cluster_quality(parts, y)
    assert q_whole["purity"] > 0.95 and q_whole["nmi"] > 0.9
    assert q_parts["purity"] > 0.95 and q_parts["nmi"] > 0.9
    assert q_parts["coverage"] > 0.9


@needs_faiss
def test_pre_clusters_are_not_capped():
    X, _ = speakers(20, 40)
    Z = l2_normalize(X, zero_rows="error")
    cfg = ClusterConfig(max_preclusters=50)
    labels, centroids = cluster_large.precluster_ivf(Z, 4.0, cfg)
    # 800 / 4 = 200 pre-clusters asked for (the old chain stopped at max_preclusters = 50)
    assert 150 <= centroids.shape[0] <= 200
    assert labels.min() == 0 and labels.max() == centroids.shape[0] - 1


def test_without_faiss_the_chain_runs_in_cells(caplog):
    X, y = speakers(30, 40, noise=0.5)
    cfg = ClusterConfig(
        backend="sklearn",
        ahc_threshold_mode="neighbours",
        min_size=4,
        max_preclusters=60,
        cell_points=200,
    )
    with caplog.at_level(logging.WARNING):
        labels = cluster_embeddings(X, cfg)
    assert "without faiss" in caplog.text
    q = cluster_quality(labels, y)
    assert q["purity"] > 0.9 and q["coverage"] > 0.5


def test_a_filter_that_removes_most_utterances_warns(caplog):
    X, _ = speakers(10, 20)
    with caplog.at_level(logging.WARNING):
        labels = cluster_embeddings(
            X, ClusterConfig(min_size=8, max_size=50, oversize="drop", ahc_threshold=0.99)
        )
    assert (labels >= 0).mean() < 0.5
    assert "kept only" in caplog.text and "cluster.min_size=8" in caplog.text


def test_refinement_repairs_mixed_up_points():
    # Clusters as the approximate pre-clustering leaves them: the right speakers, a quarter
    # of the points in another speaker's cluster, each speaker in two fragments.
    X, y = speakers(30, 60, noise=0.6)
    Z = l2_normalize(X, zero_rows="error")
    rng = np.random.default_rng(3)
    fragment = y * 2 + rng.integers(0, 2, y.size)
    wrong = rng.random(y.size) < 0.25
    start = np.where(wrong, rng.integers(0, 60, y.size), fragment)
    assert cluster_quality(start, y)["purity"] < 0.8
    for backend in ("sklearn", "faiss") if kmeans_mod._faiss() else ("sklearn",):
        cfg = ClusterConfig(backend=backend, refine_iters=2, max_preclusters=20)
        labels = cluster_large.refine_by_means(Z, start, 0.6, cfg)
        q = cluster_quality(labels, y)
        assert q["purity"] > 0.98 and q["nmi"] > 0.97, backend
        assert q["clusters"] <= 36  # the fragments of a speaker were merged
    unrefined = cluster_large.refine_by_means(Z, start, 0.6, ClusterConfig(refine_iters=0))
    assert np.array_equal(unrefined, start)


def test_cluster_sums_and_nearest_rows(monkeypatch):
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((1000, 6)).astype(np.float32)
    labels = rng.integers(0, 37, 1000)
    expected = np.zeros((37, 6))
    np.add.at(expected, labels, Z.astype(np.float64))
    np.testing.assert_allclose(cluster_large.cluster_sums(Z, labels), expected, rtol=1e-12)
    M = rng.standard_normal((37, 6)).astype(np.float32)
    monkeypatch.setattr(cluster_large, "_BLOCK_ELEMENTS", 37 * 300)  # blocks of 300 rows
    for use_faiss in (False, True):
        nearest = cluster_large.nearest_rows(Z, M, use_faiss=use_faiss)
        assert np.array_equal(nearest, np.argmax(Z @ M.T, axis=1))


def test_sessions_are_clustered_by_their_means():
    # sessions whose utterances alone are too noisy to cluster well; their means are not
    rng = np.random.default_rng(5)
    n_spk, n_ses, per_ses, dim = 12, 6, 8, 16
    means = rng.standard_normal((n_spk, dim))
    spk = np.repeat(np.arange(n_spk), n_ses * per_ses)
    ses = np.repeat(np.arange(n_spk * n_ses), per_ses)
    X = (means[spk] + 1.5 * rng.standard_normal((spk.size, dim))).astype(np.float32)
    base = ClusterConfig(ahc_threshold_mode="neighbours", min_size=4, samples_per_cluster=2)
    alone = cluster_quality(cluster_embeddings(X, base), spk)
    cfg = ClusterConfig(**{**base.__dict__, "aggregate": "session"})
    labels = cluster_embeddings(X, cfg, sessions=[f"v{s}" for s in ses])
    together = cluster_quality(labels, spk)
    assert together["nmi"] > 0.95 and together["nmi"] > alone["nmi"] + 0.2
    for s in np.unique(ses):
        assert np.unique(labels[ses == s]).size == 1
    with pytest.raises(ConfigError, match="session"):
        cluster_embeddings(X, cfg)
    with pytest.raises(DataError, match="no session"):
        cluster_embeddings(X, cfg, sessions=[None] + ["v"] * (len(X) - 1))
