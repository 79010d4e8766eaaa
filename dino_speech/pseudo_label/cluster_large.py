"""The k-means + cosine AHC chain at any size: partitions where a dense step would not fit.

At VoxCeleb2 size (10^6 utterances, k = N / 4 = 2.7 * 10^5 pre-clusters) neither step of the
chain fits as it stands on a CPU: one pass of k-means costs N * k distances and AHC over the k
centroids needs k^2 / 2 of them. Both are done in parts here, with nothing of size N x k or
k x k ever built:

1. **Pre-clusters in cells.** A coarse spherical k-means cuts the points into cells of about
   ``cell_points`` points (one cell holds a few whole speakers); each cell is over-clustered
   on its own into ``ceil(n_cell / samples_per_cluster)`` k-means centroids (with
   ``num_clusters`` set, ``N / num_clusters`` takes the place of ``samples_per_cluster``). Cost
   ``N * (N / cell_points + cell_points / samples_per_cluster)`` distances per iteration.
2. **Merge by parts** (:func:`merge_by_parts`): AHC inside each cell merges its centroids
   (average linkage, cosine above the threshold); the clusters this leaves are represented by
   the normalised mean of their members and merged again, over all cells at once when they
   are few enough for one dense AHC (``max_preclusters``), else in new k-means cells of those
   means, until one dense AHC takes them or a level merges almost nothing. Fragments of a
   speaker that the cells cut apart meet again at the level above.

3. **Refinement** (:func:`refine_by_means`, ``refine_iters`` rounds): every point moves to the
   cluster whose (normalised) mean it is most similar to, exactly (``N * C`` dot products for
   ``C`` clusters, in blocks); between rounds the clusters are merged again by parts. The
   pre-clusters of step 1 compare each point with a few cells' centroids only; on
   VoxCeleb2-sized data that puts about a quarter of the points with another speaker's
   fragment, and the means of the merged clusters, averaged over tens of utterances, correct
   most of them (BENCHMARKS.md).

Average linkage on unit vectors scores two clusters by the mean of their pairwise cosines,
which is the dot product of their (unnormalised) mean vectors; representing a merged cluster
by its mean keeps that score up to the normalisation, so the levels above approximate the one
global AHC that would not fit.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from tqdm.auto import tqdm

from dino_speech.config import ClusterConfig
from dino_speech.pseudo_label.kmeans import (
    KMeansResult,
    _faiss,
    faiss_iterations,
    kmeans,
    resolve_backend,
)
from dino_speech.vectors import l2_normalize

__all__ = [
    "ahc_mean_similarity",
    "centroid_cells",
    "merge_by_parts",
    "precluster_in_cells",
    "precluster_ivf",
    "refine_by_means",
]

logger = logging.getLogger(__name__)

# A level that leaves more than this fraction of its inputs as clusters is the last one.
_MIN_REDUCTION = 0.95
# Rows per float64 block of cluster_sums; similarities per block of nearest_rows (~256 MB).
_BLOCK_ROWS = 1 << 16
_BLOCK_ELEMENTS = 1 << 26


def precluster_ivf(
    Z: np.ndarray, per_cluster: float, cfg: ClusterConfig, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of unit rows ``Z`` ``(N, D)`` into ``k = ceil(N / per_cluster)``
    centroids, each point compared only with the centroids of its ``cfg.ivf_nprobe`` nearest
    coarse cells (a faiss inverted-file index as the assignment step, rebuilt every iteration).

    ``nlist = sqrt(nprobe * k)`` coarse cells minimise the ``N * (nlist + nprobe * k / nlist)``
    dot products of an iteration: at N = 1.09 * 10^6, k = N / 4 that is 65 x fewer than exact
    k-means. Returns ``(labels (N,), centroids (K, D))``, empty centroids dropped.
    """
    faiss = _faiss()
    assert faiss is not None
    n, d = Z.shape
    k = min(n, math.ceil(n / per_cluster))
    nlist = max(1, min(k, round(math.sqrt(cfg.ivf_nprobe * k))))
    coarse = faiss.Kmeans(
        d, nlist, niter=10, spherical=True, seed=cfg.seed, max_points_per_centroid=64
    )
    coarse.train(Z)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(coarse.centroids)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = cfg.ivf_nprobe
    params = faiss.ClusteringParameters()
    params.niter = 1  # one iteration per train() call (see faiss_iterations)
    params.spherical = True
    params.seed = int(cfg.seed) % (2**31)
    params.min_points_per_centroid = 1
    params.max_points_per_centroid = n  # no subsampling: every point takes part
    clus = faiss.Clustering(d, k, params)
    desc = f"k-means (faiss IVF, k={k}, {nlist} lists, nprobe {cfg.ivf_nprobe})"
    nearest, centroids = faiss_iterations(
        clus, index, Z, cfg.kmeans_iters, cfg.kmeans_tol, desc, progress, reset_index=False
    )
    used, labels = np.unique(nearest, return_inverse=True)
    logger.info("k-means (faiss IVF): %d points -> %d pre-clusters", n, used.size)
    return labels.reshape(-1).astype(np.int64), centroids[used]


def precluster_in_cells(
    Z: np.ndarray, per_cluster: float, cfg: ClusterConfig, *, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means over-clustering of unit rows ``Z`` ``(N, D)``, one cell at a time, about
    ``per_cluster`` points per centroid.

    Returns ``(labels (N,), centroids (K, D), cell of each centroid (K,))``: ``labels[i]`` is
    the centroid of point ``i``; ``K`` is about ``N / per_cluster``.
    """
    n = Z.shape[0]
    n_cells = max(1, math.ceil(n / cfg.cell_points))
    coarse = _kmeans(Z, n_cells, cfg, progress=progress).labels
    order = np.argsort(coarse, kind="stable")
    bounds = np.searchsorted(coarse[order], np.arange(n_cells + 1))
    labels = np.empty(n, dtype=np.int64)
    centroids: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    offset = 0
    bar = tqdm(range(n_cells), desc="k-means in cells", unit="cell", disable=not progress)
    for c in bar:
        members = order[bounds[c] : bounds[c + 1]]
        if members.size == 0:
            continue
        k = min(members.size, math.ceil(members.size / per_cluster))
        if k == 1:
            local = np.zeros(members.size, dtype=np.int64)
            local_centroids = l2_normalize(
                Z[members].mean(axis=0, keepdims=True), zero_rows="error"
            )
        else:
            result = _kmeans(Z[members], k, cfg, seed=cfg.seed + 1 + c)
            local, local_centroids = result.labels, result.centroids
        used, local = np.unique(local, return_inverse=True)  # drop empty centroids
        labels[members] = local.reshape(-1) + offset
        centroids.append(local_centroids[used])
        cells.append(np.full(used.size, c, dtype=np.int64))
        offset += used.size
    bar.close()
    logger.info(
        "k-means in %d cells of ~%d points: %d pre-clusters", n_cells, cfg.cell_points, offset
    )
    return labels, np.concatenate(centroids), np.concatenate(cells)


def merge_by_parts(
    P: np.ndarray,
    threshold: float,
    cfg: ClusterConfig,
    cells: np.ndarray | None = None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """Average-linkage AHC of the rows of ``P`` ``(n, D)`` on cosine, by parts above
    ``cfg.max_preclusters`` rows.

    ``cells`` ``(n,)``: the first partition (e.g. the k-means cells the rows came from);
    without it, rows are cut into k-means cells of about ``max_preclusters / 4``. Returns
    ``(n,)`` int64 cluster labels ``0..C-1``.
    """
    sums = l2_normalize(P, zero_rows="error").astype(np.float64)
    return _merge_level(sums, np.ones(P.shape[0]), threshold, cfg, cells, 0, progress)


def _merge_level(
    sums: np.ndarray,
    counts: np.ndarray,
    threshold: float,
    cfg: ClusterConfig,
    cells: np.ndarray | None,
    level: int,
    progress: bool,
) -> np.ndarray:
    """One level of :func:`merge_by_parts` on clusters given by the ``sums`` ``(n, D)`` and
    ``counts`` ``(n,)`` of their unit members: the linkage of two clusters is the mean cosine
    of their members, ``mean_a . mean_b``."""
    n = sums.shape[0]
    means = (sums / counts[:, None]).astype(np.float32)
    if n <= cfg.max_preclusters:
        return ahc_mean_similarity(means, threshold, cfg.ahc_linkage)
    if cells is None:
        cells = centroid_cells(means, cfg, seed=cfg.seed + 7919 * level)
    order = np.argsort(cells, kind="stable")
    _, starts = np.unique(cells[order], return_index=True)
    ends = np.append(starts[1:], n)
    labels = np.empty(n, dtype=np.int64)
    offset = 0
    desc = f"AHC in cells (level {level})"
    for j in tqdm(range(starts.size), desc=desc, unit="cell", disable=not progress):
        members = order[starts[j] : ends[j]]
        if members.size > cfg.max_preclusters:  # an oversized cell is split again
            local = _merge_level(
                sums[members], counts[members], threshold, cfg, None, level + 1, False
            )
        else:
            local = ahc_mean_similarity(means[members], threshold, cfg.ahc_linkage)
        labels[members] = local + offset
        offset += int(local.max()) + 1
    logger.info("AHC level %d: %d clusters in %d cells -> %d", level, n, starts.size, offset)
    if offset > _MIN_REDUCTION * n:  # nothing left to gain from another level
        if offset > cfg.max_preclusters:
            logger.warning(
                "AHC by parts: level %d still leaves %d clusters of %d; stopping there",
                level,
                offset,
                n,
            )
        return labels
    order = np.argsort(labels, kind="stable")
    merged_sums = np.add.reduceat(sums[order], np.searchsorted(labels[order], np.arange(offset)))
    merged_counts = np.bincount(labels, weights=counts, minlength=offset)
    top = _merge_level(merged_sums, merged_counts, threshold, cfg, None, level + 1, progress)
    return top[labels]


def refine_by_means(
    Z: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    cfg: ClusterConfig,
    *,
    progress: bool = False,
) -> np.ndarray:
    """``cfg.refine_iters`` times: each unit row of ``Z`` ``(N, D)`` to the cluster with the most
    similar normalised mean; between two such rounds, :func:`merge_by_parts` of the clusters
    (cosine above ``threshold``). ``labels`` ``(N,)``: clusters ``0..C-1`` to start from.
    Returns ``(N,)`` int64 labels ``0..C'-1``.

    The last round is a reassignment, not a merge: the threshold was read off the
    pre-clusters, and the means of purer clusters, averaged over more points, are more alike
    across speakers than the pre-clusters were, so a merge last would join speakers.
    """
    use_faiss = resolve_backend(cfg.backend) == "faiss"
    for round_ in range(cfg.refine_iters):
        if round_ > 0:
            merged = merge_by_parts(
                cluster_sums(Z, labels).astype(np.float32), threshold, cfg, progress=progress
            )
            labels = merged[labels]
        means = l2_normalize(cluster_sums(Z, labels).astype(np.float32), zero_rows="error")
        nearest = nearest_rows(Z, means, use_faiss=use_faiss, progress=progress)
        moved = float(np.mean(nearest != labels))
        _, labels = np.unique(nearest, return_inverse=True)
        labels = labels.reshape(-1).astype(np.int64)
        logger.info(
            "refinement %d: %.1f%% of the points moved to another cluster's mean; %d clusters",
            round_ + 1,
            100 * moved,
            int(labels.max()) + 1,
        )
    return labels


def cluster_sums(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(C, D)`` float64 sums of the rows of ``Z`` ``(N, D)`` per label ``0..C-1``."""
    order = np.argsort(labels, kind="stable")
    sums = np.zeros((int(labels.max()) + 1, Z.shape[1]), dtype=np.float64)
    for first in range(0, order.size, _BLOCK_ROWS):  # float64 copies a block at a time
        rows = order[first : first + _BLOCK_ROWS]
        lab = labels[rows]
        starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
        sums[lab[starts]] += np.add.reduceat(Z[rows].astype(np.float64), starts, axis=0)
    return sums


def nearest_rows(
    Z: np.ndarray, M: np.ndarray, *, use_faiss: bool = True, progress: bool = False
) -> np.ndarray:
    """``(N,)`` index of the row of ``M`` ``(C, D)`` with the largest dot product with each row
    of ``Z`` ``(N, D)``: exact, with faiss's flat index (``use_faiss`` and installed) or in
    blocks of matrix products (never an N x C matrix)."""
    faiss = _faiss() if use_faiss else None
    if faiss is not None:
        index = faiss.IndexFlatIP(M.shape[1])
        index.add(np.ascontiguousarray(M, dtype=np.float32))
        _, nearest = index.search(np.ascontiguousarray(Z, dtype=np.float32), 1)
        return nearest[:, 0].astype(np.int64)
    out = np.empty(Z.shape[0], dtype=np.int64)
    rows = max(1, _BLOCK_ELEMENTS // max(1, M.shape[0]))
    bar = tqdm(range(0, Z.shape[0], rows), desc="nearest means", disable=not progress)
    for first in bar:
        out[first : first + rows] = np.argmax(Z[first : first + rows] @ M.T, axis=1)
    return out


def centroid_cells(P: np.ndarray, cfg: ClusterConfig, seed: int | None = None) -> np.ndarray:
    """Spherical k-means cells of about ``max_preclusters / 4`` rows of ``P`` ``(n, D)``:
    ``(n,)`` cell ids, the parts one level of :func:`merge_by_parts` merges on their own."""
    n_cells = math.ceil(P.shape[0] / max(2, cfg.max_preclusters // 4))
    return _kmeans(l2_normalize(P, zero_rows="error"), n_cells, cfg, seed=seed).labels


def ahc_mean_similarity(
    means: np.ndarray, threshold: float, linkage: str = "average"
) -> np.ndarray:
    """AHC of clusters represented by the mean ``(n, D)`` of their unit members, merged while
    the linkage of the distances ``1 - mean_a . mean_b`` stays within ``1 - threshold`` (for
    unit rows: cosine AHC). Needs n^2 float32 similarities and n^2 / 2 float64 distances."""
    n = means.shape[0]
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    D = means @ means.T
    np.subtract(1.0, D, out=D)
    np.fill_diagonal(D, 0.0)
    np.maximum(D, 0.0, out=D)
    condensed = squareform(D, checks=False).astype(np.float64)
    del D
    tree = hierarchy.linkage(condensed, method=linkage)
    return hierarchy.fcluster(tree, t=1.0 - threshold, criterion="distance").astype(np.int64) - 1


def _kmeans(
    X: np.ndarray, k: int, cfg: ClusterConfig, *, seed: int | None = None, progress: bool = False
) -> KMeansResult:
    return kmeans(
        X,
        k,
        backend=cfg.backend,
        spherical=True,
        niter=cfg.kmeans_iters,
        init=cfg.kmeans_init,
        seed=cfg.seed if seed is None else seed,
        tol=cfg.kmeans_tol,
        algorithm=cfg.sklearn_algorithm,
        batch_size=cfg.minibatch_size,
        progress=progress,
    )
