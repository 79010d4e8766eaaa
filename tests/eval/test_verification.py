from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from dino_speech.errors import DataError
from dino_speech.eval.verification import (
    Trials,
    compute_eer,
    compute_min_dcf,
    operating_points,
    read_scores,
    read_trials,
    score_trials,
    scores_for_trials,
    verification_metrics,
)


def reference_eer(scores, labels):
    """EER from sklearn's ROC points; the crossing of the polyline with fnr = fpr by brentq."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    k = np.arange(fpr.size, dtype=float)
    f = lambda x: np.interp(x, k, fnr) - np.interp(x, k, fpr)  # noqa: E731
    root = brentq(f, 0.0, fpr.size - 1.0, xtol=1e-12)
    return 100.0 * np.interp(root, k, fpr)


def reference_min_dcf(scores, labels, p):
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return np.min(p * (1 - tpr) + (1 - p) * fpr) / min(p, 1 - p)


def brute_force_min_dcf(scores, labels, p):
    """Every threshold explicitly, including accept-all and reject-all."""
    scores = np.asarray(scores)
    labels = np.asarray(labels, bool)
    best = np.inf
    for t in [*np.unique(scores), np.inf]:
        p_miss = np.mean(scores[labels] < t)
        p_fa = np.mean(scores[~labels] >= t)
        best = min(best, p * p_miss + (1 - p) * p_fa)
    return best / min(p, 1 - p)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1, 2])  # None: continuous; 1-2: heavy ties
def test_parity_with_roc_curve_reference(seed, decimals):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    labels = rng.random(n) < rng.uniform(0.05, 0.6)
    labels[:2] = [True, False]
    scores = rng.normal(size=n) + rng.uniform(0.2, 3.0) * labels
    if decimals is not None:
        scores = np.round(scores, decimals)
    assert compute_eer(scores, labels) == pytest.approx(reference_eer(scores, labels), abs=1e-8)
    for p in (0.01, 0.05, 0.5):
        ref = reference_min_dcf(scores, labels, p)
        assert compute_min_dcf(scores, labels, p) == pytest.approx(ref, abs=1e-12)
        assert ref == pytest.approx(brute_force_min_dcf(scores, labels, p), abs=1e-12)


def test_hand_computed_cases():
    # desc: .9T .8T .7N .3T .2N .1N -> at threshold .7: P_fa = 1/3, P_miss = 1/3
    scores = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1]
    labels = [1, 1, 1, 0, 0, 0]
    assert compute_eer(scores, labels) == pytest.approx(100 / 3)
    # all scores tied: the only segment joins (0, 1) and (1, 0); it crosses at 50%
    assert compute_eer([0.5] * 4, [1, 0, 0, 0]) == pytest.approx(50.0)
    assert compute_min_dcf([0.5] * 4, [1, 0, 0, 0], 0.01) == pytest.approx(1.0)
    # perfectly separated
    assert compute_eer([3, 2, 1, 0], [1, 1, 0, 0]) == 0.0
    assert compute_min_dcf([3, 2, 1, 0], [1, 1, 0, 0], 0.05) == 0.0
    # perfectly inverted: the worst case
    assert compute_eer([0, 1, 2, 3], [1, 1, 0, 0]) == pytest.approx(100.0)
    # a crossing inside a segment: 1 target over 2 tied non-targets
    # points: (0,1) -> thr 1: (0, 0.5) -> thr .5 (tie of T and 2N): (1, 0)... d: 1, .5, -1
    assert compute_eer([1.0, 0.5, 0.5, 0.5], [1, 1, 0, 0]) == pytest.approx(100 / 3)
    assert reference_eer(np.array([1.0, 0.5, 0.5, 0.5]), np.array([1, 1, 0, 0])) == pytest.approx(
        100 / 3
    )


def test_operating_points_and_thresholds():
    pts = operating_points([0.9, 0.8, 0.3, 0.7, 0.2, 0.1], [1, 1, 1, 0, 0, 0])
    assert pts.thresholds[0] == np.inf and pts.thresholds[-1] == 0.1
    np.testing.assert_allclose(pts.p_miss, [1, 2 / 3, 1 / 3, 1 / 3, 0, 0, 0])
    np.testing.assert_allclose(pts.p_fa, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    eer, thr = pts.eer()
    assert thr == 0.7
    dcf, thr = pts.min_dcf(0.5)
    assert dcf == pytest.approx(1 / 3) and thr == 0.8  # (1/3 + 0) / 2 normalised by 1/2


def test_verification_metrics_dict():
    rng = np.random.default_rng(1)
    labels = rng.random(500) < 0.3
    scores = rng.normal(size=500) + labels
    m = verification_metrics(scores, labels)
    assert set(m) == {"eer", "min_dcf", "targets", "nontargets"}
    assert set(m["min_dcf"]) == {"0.01", "0.05"}
    assert m["targets"] == labels.sum() and m["nontargets"] == (~labels).sum()
    assert m["eer"] == pytest.approx(compute_eer(scores, labels))
    assert m["min_dcf"]["0.05"] == pytest.approx(compute_min_dcf(scores, labels, 0.05))


def test_metric_errors():
    with pytest.raises(DataError, match="empty"):
        compute_eer([], [])
    with pytest.raises(DataError, match="only target trials"):
        compute_eer([1, 2], [1, 1])
    with pytest.raises(DataError, match="only non-target"):
        compute_min_dcf([1, 2], [0, 0], 0.01)
    with pytest.raises(DataError, match="NaN"):
        compute_eer([1, np.nan], [1, 0])
    with pytest.raises(DataError, match="3 scores but 2 labels"):
        compute_eer([1, 2, 3], [1, 0])
    with pytest.raises(DataError, match="p_target"):
        compute_min_dcf([1, 2], [1, 0], 1.5)


def test_read_trials_both_forms(tmp_path):
    path = tmp_path / "trials"
    path.write_text(
        "# a comment\n"
        "a b target\n"
        "a c nontarget\n"
        "\n"
        "1 id1/x/1.wav id1/y/2.wav\n"
        "0 id1/x/1.wav id2/z/3.wav\n"
    )
    trials = read_trials(path)
    assert trials.enroll == ["a", "a", "id1/x/1.wav", "id1/x/1.wav"]
    assert trials.test == ["b", "c", "id1/y/2.wav", "id2/z/3.wav"]
    assert trials.labels.tolist() == [True, False, True, False]
    assert (trials.num_targets, trials.num_nontargets) == (2, 2)


def test_read_trials_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_trials(tmp_path / "nope")
    (tmp_path / "empty").write_text("\n# nothing\n")
    with pytest.raises(DataError, match="empty"):
        read_trials(tmp_path / "empty")
    (tmp_path / "bad").write_text("a b target\na b maybe\n")
    with pytest.raises(DataError, match="bad:2: expected"):
        read_trials(tmp_path / "bad")
    (tmp_path / "one").write_text("a b target\nc d target\n")
    trials = read_trials(tmp_path / "one")
    with pytest.raises(DataError, match="only target trials"):
        trials.check_both_classes()


def _trials(pairs):
    return Trials([p[0] for p in pairs], [p[1] for p in pairs], np.array([p[2] for p in pairs]))


def test_cosine_scoring_matches_explicit_formula():
    rng = np.random.default_rng(2)
    ids = [f"u{i}" for i in range(20)]
    X = rng.normal(size=(20, 8)).astype(np.float32) + 0.5
    pairs = [(ids[i], ids[j], (i + j) % 2 == 0) for i, j in rng.integers(0, 20, size=(300, 2))]
    trials = _trials(pairs)
    got = score_trials((ids, X), trials)
    emb = dict(zip(ids, X.astype(np.float64), strict=True))
    want = [emb[e] @ emb[t] / np.linalg.norm(emb[e]) / np.linalg.norm(emb[t]) for e, t, _ in pairs]
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(score_trials(emb, trials), got, atol=1e-6)
    # mean subtraction happens before length normalisation
    mean = X.mean(axis=0)
    centred = {u: v - mean for u, v in emb.items()}
    want = [
        centred[e] @ centred[t] / np.linalg.norm(centred[e]) / np.linalg.norm(centred[t])
        for e, t, _ in pairs
    ]
    np.testing.assert_allclose(score_trials((ids, X), trials, mean=mean), want, atol=1e-5)


def test_unknown_utterances_are_counted_and_named():
    ids = ["a", "b"]
    X = np.eye(2, dtype=np.float32)
    trials = _trials([("a", "b", True), ("a", "x", False), ("y", "z", False), ("z", "b", True)])
    with pytest.raises(DataError, match=r"^3 utterances .*first: x, y, z"):
        score_trials((ids, X), trials)


def test_voxceleb_path_ids_map_to_utterance_ids():
    ids = ["id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008", "id10300-ZkwgU4hbmbw-00002"]
    X = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    trials = _trials(
        [
            ("id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav", True),
            ("id10270/x6uYqmx31kE/00001.wav", "id10300/ZkwgU4hbmbw/00002.wav", False),
        ]
    )
    np.testing.assert_allclose(score_trials((ids, X), trials), [0.8, 0.0], atol=1e-6)
    trials.enroll[0] = "id1/none/1.wav"
    with pytest.raises(DataError, match="1 utterances .*id1/none/1.wav.*look like file names"):
        score_trials((ids, X), trials)


def test_scores_for_trials_joins_by_pair(tmp_path):
    trials = _trials([("a", "b", True), ("a", "c", False)])
    (tmp_path / "s").write_text("a c -0.5\nq r 9\na b 0.75\n")
    enroll, test, scores = read_scores(tmp_path / "s")
    np.testing.assert_array_equal(
        scores_for_trials(trials, enroll, test, scores, "s"), [0.75, -0.5]
    )
    with pytest.raises(DataError, match="1 of 2 trials have no score .*first: a c"):
        scores_for_trials(trials, ["a"], ["b"], np.array([1.0]), "s")
    (tmp_path / "bad").write_text("a b nan-ish\n")
    with pytest.raises(DataError, match="bad:1: expected 'UTT1 UTT2 SCORE'"):
        read_scores(tmp_path / "bad")
