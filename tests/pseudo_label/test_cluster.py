from __future__ import annotations

import numpy as np
import pytest

from dino_speech.config import ClusterConfig
from dino_speech.errors import ConfigError, DataError
from dino_speech.pseudo_label import kmeans as kmeans_mod
from dino_speech.pseudo_label.cluster import (
    ahc_cosine,
    cluster_embeddings,
    cluster_quality,
    filter_cluster_sizes,
)
from dino_speech.pseudo_label.kmeans import kmeans, resolve_backend

BACKENDS = [
    "sklearn",
    pytest.param(
        "faiss",
        marks=pytest.mark.skipif(kmeans_mod._faiss() is None, reason="faiss not installed"),
    ),
]


def mixture(sizes, dim=32, spread=0.25, seed=0):
    """Unit-norm speaker means in random directions, utterances around them."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((len(sizes), dim))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    y = np.repeat(np.arange(len(sizes)), sizes)
    noise = rng.standard_normal((len(y), dim)) * spread / np.sqrt(dim)
    X = (means[y] + noise).astype(np.float32)
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chain_recovers_well_separated_speakers(backend):
    X, y = mixture([20] * 30)
    labels = cluster_embeddings(X, ClusterConfig(backend=backend))
    q = cluster_quality(labels, y)
    assert q["nmi"] > 0.99 and q["purity"] > 0.99
    assert q["clusters"] == 30 and q["coverage"] == 1.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_kmeans_with_the_true_count(backend):
    X, y = mixture([25] * 12, spread=0.2)
    cfg = ClusterConfig(
        method="kmeans",
        num_clusters=12,
        backend=backend,
        min_size=1,
        max_size=None,
        kmeans_init="kmeans++",
    )
    labels = cluster_embeddings(X, cfg)
    assert cluster_quality(labels, y)["nmi"] > 0.95


def test_whitening_first_recovers_speakers_under_a_dominant_shared_nuisance():
    # Speakers in 16 directions of small spread; every utterance also carries a large
    # nuisance in 4 other directions that all speakers share (the few dominant directions of
    # a DINO embedding). Plain cosine clustering follows the nuisance; whitened, it does not.
    X, y = mixture([20] * 20, dim=16, spread=0.25)
    rng = np.random.default_rng(1)
    nuisance = rng.standard_normal((len(y), 4)) * 2.0
    Z = np.concatenate([0.3 * X, nuisance], axis=1).astype(np.float32)
    cfg = dict(ahc_threshold_mode="neighbours", min_size=5, max_size=60)
    plain = cluster_quality(cluster_embeddings(Z, ClusterConfig(**cfg)), y)
    white = cluster_quality(cluster_embeddings(Z, ClusterConfig(whiten=True, **cfg)), y)
    assert plain["nmi"] < 0.5 and white["nmi"] > 0.8, (plain, white)


def test_ahc_on_points_matches_the_chain():
    X, y = mixture([15] * 10)
    labels = cluster_embeddings(X, ClusterConfig(method="ahc"))
    q = cluster_quality(labels, y)
    assert q["nmi"] > 0.99 and q["clusters"] == 10


def test_ahc_on_points_refuses_too_many_points():
    X, _ = mixture([30] * 4)
    with pytest.raises(ConfigError, match="kmeans_ahc"):
        cluster_embeddings(X, ClusterConfig(method="ahc", max_preclusters=100))


@pytest.mark.parametrize("oversize,large_kept", [("drop", 0), ("subsample", 50), ("keep", 80)])
def test_size_filter_in_the_chain(oversize, large_kept):
    sizes = [3, 10, 30, 80, 20]
    X, y = mixture(sizes, spread=0.2)
    cfg = ClusterConfig(min_size=8, max_size=50, oversize=oversize)
    labels = cluster_embeddings(X, cfg)
    assert (labels[y == 0] == -1).all()  # 3 utterances: too small
    assert (labels[y == 3] >= 0).sum() == large_kept
    for spk in (1, 2, 4):  # in bounds: kept whole, each in one cluster
        assert (labels[y == spk] >= 0).all() and np.unique(labels[y == spk]).size == 1
    kept_sizes = np.bincount(labels[labels >= 0])
    if oversize != "keep":
        assert kept_sizes.min() >= 8 and kept_sizes.max() <= 50
    assert sorted(np.unique(labels[labels >= 0])) == list(range(kept_sizes.size))


def test_filter_cluster_sizes_exact():
    labels = np.array([5, 5, 5, 2, 2, -1, 7, 7, 7, 7, 7])
    assert filter_cluster_sizes(labels, 2, 4).tolist() == [1, 1, 1, 0, 0, -1, -1, -1, -1, -1, -1]
    out = filter_cluster_sizes(labels, 3, 4, oversize="subsample", seed=1)
    assert out[:6].tolist() == [0, 0, 0, -1, -1, -1]
    assert (out[6:] == 1).sum() == 4 and (out[6:] == -1).sum() == 1
    assert filter_cluster_sizes(labels, 1, None).tolist() == [1, 1, 1, 0, 0, -1, 2, 2, 2, 2, 2]
    with pytest.raises(ConfigError):
        filter_cluster_sizes(labels, 5, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_for_a_seed(backend):
    # Overlapping clusters, so that the result does depend on the initialisation.
    X, _ = mixture([40] * 8, spread=2.0, seed=3)
    cfg = ClusterConfig(
        method="kmeans", num_clusters=20, backend=backend, min_size=1, max_size=None, seed=7
    )
    first = cluster_embeddings(X, cfg)
    assert np.array_equal(first, cluster_embeddings(X, cfg))
    results = {
        cluster_embeddings(X, ClusterConfig(**{**vars(cfg), "seed": s})).tobytes() for s in range(4)
    }
    assert len(results) > 1


@pytest.mark.skipif(kmeans_mod._faiss() is None, reason="faiss not installed")
@pytest.mark.parametrize("spherical", [False, True])
def test_faiss_stepping_equals_one_faiss_call(spherical):
    import faiss

    X, _ = mixture([50] * 6, spread=1.5)
    if spherical:
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    ours = kmeans(X, 9, backend="faiss", spherical=spherical, niter=7, seed=5)
    ref = faiss.Kmeans(
        X.shape[1], 9, niter=7, seed=5, spherical=spherical, min_points_per_centroid=1
    )
    ref.train(X)
    np.testing.assert_allclose(ours.centroids, ref.centroids, atol=1e-6)
    assert np.array_equal(ours.labels, ref.assign(X)[1])
    if spherical:
        np.testing.assert_allclose(np.linalg.norm(ours.centroids, axis=1), 1.0, atol=1e-5)


@pytest.mark.skipif(kmeans_mod._faiss() is None, reason="faiss not installed")
def test_faiss_early_stop():
    import faiss

    X, _ = mixture([50] * 6, spread=1.5)
    # The objective never changes by more than 100%: tol=1 stops after the second iteration.
    ours = kmeans(X, 9, backend="faiss", niter=10, seed=5, tol=1.0)
    ref = faiss.Kmeans(X.shape[1], 9, niter=2, seed=5, min_points_per_centroid=1)
    ref.train(X)
    np.testing.assert_allclose(ours.centroids, ref.centroids, atol=1e-6)
    with pytest.raises(ConfigError, match="tol"):
        kmeans(X, 9, backend="faiss", tol=-1.0)


def test_missing_faiss_is_loud(monkeypatch):
    monkeypatch.setattr(kmeans_mod, "_faiss", lambda: None)
    with pytest.raises(ConfigError, match="faiss-cpu"):
        resolve_backend("faiss")
    assert resolve_backend("auto") == "sklearn"
    X, y = mixture([20] * 5)
    labels = cluster_embeddings(X, ClusterConfig(backend="auto"))
    assert cluster_quality(labels, y)["nmi"] > 0.99
    with pytest.raises(ConfigError, match="unknown k-means backend"):
        resolve_backend("cuml")


def test_sklearn_minibatch_path():
    X, y = mixture([40] * 10, spread=0.2)
    res = kmeans(
        X,
        10,
        backend="sklearn",
        algorithm="minibatch",
        batch_size=64,
        init="kmeans++",
        spherical=True,
        seed=0,
    )
    assert cluster_quality(res.labels, y)["nmi"] > 0.95
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, atol=1e-5)


def test_ahc_threshold_is_a_cosine_similarity():
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.9, np.sqrt(1 - 0.81), 0.0])  # cos(a, b) = 0.9
    c = np.array([0.0, 0.0, 1.0])
    X = np.stack([a, b, c]).astype(np.float32)
    labels = ahc_cosine(X, threshold=0.8)
    assert labels[0] == labels[1] != labels[2]
    assert np.unique(ahc_cosine(X, threshold=0.95)).size == 3
    assert ahc_cosine(X[:1], 0.8).tolist() == [0]


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.zeros((0, 4), np.float32), "empty"),
        (np.ones(8, np.float32), "2-D"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), "NaN or Inf"),
        (np.array([[1.0, np.inf], [1.0, 2.0]]), "NaN or Inf"),
        (np.array([["a", "b"]]), "numeric"),
        (np.array([[0.0, 0.0], [1.0, 2.0]]), "all zeros"),
        (np.ones((10, 4), np.float32), "identical"),
    ],
)
def test_bad_input_is_a_data_error(bad, message):
    with pytest.raises(DataError, match=message):
        cluster_embeddings(bad, ClusterConfig(backend="sklearn"))


@pytest.mark.parametrize(
    "cfg,message",
    [
        (ClusterConfig(method="kmeans"), "num_clusters is required"),
        (ClusterConfig(method="kmeans", num_clusters=500), "num_clusters=500"),
        (ClusterConfig(pca_variance=1.5), "pca_variance"),
        (ClusterConfig(min_size=10, max_size=5), "max_size"),
        (ClusterConfig(ahc_threshold=2.0), "ahc_threshold"),
    ],
)
def test_bad_config_is_a_config_error(cfg, message):
    X, _ = mixture([10] * 4)
    with pytest.raises(ConfigError, match=message):
        cluster_embeddings(X, cfg)


def test_small_input_and_no_pca():
    X, y = mixture([3, 3])
    labels = cluster_embeddings(X, ClusterConfig(pca_variance=None, min_size=1))
    assert labels.shape == (6,) and labels.dtype == np.int64
    assert cluster_quality(labels, y)["nmi"] == pytest.approx(1.0)
    one = cluster_embeddings(X[:1], ClusterConfig(min_size=1))
    assert one.tolist() == [0]
