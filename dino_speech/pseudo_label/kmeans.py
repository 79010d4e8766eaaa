"""k-means of embeddings, faiss when installed and scikit-learn otherwise, and the input
check every clustering step shares.

``X (N, D)`` float embeddings in, :class:`KMeansResult` out (``labels (N,)`` int64 in
``[0, k)``, ``centroids (k, D)`` float32). Used by the whole-data chain
(:mod:`dino_speech.pseudo_label.cluster`) and the chain in cells
(:mod:`dino_speech.pseudo_label.cluster_large`).
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from tqdm.auto import tqdm

from dino_speech.errors import ConfigError, DataError

__all__ = ["KMeansResult", "kmeans", "resolve_backend", "validate_embeddings"]

logger = logging.getLogger(__name__)

# scikit-learn's "auto" algorithm switches from Lloyd's KMeans to MiniBatchKMeans above this.
MINIBATCH_ABOVE = 50_000

Backend = Literal["auto", "faiss", "sklearn"]


@dataclass
class KMeansResult:
    """k-means output: ``labels`` ``(N,)`` int64 in ``[0, k)``, ``centroids`` ``(k, D)``."""

    labels: np.ndarray
    centroids: np.ndarray
    backend: str


def validate_embeddings(X: np.ndarray) -> np.ndarray:
    """``X`` as a C-contiguous float32 ``(N, D)`` array; :class:`DataError` when unusable."""
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise DataError(f"embeddings are not a numeric array: {exc}") from None
    if arr.ndim != 2:
        raise DataError(f"embeddings must be a 2-D (N, D) array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"embeddings must be numeric, got dtype {arr.dtype}")
    n, d = arr.shape
    if n == 0 or d == 0:
        raise DataError(f"embeddings are empty: shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"{bad.size} of {n} embeddings contain NaN or Inf (first: row {bad[0]}); "
            "re-extract them or drop those utterances"
        )
    return arr


def resolve_backend(backend: str) -> str:
    """``"faiss"`` or ``"sklearn"`` for a requested backend (``"auto"`` prefers faiss)."""
    if backend not in ("auto", "faiss", "sklearn"):
        raise ConfigError(f"unknown k-means backend '{backend}'; valid: auto, faiss, sklearn")
    if backend == "sklearn":
        return "sklearn"
    if _faiss() is not None:
        return "faiss"
    if backend == "faiss":
        raise ConfigError(
            "k-means backend 'faiss' was asked for but faiss is not installed; install it "
            "with `pip install faiss-cpu` (extra [faiss]) or use backend=auto or sklearn"
        )
    return "sklearn"


def _faiss() -> ModuleType | None:
    try:
        return importlib.import_module("faiss")
    except ImportError:
        return None


def kmeans(
    X: np.ndarray,
    k: int,
    *,
    backend: Backend = "auto",
    spherical: bool = False,
    niter: int = 20,
    init: Literal["random", "kmeans++"] = "random",
    seed: int = 0,
    tol: float = 0.0,
    algorithm: Literal["auto", "lloyd", "minibatch"] = "auto",
    batch_size: int = 4096,
    progress: bool = False,
) -> KMeansResult:
    """k-means of ``X`` ``(N, D)`` into ``k`` clusters.

    ``spherical``: for unit-length inputs; centroids are renormalised to unit length, and with
    faiss points go to the centroid of highest cosine (exact spherical k-means). scikit-learn
    has no spherical k-means: it runs Euclidean k-means on the unit vectors and only the
    returned centroids are renormalised. ``algorithm`` and ``batch_size`` apply to scikit-learn
    only (``"auto"``: MiniBatchKMeans above 50000 points). ``niter`` is Lloyd iterations
    (faiss, KMeans) or passes over the data (MiniBatchKMeans). ``tol`` (faiss only): stop
    early once an iteration changes the k-means objective by less than this fraction
    (0: always run ``niter`` iterations); scikit-learn keeps its own convergence rules.
    """
    X = validate_embeddings(X)
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"k-means needs 1 <= k <= N; got k={k} for {n} embeddings")
    if niter < 1:
        raise ConfigError(f"k-means needs at least one iteration, got niter={niter}")
    if init not in ("random", "kmeans++"):
        raise ConfigError(f"unknown k-means init '{init}'; valid: random, kmeans++")
    if tol < 0:
        raise ConfigError(f"k-means tol must be >= 0, got {tol}")
    which = resolve_backend(backend)
    logger.info("k-means (%s): clustering %d x %d into %d clusters", which, n, X.shape[1], k)
    start = time.perf_counter()
    if which == "faiss":
        labels, centroids = _faiss_kmeans(X, k, spherical, niter, init, seed, tol, progress)
    else:
        labels, centroids = _sklearn_kmeans(X, k, niter, init, seed, algorithm, batch_size)
        if spherical:
            norms = np.linalg.norm(centroids, axis=1, keepdims=True)
            centroids = centroids / np.where(norms > 0, norms, 1.0)
    logger.info("k-means (%s): done in %.1f s", which, time.perf_counter() - start)
    return KMeansResult(labels.astype(np.int64), centroids.astype(np.float32), which)


def _faiss_kmeans(
    X: np.ndarray,
    k: int,
    spherical: bool,
    niter: int,
    init: str,
    seed: int,
    tol: float,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    faiss = _faiss()
    assert faiss is not None
    d = X.shape[1]
    params = faiss.ClusteringParameters()
    # One iteration per train() call: faiss resumes from the current centroids, which gives
    # the same result as a single call with niter iterations, lets us show progress and
    # stop once the objective no longer moves.
    params.niter = 1
    params.seed = int(seed) % (2**31)
    params.spherical = spherical
    params.min_points_per_centroid = 1  # over-clustering is intended; silence the warning
    if init == "kmeans++":
        params.init_method = faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
    clus = faiss.Clustering(d, k, params)
    index = faiss.IndexFlatIP(d) if spherical else faiss.IndexFlatL2(d)
    desc = f"k-means (faiss, k={k})"
    return faiss_iterations(clus, index, X, niter, tol, desc, progress, reset_index=True)


def faiss_iterations(
    clus: Any,
    index: Any,
    X: np.ndarray,
    iters: int,
    tol: float,
    desc: str,
    progress: bool,
    *,
    reset_index: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Train ``clus`` (a ``faiss.Clustering`` made with ``niter=1``: faiss resumes from its
    centroids at every call) on ``X`` with ``index`` as the assignment step, one iteration per
    call, until ``iters`` are done or the objective moves by at most ``tol`` (relative); then
    assign every point to its nearest centroid. ``reset_index`` empties the index before each
    iteration. Returns ``(nearest centroid (N,), centroids (k, D))``."""
    faiss = _faiss()
    assert faiss is not None
    bar = tqdm(range(iters), desc=desc, unit="it", disable=not progress)
    previous = None
    for it in bar:
        if reset_index:
            index.reset()
        clus.train(X, index)
        stats = clus.iteration_stats
        objective = stats.at(stats.size() - 1).obj
        bar.set_postfix(objective=f"{objective:.6g}")
        if previous is not None and abs(objective - previous) <= tol * abs(previous):
            logger.debug("%s: converged after %d iterations", desc, it + 1)
            break
        previous = objective
    bar.close()
    centroids = faiss.vector_float_to_array(clus.centroids).reshape(clus.k, X.shape[1])
    index.reset()
    index.add(centroids)
    _, nearest = index.search(X, 1)
    return nearest[:, 0], centroids


def _sklearn_kmeans(
    X: np.ndarray, k: int, niter: int, init: str, seed: int, algorithm: str, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    if algorithm not in ("auto", "lloyd", "minibatch"):
        raise ConfigError(f"unknown k-means algorithm '{algorithm}'; valid: auto, lloyd, minibatch")
    sk_init = "k-means++" if init == "kmeans++" else "random"
    use_minibatch = algorithm == "minibatch" or (algorithm == "auto" and len(X) > MINIBATCH_ABOVE)
    if use_minibatch:
        model: KMeans | MiniBatchKMeans = MiniBatchKMeans(
            n_clusters=k,
            init=sk_init,
            max_iter=niter,
            batch_size=batch_size,
            n_init=1,
            random_state=seed,
            compute_labels=True,
        )
    else:
        model = KMeans(n_clusters=k, init=sk_init, max_iter=niter, n_init=1, random_state=seed)
    model.fit(X)
    return np.asarray(model.labels_), np.asarray(model.cluster_centers_, dtype=np.float32)
