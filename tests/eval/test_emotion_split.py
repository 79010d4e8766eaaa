"""Emotion probe on a fixed train/test split (MSP-Podcast protocol): library and CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.embedding_io import write_embeddings
from dino_speech.errors import DataError
from dino_speech.eval.emotion import evaluate_emotion

EMOTIONS = ["angry", "happy", "neutral", "sad"]


def _data(seed: int = 0, n: int = 80, dim: int = 8) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim)) * 3
    y = [EMOTIONS[i % 4] for i in range(n)]
    X = np.array([centres[i % 4] + rng.normal(size=dim) for i in range(n)])
    return X, y


def test_fixed_split_trains_once_and_scores_only_the_test_rows() -> None:
    X, y = _data()
    test = np.arange(len(y)) >= 60
    # make the train rows unlearnable: if the probe were fitted on test rows or scored on
    # train rows, the figures would change
    y_bad_train = ["angry" if not t else v for v, t in zip(y, test, strict=True)]
    y_bad_train[1] = "sad"  # two classes needed to fit
    good = evaluate_emotion(X, y, test=test)
    assert good["folds"] == 1 and good["num_utterances"] == 20 and good["num_train"] == 60
    assert good["scheme"] == "fixed split (60 train, 20 test utterances)"
    assert len(good["predictions"]) == 20 and good["micro_f1"] > 90
    truth = [v for v, t in zip(y, test, strict=True) if t]
    acc = 100 * np.mean([p == t for p, t in zip(good["predictions"], truth, strict=True)])
    assert good["micro_f1"] == pytest.approx(acc)
    assert sum(map(sum, good["confusion"])) == 20
    bad = evaluate_emotion(X, y_bad_train, test=test)
    assert bad["micro_f1"] < 60


def test_fixed_split_per_class_figures_cover_the_test_classes_only() -> None:
    X, y = _data()
    test = np.array([i >= 60 and y[i] != "sad" for i in range(len(y))])
    result = evaluate_emotion(X, y, test=test)
    assert sorted(result["per_class_recall"]) == ["angry", "happy", "neutral"]
    assert result["classes"] == EMOTIONS  # the confusion matrix keeps every class


def test_fixed_split_errors() -> None:
    X, y = _data()
    with pytest.raises(DataError, match="both sides"):
        evaluate_emotion(X, y, test=np.zeros(len(y), bool))
    with pytest.raises(DataError, match="no groups"):
        evaluate_emotion(X, y, groups=["g"] * len(y), test=np.arange(len(y)) > 40)
    with pytest.raises(DataError, match="test flags"):
        evaluate_emotion(X, y, test=[True, False])


def _write(tmp_path, X: np.ndarray, y: list[str]) -> None:
    ids = [f"utt{i:03d}" for i in range(len(y))]
    write_embeddings(tmp_path / "emb", ids, X)
    train = [f"{u} {e}\n" for u, e in zip(ids[:60], y[:60], strict=True)]
    test = [f"{u} {e}\n" for u, e in zip(ids[60:], y[60:], strict=True)]
    (tmp_path / "train_utt2emo").write_text("".join(train))
    (tmp_path / "test_utt2emo").write_text("".join(test))


def test_cli_test_labels(tmp_path) -> None:
    X, y = _data()
    _write(tmp_path, X, y)
    args = [
        "eval-emotion",
        "--embeddings",
        str(tmp_path / "emb"),
        "--labels",
        str(tmp_path / "train_utt2emo"),
        "--test-labels",
        str(tmp_path / "test_utt2emo"),
        "--predictions-out",
        str(tmp_path / "pred"),
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["folds"] == 1 and last["micro_f1"] > 90
    assert "fixed split (60 train, 20 test utterances)" in result.stdout
    lines = (tmp_path / "pred").read_text().splitlines()
    assert [line.split()[0] for line in lines] == [f"utt{i:03d}" for i in range(60, 80)]
    assert [line.split()[1] for line in lines] == y[60:]

    both = CliRunner().invoke(cli, [*args[:5], "--test-labels", str(tmp_path / "train_utt2emo")])
    assert both.exit_code == 2 and "both training and test utterances" in both.output
    grouped = CliRunner().invoke(cli, [*args, "--groups", str(tmp_path / "train_utt2emo")])
    assert grouped.exit_code == 2 and "cannot be combined" in grouped.output
