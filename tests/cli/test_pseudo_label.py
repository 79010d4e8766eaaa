"""``dino-speech pseudo-label run``: help, recipes, user errors, a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.config import (
    EncoderConfig,
    FbankConfig,
    PseudoLabelConfig,
    apply_overrides,
    load_config,
    save_config,
)
from dino_speech.models.package import save_embedder
from dino_speech.models.registry import build_encoder

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("pseudo_label_*.yaml"))


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


@pytest.fixture()
def setup(synthetic_corpus: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A tiny recipe (evaluation only needs the test cuts) and an untrained init model."""
    features = FbankConfig(num_mel_bins=24, mean_norm="utterance")
    spec = EncoderConfig("resnet_tiny", {"base_channels": 4, "embed_dim": 16})
    torch.manual_seed(0)
    encoder = build_encoder(spec.name, feat_dim=24, **spec.kwargs)
    save_embedder(tmp_path / "init.pt", encoder, spec, features)
    cfg = apply_overrides(
        PseudoLabelConfig(),
        [
            f"data.train_cuts={synthetic_corpus / 'synthetic_cuts_train.jsonl.gz'}",
            f"eval.cuts={synthetic_corpus / 'synthetic_cuts_test.jsonl.gz'}",
            f"eval.trials={synthetic_corpus / 'test' / 'trials'}",
            "embed.num_workers=0",
            "train.device=cpu",
        ],
    )
    save_config(cfg, tmp_path / "cfg.yaml")
    return tmp_path / "cfg.yaml", tmp_path / "init.pt"


def test_help_explains_the_command() -> None:
    code, out = run(["pseudo-label", "run", "--help"])
    assert code == 0
    for word in ("--config", "--init", "--exp-dir", "--rounds", "--device", "--max-minutes"):
        assert word in out
    for word in ("OVERRIDES", "summary.json", "resumes"):
        assert word in out
    code, out = run(["pseudo-label", "--help"])
    assert code == 0 and "run" in out


def test_recipes_load() -> None:
    names = {p.name for p in RECIPES}
    assert {
        "pseudo_label_mini.yaml",
        "pseudo_label_lresnet34.yaml",
        "pseudo_label_ecapa_c512.yaml",
    } <= names
    for recipe in RECIPES:
        cfg = load_config(PseudoLabelConfig, recipe)
        assert cfg.data.train_cuts and cfg.eval.cuts and cfg.eval.trials, recipe.name
        assert cfg.margin.margin == 0.2 and cfg.margin.scale == 30.0, recipe.name


def test_round_zero_scores_the_init_model(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, init = setup
    exp = tmp_path / "exp"
    args = ["pseudo-label", "run", "--config", str(config), "--init", str(init)]
    code, out = run([*args, "--exp-dir", str(exp), "--rounds", "0", "--quiet"])
    assert code == 0, out
    assert "init" in out and "EER" in out
    metrics = json.loads((exp / "round0" / "eval" / "metrics.json").read_text())
    assert f"{metrics['eer']:.2f}" in out
    summary = json.loads((exp / "summary.json").read_text())
    assert len(summary["rounds"]) == 1 and summary["rounds"][0]["eval"] == metrics


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["finetune.full_lrr=0.1"], "unknown config key 'finetune.full_lrr'"),
        (["eval.trials=/no/such/trials"], "eval.trials: file not found"),
        (["cluster.method=spectral"], "'cluster.method' must be one of"),
    ],
)
def test_user_errors_are_one_line(
    setup: tuple[Path, Path], tmp_path: Path, extra: list[str], message: str
) -> None:
    config, init = setup
    args = ["pseudo-label", "run", "--config", str(config), "--init", str(init)]
    code, out = run([*args, "--exp-dir", str(tmp_path / "exp"), *extra])
    assert code == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], out


def test_missing_init_is_a_usage_error(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, _ = setup
    code, out = run(
        ["pseudo-label", "run", "--config", str(config), "--init", str(tmp_path / "nope"),
         "--exp-dir", str(tmp_path / "exp")]
    )  # fmt: skip
    assert code == 2 and "--init" in out and "Traceback" not in out
