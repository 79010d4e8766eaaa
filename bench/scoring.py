"""Scoring speed: EER + minDCF (two priors) of 10^6 trials, ours vs an sklearn roc_curve baseline.

The baseline is the usual recipe: ``sklearn.metrics.roc_curve`` for the operating points, EER at
the crossing of the interpolated curve, minDCF as the minimum over the ROC points. Both run on
the same scores in this process; the script checks they agree and prints the time ratio.

    python bench/scoring.py [--trials 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_curve

from dino_speech.eval.verification import verification_metrics

P_TARGETS = (0.01, 0.05)


def reference_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    d = fnr - fpr
    i = int(np.argmax(d <= 0))
    a = d[i - 1] / (d[i - 1] - d[i])
    eer = fpr[i - 1] + a * (fpr[i] - fpr[i - 1])
    min_dcf = {f"{p:g}": float(np.min(p * fnr + (1 - p) * fpr) / min(p, 1 - p)) for p in P_TARGETS}
    return {"eer": 100 * eer, "min_dcf": min_dcf}


def best_time(fn, repeats: int) -> tuple[float, dict]:
    best, out = np.inf, {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    labels = rng.random(args.trials) < 0.1
    # cosine-like scores in float32 (as written by `score`), so ties occur as in real lists
    scores = (rng.normal(0.1, 0.12, args.trials) + 0.45 * labels).astype(np.float32)
    scores = scores.astype(np.float64)

    t_ref, ref = best_time(lambda: reference_metrics(scores, labels), args.repeats)
    t_ours, ours = best_time(lambda: verification_metrics(scores, labels, P_TARGETS), args.repeats)
    assert abs(ours["eer"] - ref["eer"]) < 1e-9, (ours, ref)
    for key, value in ref["min_dcf"].items():
        assert abs(ours["min_dcf"][key] - value) < 1e-9, (ours, ref)

    print(f"trials: {args.trials} ({int(labels.sum())} target), best of {args.repeats}")
    print(f"EER {ours['eer']:.4f}%  minDCF {ours['min_dcf']}  (ours == reference)")
    print(f"reference (sklearn roc_curve): {t_ref * 1000:8.1f} ms")
    print(f"ours (one sort):               {t_ours * 1000:8.1f} ms")
    print(f"speed-up: {t_ref / t_ours:.2f}x")


if __name__ == "__main__":
    main()
