from __future__ import annotations

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.export import export_embedder
from dino_speech.model_card import find_results, training_data
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder


@pytest.fixture
def recipe(tmp_path):
    """The recipes' layout: EXP/dino (model + config.yaml), EXP/eval/dino/*.json (results)."""
    exp = tmp_path / "exp"
    torch.manual_seed(0)
    save_embedder(
        exp / "dino" / "embedder.pt",
        build_encoder("ecapa_tiny"),
        EncoderConfig("ecapa_tiny"),
        FbankConfig(),
    )
    (exp / "dino" / "config.yaml").write_text("data:\n  train_cuts: data/cuts_train.jsonl.gz\n")
    results = exp / "eval" / "dino"
    results.mkdir(parents=True)
    score = {"eer": 12.5, "min_dcf": {"0.01": 0.91, "0.05": 0.7}, "targets": 10, "nontargets": 90}
    # as `score --json-out` writes them: the metrics, and the trial list when it was recorded
    (results / "score.json").write_text(json.dumps({**score, "trials": "data/test/trials"}))
    (results / "asnorm.json").write_text(json.dumps({**score, "eer": 11.25}))
    (results / "emotion.json").write_text('{"micro_f1": 40.0, "macro_f1": 30.0, "folds": 5}')
    return exp


def _header(card):
    text = card.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1]), text


def test_card_beside_export_has_header_and_recorded_results(recipe):
    out = recipe / "export" / "dino.pt"
    summary = export_embedder(recipe / "dino", out, "torchscript")
    assert summary.card == recipe / "export" / "README.md"
    header, text = _header(summary.card)
    assert header["library_name"] == "dino_speech"
    assert header["task"] == "speaker-verification"
    assert header["pipeline_tag"] == "feature-extraction"
    assert header["training_data"] == "data/cuts_train.jsonl.gz"
    assert header["embedding_dim"] == 128 and header["sample_rate"] == 16000
    assert header["license"] == "FILL-IN"
    assert "| score | `data/test/trials` | 12.500 | 0.9100 | 0.7000 |" in text
    assert "| asnorm | `unknown` | 11.250 |" in text
    assert "micro_f1" not in text and "No results recorded" not in text  # emotion is no SV row
    assert "- `dino.pt`: torchscript, input 'wave': (batch, num_samples)" in text
    # a second export into the same folder keeps the first one's entry
    export_embedder(recipe / "dino", out.with_name("dino_single.pt"), input_form="single")
    _, text = _header(summary.card)
    assert "- `dino.pt`: torchscript" in text and "- `dino_single.pt`: torchscript" in text


def test_card_without_results_or_config(tmp_path):
    summary = export_embedder("logmel-stats", tmp_path / "stats.pt", "torchscript")
    header, text = _header(summary.card)
    assert header["training_data"] == "unknown" and header["embedding_dim"] == 80
    assert "## Results\n\nNo results recorded." in text
    assert find_results("logmel-stats") == [] and training_data(tmp_path / "nothing") == "unknown"


def test_a_users_readme_is_left_alone(recipe, tmp_path):
    (tmp_path / "README.md").write_text("my notes\n")
    summary = export_embedder(recipe / "dino" / "embedder.pt", tmp_path / "m.pt")
    assert (tmp_path / "README.md").read_text() == "my notes\n"
    assert summary.card == tmp_path / "MODEL_CARD.md"
    header, _ = _header(summary.card)
    assert header["training_data"] == "data/cuts_train.jsonl.gz"  # found from the file too


def test_cli_writes_card_unless_told_not_to(recipe, tmp_path):
    args = ["export", "--model", str(recipe / "dino"), "--out"]
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "a" / "m.pt")])
    assert result.exit_code == 0, result.output
    assert f"model card -> {tmp_path / 'a' / 'README.md'}" in result.output
    result = CliRunner().invoke(cli, [*args, str(tmp_path / "b" / "m.pt"), "--no-model-card"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "b" / "README.md").exists() and "model card" not in result.output
