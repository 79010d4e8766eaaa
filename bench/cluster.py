"""k-means at pseudo-labeling scale: faiss against scikit-learn's MiniBatchKMeans, one process.

Clusters ``--n`` float32 vectors of ``--dim`` dimensions, drawn from a Gaussian mixture with
``--components`` components (default: ``--k``), into ``--k`` clusters with each backend of
:func:`dino_speech.pseudo_label.cluster.kmeans`, and prints for each the time, the NMI against
the true components and the peak memory. The default size is the target's: 10^6 x 192 into
10^4 clusters. Quick smoke run::

    python bench/cluster.py --n 20000 --k 200

Peak memory is the resident set size high-water mark (``VmHWM`` in ``/proc/self/status``),
reset before each backend by writing ``5`` to ``/proc/self/clear_refs``, so each figure is the
peak of the whole process (data included) while that backend ran. Where that reset is not
available, only the process-lifetime peak from ``resource.getrusage`` is shown. The run fails
(exit status 1) when a peak exceeds ``--max-gb`` (8 GB by default).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import normalized_mutual_info_score
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from dino_speech.pseudo_label.kmeans import kmeans, resolve_backend

GB = 1e9


def gaussian_mixture(
    n: int, dim: int, components: int, spread: float, seed: int, chunk: int = 65536
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` float32 points around ``components`` N(0, I) means, noise std ``spread``;
    generated in chunks so that no float64 copy of the whole array ever exists."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((components, dim), dtype=np.float32)
    labels = rng.integers(0, components, size=n)
    X = np.empty((n, dim), dtype=np.float32)
    for start in tqdm(range(0, n, chunk), desc="generating", unit="chunk"):
        stop = min(start + chunk, n)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        X[start:stop] = means[labels[start:stop]] + spread * noise
    return X, labels


def reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    """The RSS high-water mark since the last reset, or the lifetime peak as a fallback."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return lifetime_peak_bytes()


def lifetime_peak_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of vectors")
    parser.add_argument("--dim", type=int, default=192, help="vector dimension")
    parser.add_argument("--k", type=int, default=10_000, help="number of k-means clusters")
    parser.add_argument(
        "--components", type=int, default=None, help="mixture components (default: --k)"
    )
    parser.add_argument(
        "--spread", type=float, default=0.5, help="noise std around the N(0, I) means"
    )
    parser.add_argument(
        "--niter",
        type=int,
        default=20,
        help="Lloyd iterations (faiss) / passes over the data (MiniBatchKMeans)",
    )
    parser.add_argument(
        "--init", choices=["random", "kmeans++"], default="random", help="initialisation"
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=0.0,
        help="faiss: stop once the objective moves by less than this fraction (0: run --niter)",
    )
    parser.add_argument("--batch-size", type=int, default=8192, help="MiniBatchKMeans batch size")
    parser.add_argument(
        "--backends", default="faiss,sklearn", help="comma-separated: faiss, sklearn"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both backends (faiss OpenMP, sklearn/BLAS); default: all",
    )
    parser.add_argument("--max-gb", type=float, default=8.0, help="peak memory limit in GB")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    components = args.components or args.k
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        resolve_backend(backend)  # a missing faiss fails here, before the long work
    if args.threads is not None and "faiss" in backends:
        import faiss

        faiss.omp_set_num_threads(args.threads)

    print(
        f"data: {args.n} x {args.dim} float32 ({args.n * args.dim * 4 / GB:.2f} GB), "
        f"{components} components, spread {args.spread}; k={args.k}, niter={args.niter}, "
        f"init={args.init}, tol={args.tol}, MiniBatchKMeans batch {args.batch_size}, "
        f"threads {args.threads or 'all'}"
    )
    X, truth = gaussian_mixture(args.n, args.dim, components, args.spread, args.seed)
    per_phase = reset_peak()
    if not per_phase:
        print("note: cannot reset the RSS peak here; peaks below are process-lifetime peaks")

    rows = []
    for backend in backends:
        reset_peak()
        start = time.perf_counter()
        with threadpool_limits(limits=args.threads):
            result = kmeans(
                X,
                args.k,
                backend=backend,
                niter=args.niter,
                init=args.init,
                seed=args.seed,
                tol=args.tol,
                algorithm="minibatch",
                batch_size=args.batch_size,
                progress=True,
            )
        seconds = time.perf_counter() - start
        nmi = normalized_mutual_info_score(truth, result.labels)
        peak = peak_bytes()
        name = "faiss k-means" if backend == "faiss" else "sklearn MiniBatchKMeans"
        rows.append((backend, name, seconds, nmi, peak))
        print(f"{name:<24} {seconds:9.1f} s   NMI {nmi:.4f}   peak RSS {peak / GB:6.2f} GB")

    print("\nbackend                       time      NMI   peak RSS")
    for _, name, seconds, nmi, peak in rows:
        print(f"{name:<24} {seconds:9.1f} s   {nmi:.4f}   {peak / GB:6.2f} GB")
    times = {backend: seconds for backend, _, seconds, _, _ in rows}
    if "faiss" in times and "sklearn" in times:
        print(f"speed-up of faiss over MiniBatchKMeans: {times['sklearn'] / times['faiss']:.2f}x")
    print(f"process-lifetime peak RSS (getrusage): {lifetime_peak_bytes() / GB:.2f} GB")

    over = [name for _, name, _, _, peak in rows if peak > args.max_gb * GB]
    if over:
        print(f"FAIL: peak memory above {args.max_gb} GB for: {', '.join(over)}")
        return 1
    print(f"memory: every peak is under {args.max_gb} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
