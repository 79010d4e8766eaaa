"""Whitening learnt from unlabelled embeddings before cosine scoring."""

from __future__ import annotations

import numpy as np
import pytest

from dino_speech.errors import DataError
from dino_speech.eval.trials import Trials
from dino_speech.eval.verification import compute_eer, score_trials
from dino_speech.eval.whitening import Whitening


def _speakers_under_a_nuisance(rng, nuisance, speakers: int, per: int):
    """Speaker directions of small spread, plus a per-utterance nuisance along the rows of
    ``nuisance`` that every speaker shares and that dominates the raw cosine."""
    dim = nuisance.shape[1]
    centres = 0.3 * rng.normal(size=(speakers, dim))
    ids, rows = [], []
    for s in range(speakers):
        for u in range(per):
            ids.append(f"s{s}-{u}")
            rows.append(
                np.ones(dim)
                + centres[s]
                + 0.1 * rng.normal(size=dim)
                + 3.0 * rng.normal(size=3) @ nuisance
            )
    return ids, np.array(rows, dtype=np.float32)


def test_whitened_training_set_has_identity_covariance() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 6)) @ np.diag([5.0, 2.0, 1.0, 0.5, 0.2, 0.1]) + 3.0
    w = Whitening.fit(X)
    Z = w.apply(X)
    assert np.abs(Z.mean(0)).max() < 1e-3
    cov = np.cov(Z.T)
    # Ledoit-Wolf shrinks little with 4,000 points in 6 dimensions: close to the identity.
    assert w.shrinkage < 0.05
    np.testing.assert_allclose(cov, np.eye(6), atol=0.1)


def test_whitening_from_other_speakers_lowers_the_eer_under_a_shared_nuisance() -> None:
    rng = np.random.default_rng(1)
    nuisance = np.linalg.qr(rng.normal(size=(24, 3)))[0].T  # (3, 24), orthonormal rows
    _, train = _speakers_under_a_nuisance(rng, nuisance, speakers=40, per=10)
    ids, X = _speakers_under_a_nuisance(rng, nuisance, speakers=10, per=6)
    enroll, test, labels = [], [], []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            enroll.append(ids[i])
            test.append(ids[j])
            labels.append(ids[i].split("-")[0] == ids[j].split("-")[0])
    trials = Trials(enroll, test, np.array(labels))
    raw = compute_eer(score_trials((ids, X), trials), trials.labels)
    white = compute_eer(
        score_trials((ids, X), trials, whitening=Whitening.fit(train)), trials.labels
    )
    assert raw > 30 and white < raw / 4, (raw, white)


def test_whitening_fewer_points_than_dimensions_stays_finite() -> None:
    X = np.random.default_rng(0).normal(size=(5, 16))
    w = Whitening.fit(X)
    assert 0 < w.shrinkage <= 1 and np.isfinite(w.apply(X)).all()


def test_whitening_errors() -> None:
    with pytest.raises(DataError, match="at least 2"):
        Whitening.fit(np.ones((1, 4)))
    w = Whitening.fit(np.random.default_rng(0).normal(size=(20, 4)))
    with pytest.raises(DataError, match="dimension 4"):
        w.apply(np.ones((3, 5)))
    trials = Trials(["a"], ["b"], np.array([True]))
    with pytest.raises(DataError, match="not both"):
        score_trials((["a", "b"], np.ones((2, 4))), trials, mean=np.zeros(4), whitening=w)
