from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dino_speech import Embedder
from dino_speech.audio import write_audio
from dino_speech.cli.main import cli
from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.errors import ConfigError
from dino_speech.eval.threshold_store import save_threshold
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder


@pytest.fixture
def setup(tmp_path):
    exp = tmp_path / "exp"
    torch.manual_seed(0)
    save_embedder(
        exp / "embedder.pt", build_encoder("ecapa_tiny"), EncoderConfig("ecapa_tiny"), FbankConfig()
    )
    rng = np.random.default_rng(0)
    wavs = []
    for i, f0 in enumerate((110, 230)):
        t = np.arange(16000) / 16000
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.normal(size=t.size)
        wavs.append(tmp_path / f"utt{i}.wav")
        write_audio(wavs[-1], wave, 16000)
    return exp, wavs


def _run(*args):
    return CliRunner().invoke(cli, ["verify", *map(str, args)])


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_verify_prints_score_and_decision(setup):
    exp, (a, b) = setup
    expected = Embedder.from_pretrained(exp).score(a, b)
    result = _run("--model", exp, a, b, "--threshold", expected - 0.01, "--json")
    assert result.exit_code == 0, result.output
    first, last = result.output.splitlines()
    assert first.startswith(f"same speaker: score {expected:.4f} >= threshold")
    blob = json.loads(last)
    assert blob["same"] is True and blob["score"] == pytest.approx(expected, abs=1e-6)
    result = _run("--model", exp, a, b, "--threshold", expected + 0.01)
    assert result.exit_code == 0 and result.output.startswith("different speakers: score")


def test_verify_without_any_threshold_is_a_usage_error(setup):
    exp, (a, b) = setup
    line = _one_error_line(_run("--model", exp, a, b))
    assert "no threshold: give --threshold T or --threshold-from FILE" in line
    assert "threshold.json" in line


def test_stored_threshold_from_score_output(setup, tmp_path):
    exp, (a, b) = setup
    score = Embedder.from_pretrained(exp).score(a, b)
    log = tmp_path / "score.log"
    log.write_text(
        "trials: data/test/trials (10 target, 90 non-target)\n"
        f"EER: 4.200% (threshold {score + 0.05:.4f})\n"
        "minDCF(p_target=0.01): 0.3000 (threshold 0.9000)\n"
        '{"eer": 4.2, "min_dcf": {"0.01": 0.3}, "targets": 10, "nontargets": 90}\n'
    )
    result = _run("--model", exp, "--threshold-from", log, "--save-threshold")
    assert result.exit_code == 0, result.output
    assert f"stored threshold {score + 0.05:.4f} -> {exp / 'threshold.json'}" in result.output
    stored = json.loads((exp / "threshold.json").read_text())
    assert stored["eer"] == 4.2 and stored["trials"] == "data/test/trials"
    result = _run("--model", exp, a, b)  # no threshold option: the stored one
    assert result.exit_code == 0, result.output
    assert result.output.startswith("different speakers")
    assert "EER 4.200%" in result.output and "threshold.json" in result.output
    # --threshold still wins over the stored one
    result = _run("--model", exp / "embedder.pt", a, b, "--threshold", -1)
    assert result.output.startswith("same speaker")


def test_user_errors_are_one_line(setup, tmp_path):
    exp, (a, b) = setup
    assert "does not exist" in _one_error_line(_run("--model", exp, a, tmp_path / "x.wav"))
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert "bad.wav" in _one_error_line(_run("--model", exp, a, bad, "--threshold", 0.5))
    line = _one_error_line(_run("--model", tmp_path / "nomodel", a, b, "--threshold", 0.5))
    assert "model not found" in line
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"junk")
    assert "cannot read" in _one_error_line(_run("--model", broken, a, b, "--threshold", 0.5))
    assert "two audio files" in _one_error_line(_run("--model", exp, a, "--threshold", 0.5))
    line = _one_error_line(_run("--model", exp, a, b, "--threshold-from", tmp_path / "no.log"))
    assert "no.log: cannot read" in line
    assert "needs --threshold" in _one_error_line(_run("--model", exp, "--save-threshold"))


def test_embedder_verify(setup):
    exp, (a, b) = setup
    embedder = Embedder.from_pretrained(exp)
    score = embedder.score(a, b)
    with pytest.raises(ConfigError, match="no stored threshold"):
        embedder.verify(a, b)
    result = embedder.verify(a, b, threshold=score)
    assert result.same and result.score == pytest.approx(score) and result.threshold == score
    save_threshold(exp, score + 1e-3, 1.0, None)
    result = embedder.verify(embedder.embed_file(a), embedder.embed_file(b))
    assert not result.same and result.threshold == pytest.approx(score + 1e-3)
