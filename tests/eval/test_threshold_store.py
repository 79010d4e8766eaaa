from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.embedding_io import write_embeddings
from dino_speech.errors import DataError
from dino_speech.eval.threshold_store import (
    load_threshold,
    save_threshold,
    threshold_from_file,
    threshold_path,
)
from dino_speech.eval.verification import operating_points


@pytest.fixture
def exp(tmp_path):
    d = tmp_path / "exp"
    d.mkdir()
    (d / "embedder.pt").write_bytes(b"weights")  # only its name matters here
    return d


def test_round_trip_shared_by_directory_and_file(exp):
    assert load_threshold(exp) is None
    out = save_threshold(exp, 0.4321, 2.5, "data/test/trials")
    assert out == exp / "threshold.json" == threshold_path(exp / "embedder.pt")
    blob = json.loads(out.read_text())
    assert blob == {
        "threshold": 0.4321,
        "eer": 2.5,
        "trials": "data/test/trials",
        "source": "dino-speech score",
        "model": "embedder.pt",
    }
    for model in (exp, exp / "embedder.pt"):
        stored = load_threshold(model)
        assert stored.threshold == 0.4321 and stored.eer == 2.5
    assert not list(exp.glob(".threshold.json.*"))  # no temporary file left behind


def test_threshold_of_another_model_file_is_refused(exp):
    save_threshold(exp / "embedder.pt", 0.3, None, None)
    (exp / "other.pt").write_bytes(b"weights")
    with pytest.raises(DataError, match="threshold of embedder.pt, not of other.pt"):
        load_threshold(exp / "other.pt")


def test_builtin_model_has_no_stored_threshold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert threshold_path("logmel-stats") is None and load_threshold("logmel-stats") is None
    with pytest.raises(DataError, match="no threshold.json"):
        save_threshold("logmel-stats", 0.5, None, None)
    with pytest.raises(DataError, match="finite"):
        save_threshold(tmp_path, float("nan"), None, None)


def test_malformed_threshold_json(exp):
    (exp / "threshold.json").write_text('{"threshold": "high"}')
    with pytest.raises(DataError, match='needs a number under "threshold"'):
        load_threshold(exp)
    (exp / "threshold.json").write_text("{not json")
    with pytest.raises(DataError, match="not a readable threshold.json"):
        load_threshold(exp)


def test_threshold_from_the_output_of_score(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(8)]
    write_embeddings(tmp_path / "emb", ids, rng.normal(size=(8, 4)))
    lines = [
        f"u{i} u{j} {'target' if (i + j) % 3 == 0 else 'nontarget'}"
        for i in range(8)
        for j in range(i + 1, 8)
    ]
    (tmp_path / "trials").write_text("\n".join(lines) + "\n")
    args = ["score", "--trials", str(tmp_path / "trials"), "--embeddings", str(tmp_path / "emb")]
    result = CliRunner().invoke(cli, [*args, "--scores-out", str(tmp_path / "s"), "--json"])
    assert result.exit_code == 0, result.output
    (tmp_path / "score.log").write_text(result.output)
    got = threshold_from_file(tmp_path / "score.log")
    scores = [float(line.split()[2]) for line in (tmp_path / "s").read_text().splitlines()]
    labels = [line.endswith("target") and not line.endswith("nontarget") for line in lines]
    eer, thr = operating_points(scores, labels).eer()
    assert got.threshold == pytest.approx(thr, abs=5e-5)  # printed with 4 decimals
    assert got.eer == pytest.approx(100 * eer, abs=5e-4)
    assert got.trials == str(tmp_path / "trials")
    # the --json line alone (what `score --json` prints) has no threshold: say so
    (tmp_path / "score.json").write_text(result.output.splitlines()[-1])
    with pytest.raises(DataError, match="holds no threshold"):
        threshold_from_file(tmp_path / "score.json")


def test_threshold_from_other_files(tmp_path, exp):
    save_threshold(exp, -0.125, None, None)
    assert threshold_from_file(exp / "threshold.json").threshold == -0.125
    (tmp_path / "notes.txt").write_text("EER is low\n")
    with pytest.raises(DataError, match="neither a threshold.json nor the output"):
        threshold_from_file(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="cannot read"):
        threshold_from_file(tmp_path / "missing.log")
