"""DET curves: miss rate against false-alarm rate on normal-deviate (probit) axes, as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.stats import norm

from dino_speech.eval.verification import OperatingPoints, operating_points

__all__ = ["plot_det"]

_TICKS = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99]
_MAX_POINTS = 5000


def plot_det(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]] | tuple[np.ndarray, np.ndarray],
    path: str | Path,
    *,
    title: str = "DET curve",
    p_target: float = 0.01,
) -> Path:
    """Draw one or more DET curves into a PNG file.

    Args:
        curves: ``[(label, scores (N,), labels (N,) bool), ...]`` or one ``(scores, labels)``.
        path: output ``.png``.
        title: figure title.
        p_target: the prior whose minDCF operating point is marked (the EER point is marked too).

    The axes are the standard-normal quantiles of the rates (ticks labelled in percent); rates
    of exactly 0 or 1 are clipped to the axis range.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(curves, tuple) and len(curves) == 2 and not isinstance(curves[0], str):
        curves = [("", curves[0], curves[1])]
    lo, hi = 0.0005, 0.995
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    try:
        for label, scores, labels in curves:
            points = operating_points(scores, labels)
            x, y = _thin(points, lo, hi)
            eer, _ = points.eer()
            dcf, thr = points.min_dcf(p_target)
            i = int(np.flatnonzero(points.thresholds == thr)[0])
            name = f"{label} " if label else ""
            (line,) = ax.plot(
                x,
                y,
                label=f"{name}EER {100 * eer:.2f}%, minDCF({p_target:g}) {dcf:.3f}",
            )
            ax.plot(*_probit(np.array([eer, eer]), lo, hi), "o", color=line.get_color())
            ax.plot(
                _probit(points.p_fa[i : i + 1], lo, hi),
                _probit(points.p_miss[i : i + 1], lo, hi),
                "s",
                color=line.get_color(),
                mfc="none",
            )
        ticks = [t for t in _TICKS if lo <= t <= hi]
        labels_txt = [f"{100 * t:g}" for t in ticks]
        ax.set_xticks(norm.ppf(ticks), labels_txt)
        ax.set_yticks(norm.ppf(ticks), labels_txt)
        ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
        ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
        ax.plot(norm.ppf([lo, hi]), norm.ppf([lo, hi]), ":", color="grey", lw=0.8)
        ax.set_xlabel("False alarm rate (%)")
        ax.set_ylabel("Miss rate (%)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def _probit(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return norm.ppf(np.clip(p, lo, hi))


def _thin(points: OperatingPoints, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Probit coordinates of the curve, keeping one point per ~1/500 of the axis range."""
    x = _probit(points.p_fa, lo, hi)
    y = _probit(points.p_miss, lo, hi)
    if x.size <= _MAX_POINTS:
        return x, y
    step = (norm.ppf(hi) - norm.ppf(lo)) / 500
    cell = np.round(x / step) * 1_000_003 + np.round(y / step)
    keep = np.flatnonzero(np.diff(cell, prepend=np.nan) != 0)
    keep = np.union1d(keep, [x.size - 1])
    return x[keep], y[keep]
