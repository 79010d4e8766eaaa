"""``dino-speech image``: --config files, dotted overrides and shortcut options, one loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import dino_speech.image.predictor_study as predictor_study
import dino_speech.image.report as image_report
import dino_speech.image.train as image_train
from dino_speech.cli import image as image_cli
from dino_speech.cli.main import cli
from dino_speech.config import ImageTrainConfig, StudyConfig, load_config
from dino_speech.config import image as image_schema
from dino_speech.image import backbones, data, heads, methods, study_config

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "image_simsiam.yaml"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the runs by recording the config they get."""
    seen: dict[str, Any] = {}

    def fake_train(cfg: ImageTrainConfig, *, progress: bool = True) -> dict[str, Any]:
        seen["cfg"] = cfg
        return {}

    def fake_study(cfg: StudyConfig, *, progress: bool = True) -> list[dict[str, Any]]:
        seen["cfg"] = cfg
        return []

    monkeypatch.setattr(image_train, "train_image_ssl", fake_train)
    monkeypatch.setattr(image_report, "format_results_table", lambda runs: "table")
    monkeypatch.setattr(predictor_study, "run_study", fake_study)
    monkeypatch.setattr(predictor_study, "format_study_table", lambda cfg, rows: "table")
    return seen


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), output
    return lines[0]


def test_the_recipe_loads() -> None:
    cfg = load_config(ImageTrainConfig, RECIPE)
    assert (cfg.method, cfg.predictor, cfg.dataset, cfg.epochs) == (
        "simsiam", "offdiag_identity", "digits", 60
    )  # fmt: skip


def test_config_then_overrides_then_shortcuts(captured: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["image", "train", "--config", str(RECIPE), "epochs=3", "lr=0.002", "batch_size=64"]
    res = runner.invoke(cli, [*args, "--batch-size", "128", "--out-dir", str(tmp_path / "o y")])
    assert res.exit_code == 0, res.output
    cfg = captured["cfg"]
    assert (cfg.method, cfg.predictor) == ("simsiam", "offdiag_identity")  # the config
    assert (cfg.epochs, cfg.lr) == (3, 0.002)  # overrides
    assert cfg.batch_size == 128  # the shortcut is applied last
    assert cfg.out_dir == str(tmp_path / "o y")
    # without --config: the schema's defaults; strings stay strings through the loader
    res = runner.invoke(cli, ["image", "train", "--device", "yes", "--no-linear-probe"])
    assert res.exit_code == 0, res.output
    assert captured["cfg"] == ImageTrainConfig(device="yes", linear_probe=False)


def test_unknown_keys_and_bad_values_are_one_error_line(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["image", "train", "--config", str(RECIPE), "epoch=3"])
    assert res.exit_code == 2
    line = one_error_line(res.output)
    assert "unknown config key 'epoch'" in line and "did you mean 'epochs'" in line
    assert "valid keys of the config: method, predictor" in line
    res = runner.invoke(cli, ["image", "train", "predictor=identity"])
    assert res.exit_code == 2
    assert "'predictor' must be one of 'mlp'" in one_error_line(res.output)
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: simsiam\nbackbon: small_cnn\n")
    res = runner.invoke(cli, ["image", "train", "--config", str(bad)])
    assert res.exit_code == 2
    line = one_error_line(res.output)
    assert str(bad) in line and "did you mean 'backbone'" in line
    res = runner.invoke(cli, ["image", "predictor-study", "widht=3"])
    assert res.exit_code == 2 and "did you mean 'width'" in one_error_line(res.output)


def test_predictor_study_config_and_overrides(captured: dict[str, Any], tmp_path: Path) -> None:
    settings = tmp_path / "study.yaml"
    settings.write_text("steps: 30\nvariants: [identity, offdiag]\nwidth: 8\n")
    res = CliRunner().invoke(
        cli,
        ["image", "predictor-study", "--config", str(settings), "presence=0.3",
         "--seeds", "0,2", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    cfg = captured["cfg"]
    assert (cfg.steps, cfg.variants, cfg.width) == (30, ("identity", "offdiag"), 8)
    assert (cfg.presence, cfg.seeds) == (0.3, (0, 2))


def test_a_short_run_from_the_recipe_writes_its_resolved_config(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        cli,
        ["image", "train", "--config", str(RECIPE), "epochs=1", "linear_probe=false",
         "--batch-size", "512", "--no-progress", "--num-threads", "1", "--out-dir", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| simsiam (offdiag_identity predictor) | digits |" in res.output
    saved = load_config(ImageTrainConfig, out / "config.yaml")
    assert (saved.method, saved.epochs, saved.batch_size) == ("simsiam", 1, 512)
    assert (saved.backbone, saved.optimizer) == ("small_cnn", "adamw")  # resolved defaults


def test_choices_are_the_registries() -> None:
    assert image_cli.METHODS is methods.METHODS is image_schema.METHODS
    assert heads.PREDICTORS is image_schema.PREDICTORS
    assert set(image_cli.TRAIN_PREDICTORS) == set(heads.PREDICTORS) - {"identity"}
    assert backbones.BACKBONES is image_schema.BACKBONES
    assert data.DATASETS is image_schema.DATASETS
    assert image_cli.VARIANTS is study_config.VARIANTS
    assert study_config.StudyConfig is StudyConfig
    assert image_train.ImageTrainConfig is ImageTrainConfig
    help_text = CliRunner().invoke(cli, ["image", "train", "--help"]).output
    assert "[byol|simsiam|barlow|vicreg]" in help_text and "configs/image_simsiam.yaml" in help_text
