from __future__ import annotations

import numpy as np
import pytest

from dino_speech.errors import DataError
from dino_speech.eval import score_norm
from dino_speech.eval.score_norm import cohort_statistics
from dino_speech.eval.verification import Trials, score_trials


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.fixture
def setup():
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(12)]
    X = rng.normal(size=(12, 6)).astype(np.float32)
    cohort = rng.normal(size=(40, 6)).astype(np.float32)
    pairs = rng.integers(0, 12, size=(50, 2))
    trials = Trials([ids[i] for i, _ in pairs], [ids[j] for _, j in pairs], np.arange(50) % 3 == 0)
    return ids, X, cohort, trials


def _explicit(ids, X, cohort, trials, top_n):
    emb = dict(zip(ids, _unit(X.astype(np.float64)), strict=True))
    C = _unit(cohort.astype(np.float64))

    def stats(v):
        s = np.sort(C @ v)[::-1][:top_n]
        return s.mean(), s.std()

    out = []
    for e, t in zip(trials.enroll, trials.test, strict=True):
        raw = emb[e] @ emb[t]
        (me, se), (mt, st) = stats(emb[e]), stats(emb[t])
        out.append(0.5 * ((raw - me) / se + (raw - mt) / st))
    return np.array(out)


def test_snorm_matches_explicit_loop(setup):
    ids, X, cohort, trials = setup
    got = score_trials((ids, X), trials, norm="snorm", cohort=cohort)
    np.testing.assert_allclose(got, _explicit(ids, X, cohort, trials, top_n=None), atol=1e-5)


@pytest.mark.parametrize("top_n", [2, 5, 17])
def test_asnorm_matches_explicit_loop(setup, top_n):
    ids, X, cohort, trials = setup
    got = score_trials((ids, X), trials, norm="asnorm", cohort=cohort, top_n=top_n)
    np.testing.assert_allclose(
        got, _explicit(ids, X, cohort, trials, top_n=top_n), rtol=1e-4, atol=1e-4
    )


def test_asnorm_with_whole_cohort_is_snorm(setup):
    ids, X, cohort, trials = setup
    a = score_trials((ids, X), trials, norm="asnorm", cohort=cohort, top_n=10_000)
    s = score_trials((ids, X), trials, norm="snorm", cohort=cohort)
    np.testing.assert_allclose(a, s, atol=1e-6)


def test_blocked_statistics_equal_unblocked(setup, monkeypatch):
    ids, X, cohort, _ = setup
    U, C = _unit(X), _unit(cohort)
    full = cohort_statistics(U, C, top_n=7)
    monkeypatch.setattr(score_norm, "_BLOCK_FLOATS", 3 * C.shape[0])  # blocks of 3 rows
    blocked = cohort_statistics(U, C, top_n=7)
    np.testing.assert_allclose(full[0], blocked[0])
    np.testing.assert_allclose(full[1], blocked[1])


def test_norm_errors(setup):
    ids, X, cohort, trials = setup
    with pytest.raises(DataError, match="needs cohort"):
        score_trials((ids, X), trials, norm="snorm")
    with pytest.raises(DataError, match="valid: none, snorm, asnorm"):
        score_trials((ids, X), trials, norm="tnorm", cohort=cohort)
    with pytest.raises(DataError, match="cohort embeddings have shape"):
        score_trials((ids, X), trials, norm="snorm", cohort=cohort[:, :3])
    with pytest.raises(DataError, match="mean vector has dimension 2"):
        score_trials((ids, X), trials, mean=np.zeros(2))
