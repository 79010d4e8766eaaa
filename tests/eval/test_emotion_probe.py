from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from dino_speech.errors import DataError
from dino_speech.eval.emotion import align_labels, evaluate_emotion, make_folds, plot_confusion

EMOTIONS = ["ang", "hap", "neu", "sad"]


def _data(num_groups=5, per_group=40, emotion_strength=3.0, seed=0):
    """Embeddings = emotion direction + group (speaker/session) offset + noise."""
    rng = np.random.default_rng(seed)
    emo_dirs = rng.normal(size=(4, 12))
    group_offsets = rng.normal(size=(num_groups, 12)) * 2
    X, y, g = [], [], []
    for gi in range(num_groups):
        for k in range(per_group):
            e = (k + gi) % 4
            X.append(emotion_strength * emo_dirs[e] + group_offsets[gi] + rng.normal(size=12))
            y.append(EMOTIONS[e])
            g.append(f"Ses{gi:02d}")
    return np.array(X), y, g


def test_leave_one_session_out_and_metrics_consistent():
    X, y, g = _data()
    r = evaluate_emotion(X, y, g)
    assert r["folds"] == 5 and r["scheme"].startswith("leave-one-group-out")
    pred = np.array(r["predictions"])
    acc = 100 * np.mean(pred == np.array(y))
    assert r["micro_f1"] == pytest.approx(acc)  # micro-F1 is accuracy for single-label data
    assert r["macro_f1"] == pytest.approx(100 * f1_score(y, pred, average="macro"))
    assert r["uar"] == pytest.approx(np.mean(list(r["per_class_recall"].values())))
    assert np.array(r["confusion"]).sum() == len(y)
    assert np.trace(np.array(r["confusion"])) == np.sum(pred == np.array(y))
    assert r["micro_f1"] > 80  # emotion is linearly decodable here
    assert len(r["fold_micro_f1"]) == 5


def test_mlp_probe_learns():
    X, y, g = _data(seed=1)
    assert evaluate_emotion(X, y, g, classifier="mlp")["micro_f1"] > 70


def test_folds_are_group_disjoint():
    rng = np.random.default_rng(0)
    y = np.array([EMOTIONS[i % 4] for i in range(600)])
    groups = [f"spk{i}" for i in rng.integers(0, 30, 600)]
    splits, scheme = make_folds(y, groups, "auto")
    assert len(splits) == 5 and "30 groups" in scheme
    g = np.array(groups)
    covered = np.zeros(600, int)
    for train, test in splits:
        assert not set(g[train]) & set(g[test])
        covered[test] += 1
    assert (covered == 1).all()
    splits, scheme = make_folds(y, groups, 30)
    assert len(splits) == 30 and scheme.startswith("leave-one-group-out")


def test_speaker_independent_folds_stop_speaker_leakage():
    # each speaker speaks ONE emotion and the embeddings only encode the speaker:
    # random folds look great (the probe identifies speakers), speaker-disjoint folds do not
    rng = np.random.default_rng(3)
    spk = np.repeat(np.arange(40), 15)
    X = rng.normal(size=(40, 64))[spk] * 3 + rng.normal(size=(spk.size, 64))
    y = [EMOTIONS[s % 4] for s in spk]
    leaky = evaluate_emotion(X, y, None)["micro_f1"]
    fair = evaluate_emotion(X, y, [str(s) for s in spk])["micro_f1"]
    assert leaky > 90 and fair < 50


def test_errors():
    X, y, g = _data()
    with pytest.raises(DataError, match="at least 2 classes"):
        evaluate_emotion(X, ["ang"] * len(y), g)
    with pytest.raises(DataError, match="unknown classifier 'svm'; valid: logreg, mlp"):
        evaluate_emotion(X, y, g, classifier="svm")
    with pytest.raises(DataError, match="at least 2 groups"):
        evaluate_emotion(X, y, ["one"] * len(y))
    with pytest.raises(DataError, match="7 folds requested but only 5 groups"):
        evaluate_emotion(X, y, g, folds=7)
    with pytest.raises(DataError, match="embeddings but"):
        evaluate_emotion(X[:3], y, g)


def test_align_labels():
    ids = ["a", "b", "c", "d"]
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    Xl, y, g, utts = align_labels(ids, X, {"c": "sad", "a": "hap"}, {"a": "s1", "c": "s2"})
    np.testing.assert_array_equal(Xl, X[[2, 0]])
    assert (y, g, utts) == (["sad", "hap"], ["s2", "s1"], ["c", "a"])
    with pytest.raises(DataError, match="2 of 3 labelled utterances have no embedding.*x, y"):
        align_labels(ids, X, {"a": "hap", "x": "sad", "y": "neu"})
    with pytest.raises(DataError, match="1 labelled utterances have no group.*c"):
        align_labels(ids, X, {"a": "hap", "c": "sad"}, {"a": "s1"})


def test_confusion_png(tmp_path):
    out = plot_confusion([[5, 1], [2, 7]], ["hap", "sad"], tmp_path / "cm.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
