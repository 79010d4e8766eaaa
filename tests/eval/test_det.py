from __future__ import annotations

import numpy as np
import pytest

from dino_speech.errors import DataError
from dino_speech.eval import det
from dino_speech.eval.det import plot_det


def test_det_png_written_for_one_and_several_curves(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random(20_000) < 0.2
    a = rng.normal(size=labels.size) + 2 * labels
    b = np.round(rng.normal(size=labels.size) + labels, 1)  # ties
    out = plot_det((a, labels), tmp_path / "one.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = plot_det([("sys A", a, labels), ("sys B", b, labels)], tmp_path / "sub" / "two.png")
    assert out.is_file() and out.stat().st_size > 5000


def test_thinning_keeps_curve_ends_and_bounds_points():
    rng = np.random.default_rng(1)
    labels = rng.random(200_000) < 0.5
    scores = rng.normal(size=labels.size) + labels
    from dino_speech.eval.verification import operating_points

    pts = operating_points(scores, labels)
    x, y = det._thin(pts, 0.0005, 0.995)
    assert x.size < 20_000
    assert x[0] == det._probit(np.array([0.0]), 0.0005, 0.995)[0]
    assert y[-1] == det._probit(np.array([0.0]), 0.0005, 0.995)[0]
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(y) <= 0)  # a DET curve is monotone


def test_det_rejects_one_class(tmp_path):
    with pytest.raises(DataError):
        plot_det((np.array([1.0, 2.0]), np.array([True, True])), tmp_path / "x.png")
