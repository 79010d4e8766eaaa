"""Embeddings -> pseudo-speaker labels: k-means, cosine AHC, and the hyperion ``ssl.v1`` chain.

Pure functions on numpy arrays, no I/O. Every entry point takes ``(N, D)`` embeddings and
returns ``(N,)`` int64 labels where ``-1`` marks an utterance left out.

The chain (:func:`cluster_embeddings` with ``method="kmeans_ahc"``), after hyperion ``ssl.v1``:

1. L2-normalise (with ``whiten``: whiten with the data's own mean and shrunk covariance and
   L2-normalise again), PCA keeping 99% of the variance (which also centres the data),
   L2-normalise again, so that the geometry is cosine;
2. spherical k-means over-clustering into ``ceil(N / samples_per_cluster)`` clusters (faiss
   when installed, scikit-learn otherwise);
3. agglomerative clustering of the k-means centroids on cosine, merging while the linkage
   similarity is above the threshold (fixed, or read off the centroids' own similarities:
   :mod:`dino_speech.pseudo_label.threshold`); every utterance takes its centroid's merged
   label. The pairwise matrix is over centroids, not utterances; above ``max_preclusters``
   pre-clusters both steps run in cells (:mod:`dino_speech.pseudo_label.cluster_large`), so
   nothing of size N x k or k x k is built at any N;
4. clusters outside ``[min_size, max_size]`` are left out (``oversize`` picks what happens to
   clusters above ``max_size``: dropped, cut to a random subset, or kept).

Results are deterministic for a given seed, backend and thread count.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.decomposition import PCA

from dino_speech.config import ClusterConfig
from dino_speech.errors import ConfigError, DataError
from dino_speech.eval.whitening import Whitening
from dino_speech.pseudo_label import cluster_large
from dino_speech.pseudo_label.kmeans import (
    kmeans,
    resolve_backend,
    validate_embeddings,
)
from dino_speech.pseudo_label.quality import cluster_quality, format_quality
from dino_speech.pseudo_label.threshold import neighbour_threshold
from dino_speech.vectors import l2_normalize

__all__ = [
    "ahc_cosine",
    "cluster_embeddings",
    "cluster_quality",
    "filter_cluster_sizes",
    "format_quality",
    "merge_threshold",
    "pca_reduce",
    "session_means",
]

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- building blocks


def pca_reduce(X: np.ndarray, variance: float, seed: int = 0) -> np.ndarray:
    """Centre ``X`` ``(N, D)`` and project it on the fewest principal axes that keep
    ``variance`` (in (0, 1)) of its variance; returns ``(N, D')`` float32."""
    if not 0.0 < variance < 1.0:
        raise ConfigError(f"PCA variance must be in (0, 1), got {variance}")
    if X.shape[0] < 2:
        return X
    if float(X.var(axis=0).sum()) == 0.0:
        raise DataError("all embeddings are identical (a collapsed model?); nothing to cluster")
    pca = PCA(n_components=variance, svd_solver="covariance_eigh", random_state=seed)
    out = pca.fit_transform(X).astype(np.float32, copy=False)
    logger.info(
        "PCA: kept %d of %d dimensions (%.1f%% variance)",
        out.shape[1],
        X.shape[1],
        100 * float(pca.explained_variance_ratio_.sum()),
    )
    return np.ascontiguousarray(out)


def ahc_cosine(
    X: np.ndarray, threshold: float, linkage: Literal["average", "complete", "single"] = "average"
) -> np.ndarray:
    """Agglomerative clustering of ``X`` ``(n, D)`` on cosine similarity.

    Clusters are merged while their linkage similarity (1 - cosine distance) is above
    ``threshold``. Needs ``n (n - 1) / 2`` float64 distances in memory. Returns ``(n,)``
    int64 labels.
    """
    X = validate_embeddings(X)
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"AHC cosine threshold must be in [-1, 1], got {threshold}")
    if linkage not in ("average", "complete", "single"):
        raise ConfigError(f"unknown AHC linkage '{linkage}'; valid: average, complete, single")
    if X.shape[0] == 1:
        return np.zeros(1, dtype=np.int64)
    l2_normalize(X, zero_rows="error")  # refuses zero vectors, whose cosine is undefined
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage=linkage, distance_threshold=1.0 - threshold
    )
    return model.fit_predict(X).astype(np.int64)


def filter_cluster_sizes(
    labels: np.ndarray,
    min_size: int = 1,
    max_size: int | None = None,
    oversize: Literal["drop", "subsample", "keep"] = "drop",
    seed: int = 0,
) -> np.ndarray:
    """Leave out (-1) clusters smaller than ``min_size``; clusters above ``max_size`` are
    dropped, cut to a random ``max_size`` subset, or kept, per ``oversize``. The kept
    clusters are renumbered ``0..C-1`` in the order of their old labels. ``(N,) -> (N,)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {labels.shape}")
    if oversize not in ("drop", "subsample", "keep"):
        raise ConfigError(f"unknown oversize policy '{oversize}'; valid: drop, subsample, keep")
    if max_size is not None and max_size < min_size:
        raise ConfigError(f"cluster max_size ({max_size}) is below min_size ({min_size})")
    out = np.full(labels.shape, -1, dtype=np.int64)
    ids, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    by_cluster = np.argsort(inverse.reshape(-1), kind="stable")  # members of j are contiguous
    ends = np.cumsum(sizes)
    rng = np.random.default_rng(seed)
    new_id = 0
    for j, (old, size) in enumerate(zip(ids, sizes, strict=True)):
        if old < 0 or size < min_size:
            continue
        members = by_cluster[ends[j] - size : ends[j]]
        if max_size is not None and size > max_size:
            if oversize == "drop":
                continue
            if oversize == "subsample":
                members = np.sort(rng.choice(members, size=max_size, replace=False))
        out[members] = new_id
        new_id += 1
    return out


# --------------------------------------------------------------------------- the entry point


def cluster_embeddings(
    X: np.ndarray,
    cfg: ClusterConfig | None = None,
    *,
    sessions: Sequence[object] | np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pseudo-speaker labels for embeddings ``X`` ``(N, D)``; ``(N,)`` int64, -1 = left out.

    See the module docstring for the ``kmeans_ahc`` chain; ``cfg.method`` may also be
    ``kmeans`` or ``ahc``. The preprocessing (L2 / PCA) and the size filter apply to all.
    ``sessions`` ``(N,)``: each utterance's session, required with ``cfg.aggregate ==
    "session"`` (the sessions' mean embeddings are clustered, every utterance takes its
    session's label; the size filter still counts utterances).
    """
    cfg = cfg or ClusterConfig()
    X = validate_embeddings(X)
    _check_config(cfg)
    started = time.perf_counter()
    utterances = X.shape[0]
    session_of = None
    if cfg.aggregate == "session":
        X, session_of = session_means(X, sessions)
        logger.info("clustering %d sessions of %d utterances", X.shape[0], utterances)
    n = X.shape[0]

    Z = _preprocess(X, cfg)
    if cfg.method == "ahc":
        if n > cfg.max_preclusters:
            raise ConfigError(
                f"method=ahc on {n} embeddings needs {_pairwise_gb(n):.1f} GB of distances; "
                f"use method=kmeans_ahc, or raise cluster.max_preclusters ({cfg.max_preclusters})"
            )
        labels = ahc_cosine(Z, merge_threshold(Z, cfg), cfg.ahc_linkage)
    else:
        if cfg.method == "kmeans":
            if cfg.num_clusters is None:
                raise ConfigError("cluster.num_clusters is required with method=kmeans")
            k = cfg.num_clusters
        else:
            k = min(cfg.num_clusters or math.ceil(n / cfg.samples_per_cluster), n)
        if k > n:
            raise ConfigError(f"cluster.num_clusters={k} is more than the {n} embeddings")
        if cfg.method == "kmeans_ahc" and k > cfg.max_preclusters:
            labels = _kmeans_ahc_by_parts(Z, n / k, cfg, progress)
        else:
            labels = _kmeans_ahc_whole(Z, k, cfg, progress)

    if session_of is not None:
        labels = labels[session_of]
        n = utterances
    before = np.unique(labels).size
    sizes = np.bincount(labels[labels >= 0])
    labels = filter_cluster_sizes(labels, cfg.min_size, cfg.max_size, cfg.oversize, cfg.seed)
    kept = labels >= 0
    if kept.mean() < 0.5:
        small = int(sizes[sizes < cfg.min_size].sum())
        large = 0 if cfg.max_size is None else int(sizes[sizes > cfg.max_size].sum())
        logger.warning(
            "clustering kept only %d of %d utterances (%.1f%%): %d are in clusters below "
            "cluster.min_size=%d, %d in clusters above cluster.max_size=%s (oversize: %s)",
            int(kept.sum()),
            n,
            100 * kept.mean(),
            small,
            cfg.min_size,
            large,
            cfg.max_size,
            cfg.oversize,
        )
    logger.info(
        "clustering (%s): %d clusters of size [%s, %s] kept of %d; %d/%d utterances (%.1f%%) "
        "in %.1f s",
        cfg.method,
        np.unique(labels[kept]).size,
        cfg.min_size,
        cfg.max_size,
        before,
        int(kept.sum()),
        n,
        100 * kept.mean(),
        time.perf_counter() - started,
    )
    return labels


def session_means(
    X: np.ndarray, sessions: Sequence[object] | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The mean of each session's L2-normalised rows of ``X`` ``(N, D)``: ``(S, D)`` float32
    and the session of every row ``(N,)`` (``0..S-1``)."""
    if sessions is None:
        raise ConfigError(
            "cluster.aggregate=session needs each utterance's session: custom['session'] "
            "(cluster.session_key) in the cuts, or --utt2session"
        )
    keys = np.asarray([str(s) if s is not None else "" for s in sessions])
    if keys.shape != (X.shape[0],):
        raise DataError(f"{keys.size} session labels for {X.shape[0]} embeddings")
    missing = int((keys == "").sum())
    if missing:
        raise DataError(
            f"cluster.aggregate=session: {missing} of {keys.size} utterances have no session"
        )
    _, session_of = np.unique(keys, return_inverse=True)
    session_of = session_of.reshape(-1)
    Z = l2_normalize(X.astype(np.float32, copy=False), zero_rows="error")
    sums = np.zeros((int(session_of.max()) + 1, X.shape[1]), dtype=np.float64)
    np.add.at(sums, session_of, Z)
    means = sums / np.bincount(session_of)[:, None]
    return means.astype(np.float32), session_of.astype(np.int64)


def _kmeans_ahc_whole(Z: np.ndarray, k: int, cfg: ClusterConfig, progress: bool) -> np.ndarray:
    """k-means over all points; for kmeans_ahc one dense AHC of the centroids."""
    result = kmeans(
        Z,
        k,
        backend=cfg.backend,
        spherical=cfg.l2_normalize,
        niter=cfg.kmeans_iters,
        init=cfg.kmeans_init,
        seed=cfg.seed,
        tol=cfg.kmeans_tol,
        algorithm=cfg.sklearn_algorithm,
        batch_size=cfg.minibatch_size,
        progress=progress,
    )
    labels = result.labels
    if cfg.method != "kmeans_ahc":
        return labels
    used = np.unique(labels)  # k-means can leave a centroid without points
    centroids = result.centroids[used]
    threshold = merge_threshold(centroids, cfg)
    merged = ahc_cosine(centroids, threshold, cfg.ahc_linkage)
    lookup = np.full(k, -1, dtype=np.int64)
    lookup[used] = merged
    logger.info(
        "AHC (cosine > %.3f, %s): %d centroids -> %d clusters",
        threshold,
        cfg.ahc_linkage,
        used.size,
        np.unique(merged).size,
    )
    return lookup[labels]


def _kmeans_ahc_by_parts(
    Z: np.ndarray, per_cluster: float, cfg: ClusterConfig, progress: bool
) -> np.ndarray:
    """The same chain in cells (:mod:`dino_speech.pseudo_label.cluster_large`)."""
    if resolve_backend(cfg.backend) == "faiss":
        pre, centroids = cluster_large.precluster_ivf(Z, per_cluster, cfg, progress=progress)
    else:
        logger.warning(
            "k-means of %d points into %d pre-clusters without faiss: k-means in cells instead "
            "(less pure at this size; pip install faiss-cpu)",
            Z.shape[0],
            round(Z.shape[0] / per_cluster),
        )
        pre, centroids, _ = cluster_large.precluster_in_cells(
            Z, per_cluster, cfg, progress=progress
        )
    cells = cluster_large.centroid_cells(centroids, cfg)
    # the threshold from whole random cells (a centroid's nearest neighbours are in its own
    # cell, so their similarities are those of the whole set), as many as one dense step takes
    sizes = np.bincount(cells)
    order = np.random.default_rng(cfg.seed).permutation(sizes.size)
    chosen = order[np.cumsum(sizes[order]) <= max(cfg.max_preclusters, sizes.max())]
    threshold = merge_threshold(centroids[np.isin(cells, chosen)], cfg)
    merged = cluster_large.merge_by_parts(centroids, threshold, cfg, cells, progress=progress)
    logger.info(
        "AHC by parts (cosine > %.3f, %s): %d centroids -> %d clusters",
        threshold,
        cfg.ahc_linkage,
        centroids.shape[0],
        np.unique(merged).size,
    )
    return cluster_large.refine_by_means(Z, merged[pre], threshold, cfg, progress=progress)


def merge_threshold(points: np.ndarray, cfg: ClusterConfig) -> float:
    """The AHC threshold for ``points`` ``(n, D)``: ``cfg.ahc_threshold``, or with
    ``ahc_threshold_mode="neighbours"`` the one the points' own similarities give
    (:func:`~dino_speech.pseudo_label.threshold.neighbour_threshold`) plus the offset."""
    if cfg.ahc_threshold_mode == "fixed" or points.shape[0] < 3:
        return cfg.ahc_threshold
    Z = l2_normalize(points, zero_rows="error")
    estimate = neighbour_threshold(Z, seed=cfg.seed)
    threshold = float(np.clip(estimate + cfg.ahc_threshold_offset, -1.0, 1.0))
    logger.info(
        "AHC threshold from the data: %.3f (nearest-neighbour / random-pair crossing %.3f%+.3f)",
        threshold,
        estimate,
        cfg.ahc_threshold_offset,
    )
    return threshold


def _preprocess(X: np.ndarray, cfg: ClusterConfig) -> np.ndarray:
    Z = l2_normalize(X, zero_rows="error") if cfg.l2_normalize else X
    if cfg.whiten:
        Z = Whitening.fit(Z).apply(Z)
        if cfg.l2_normalize:
            Z = l2_normalize(Z, zero_rows="error")
    if cfg.pca_variance is not None:
        Z = pca_reduce(Z, cfg.pca_variance, cfg.seed)
        if cfg.l2_normalize:
            Z = l2_normalize(Z, zero_rows="error")
    return Z


def _check_config(cfg: ClusterConfig) -> None:
    if cfg.method not in ("kmeans_ahc", "kmeans", "ahc"):
        raise ConfigError(
            f"unknown clustering method '{cfg.method}'; valid: kmeans_ahc, kmeans, ahc"
            + (
                " (oracle takes the true speakers: it runs in the pseudo-label loop)"
                if cfg.method == "oracle"
                else ""
            )
        )
    if cfg.ahc_threshold_mode not in ("fixed", "neighbours"):
        raise ConfigError(
            f"unknown cluster.ahc_threshold_mode '{cfg.ahc_threshold_mode}'; valid: fixed, "
            "neighbours"
        )
    if cfg.pca_variance is not None and not 0.0 < cfg.pca_variance < 1.0:
        raise ConfigError(f"cluster.pca_variance must be in (0, 1) or null, got {cfg.pca_variance}")
    if cfg.num_clusters is not None and cfg.num_clusters < 1:
        raise ConfigError(f"cluster.num_clusters must be >= 1, got {cfg.num_clusters}")
    if cfg.samples_per_cluster < 1:
        raise ConfigError(
            f"cluster.samples_per_cluster must be >= 1, got {cfg.samples_per_cluster}"
        )
    if cfg.max_preclusters < 1:
        raise ConfigError(f"cluster.max_preclusters must be >= 1, got {cfg.max_preclusters}")
    if cfg.ivf_nprobe < 1:
        raise ConfigError(f"cluster.ivf_nprobe must be >= 1, got {cfg.ivf_nprobe}")
    if cfg.refine_iters < 0:
        raise ConfigError(f"cluster.refine_iters must be >= 0, got {cfg.refine_iters}")
    if cfg.cell_points < 2:
        raise ConfigError(f"cluster.cell_points must be >= 2, got {cfg.cell_points}")
    if cfg.min_size < 1:
        raise ConfigError(f"cluster.min_size must be >= 1, got {cfg.min_size}")
    if cfg.max_size is not None and cfg.max_size < cfg.min_size:
        raise ConfigError(f"cluster.max_size ({cfg.max_size}) is below min_size ({cfg.min_size})")
    if not -1.0 <= cfg.ahc_threshold <= 1.0:
        raise ConfigError(f"cluster.ahc_threshold must be in [-1, 1], got {cfg.ahc_threshold}")
    if cfg.kmeans_tol < 0:
        raise ConfigError(f"cluster.kmeans_tol must be >= 0, got {cfg.kmeans_tol}")
    if cfg.minibatch_size < 1:
        raise ConfigError(f"cluster.minibatch_size must be >= 1, got {cfg.minibatch_size}")
    resolve_backend(cfg.backend)


def _pairwise_gb(n: int) -> float:
    return n * (n - 1) / 2 * 8 / 1e9
