from __future__ import annotations

import math

import numpy as np
import pytest

from dino_speech.errors import DataError
from dino_speech.pseudo_label.quality import cluster_quality, format_quality


def test_hand_computed_example():
    pred = np.array([0, 0, 0, 1, 1, -1, -1, 2])
    true = ["a", "a", "b", "b", "b", "c", "c", "c"]
    q = cluster_quality(pred, true)
    # Kept: clusters {0: a a b}, {1: b b}, {2: c} -> majority 2 + 2 + 1 of 6.
    assert q["purity"] == pytest.approx(5 / 6)
    assert q["clusters"] == 3 and q["kept"] == 6 and q["utterances"] == 8
    assert q["coverage"] == pytest.approx(0.75)
    assert q["speakers"] == 3
    # NMI (arithmetic mean normalisation) over the kept six, by its definition.
    p, t = np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 1, 2])
    joint = np.zeros((3, 3))
    np.add.at(joint, (p, t), 1 / 6)
    pp, pt = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = (joint[nz] * np.log(joint[nz] / np.outer(pp, pt)[nz])).sum()
    h = lambda v: -(v * np.log(v)).sum()  # noqa: E731
    assert q["nmi"] == pytest.approx(mi / ((h(pp) + h(pt)) / 2))


def test_perfect_and_permuted_labels():
    true = np.repeat(np.arange(5), 4)
    pred = (true * 7 + 3) % 11  # a relabelling
    q = cluster_quality(pred, true)
    assert q["nmi"] == pytest.approx(1.0) and q["purity"] == 1.0 and q["clusters"] == 5


def test_splitting_speakers_keeps_purity_but_costs_nmi():
    true = np.repeat(np.arange(4), 10)
    split = np.arange(40) // 5  # every speaker in two clusters
    q = cluster_quality(split, true)
    assert q["purity"] == 1.0 and q["nmi"] < 0.9 and q["clusters"] == 8


def test_nothing_kept():
    q = cluster_quality(np.array([-1, -1, -1]), np.array([1, 2, 2]))
    assert math.isnan(q["nmi"]) and math.isnan(q["purity"])
    assert q["clusters"] == 0 and q["coverage"] == 0.0
    assert "kept 0/3" in format_quality(q)


def test_format_line():
    q = cluster_quality(np.array([0, 0, 1, 1, -1]), ["x", "x", "y", "y", "y"])
    line = format_quality(q)
    assert "\n" not in line
    assert "clusters 2" in line and "kept 4/5 (80.0%)" in line and "NMI 1.0000" in line
    assert "true speakers 2" in line


@pytest.mark.parametrize(
    "pred,true,message",
    [
        (np.array([0, 1]), ["a"], "2 predicted labels but 1"),
        (np.array([[0, 1]]), ["a", "b"], "1-D"),
        (np.array([0.5, 1.0]), ["a", "b"], "integers"),
        (np.array([0, -2]), ["a", "b"], ">= -1"),
        (np.array([0, 1]), ["a", None], "missing"),
        (np.array([], dtype=int), [], "no utterances"),
    ],
)
def test_bad_input(pred, true, message):
    with pytest.raises(DataError, match=message):
        cluster_quality(pred, true)
