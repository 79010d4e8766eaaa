"""`dino-speech train untrained`: the encoder DINO starts from, written as an embedder."""

from __future__ import annotations

from pathlib import Path

import torch
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.config import DinoExperimentConfig, save_config
from dino_speech.loading import load_embedder
from dino_speech.train.trainer import DinoTrainer, write_untrained_embedder


def test_untrained_embedder_is_the_dino_init(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    path = write_untrained_embedder(tiny_config, tmp_path / "untrained")
    encoder, fbank, meta = load_embedder(path)
    assert meta["source"] == "untrained" and fbank == tiny_config.data.features
    trainer = DinoTrainer(tiny_config, tmp_path / "dino", progress=False)  # built, not trained
    start = trainer.teacher.backbone.state_dict()
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, start[key]), key


def test_cli_writes_the_embedder(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    save_config(tiny_config, recipe)
    out = tmp_path / "exp"
    result = CliRunner().invoke(
        cli, ["train", "untrained", "--config", str(recipe), "--exp-dir", str(out), "train.seed=3"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "embedder.pt").is_file() and (out / "config.yaml").is_file()
    assert load_embedder(out / "embedder.pt")[2]["seed"] == 3


def test_rewritten_only_when_its_settings_change(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    from dino_speech.config import apply_overrides

    path = write_untrained_embedder(tiny_config, tmp_path / "untrained")
    stamp = path.stat().st_mtime_ns
    assert write_untrained_embedder(tiny_config, tmp_path / "untrained") == path
    assert path.stat().st_mtime_ns == stamp  # what embedded it stays up to date
    write_untrained_embedder(apply_overrides(tiny_config, ["train.seed=5"]), tmp_path / "untrained")
    assert path.stat().st_mtime_ns != stamp and load_embedder(path)[2]["seed"] == 5
