"""``dino-speech train dino``: help, overrides, errors, a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.config import DinoExperimentConfig, load_config, save_config

REPO = Path(__file__).resolve().parents[2]
NAMES = ("dino_lresnet34_paper.yaml", "dino_ecapa_c512.yaml", "mini.yaml")
RECIPES = [REPO / "configs" / name for name in NAMES]


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def test_help_explains_overrides() -> None:
    code, out = run(["train", "dino", "--help"])
    assert code == 0
    for word in ("--config", "--exp-dir", "--resume", "--device", "OVERRIDES", "torchrun"):
        assert word in out


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_configs_load(recipe: Path) -> None:
    cfg = load_config(DinoExperimentConfig, recipe)
    assert cfg.data.train_cuts


def test_configs_hold_the_reference_settings() -> None:
    cfg = load_config(
        DinoExperimentConfig, RECIPES[1] if "lresnet" in RECIPES[1].name else RECIPES[0]
    )
    assert cfg.model.name == "lresnet34" and cfg.dino.out_dim == 65536
    assert (cfg.data.crops.num_global, cfg.data.crops.global_seconds) == (2, 4.0)
    assert (cfg.data.crops.num_local, cfg.data.crops.local_seconds) == (4, 2.0)
    assert cfg.dino.teacher_temp == 0.04 and cfg.dino.student_temp == 0.1
    assert cfg.optim.name == "adam" and cfg.optim.amsgrad and cfg.train.epochs == 70
    wespeaker = load_config(DinoExperimentConfig, RECIPES[1])
    assert wespeaker.model.name == "ecapa_c512" and wespeaker.dino.use_bn
    assert (wespeaker.dino.warmup_teacher_temp, wespeaker.dino.teacher_temp) == (0.04, 0.07)
    assert wespeaker.dino.warmup_teacher_temp_epochs == 0.2 * wespeaker.train.epochs
    assert (wespeaker.optim.name, wespeaker.optim.lr, wespeaker.optim.clip_grad) == (
        "sgd",
        0.2,
        3.0,
    )


def test_bad_override_is_one_error_line(tmp_path: Path) -> None:
    code, out = run(
        ["train", "dino", "--config", str(RECIPES[-1]), "--exp-dir", str(tmp_path), "optim.lrr=1"]
    )
    assert code == 2
    assert "Error: " in out and "unknown config key 'optim.lrr'" in out and "Traceback" not in out


def test_unknown_encoder_is_one_error_line(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    save_config(tiny_config, tmp_path / "cfg.yaml")
    code, out = run(
        ["train", "dino", "--config", str(tmp_path / "cfg.yaml"), "--exp-dir",
         str(tmp_path / "exp"), "model.name=ecapa_big"]
    )  # fmt: skip
    assert code == 2 and "valid encoders" in out


def test_train_from_the_command_line(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    save_config(tiny_config, tmp_path / "cfg.yaml")
    exp = tmp_path / "exp"
    args = ["train", "dino", "--config", str(tmp_path / "cfg.yaml"), "--exp-dir", str(exp)]
    code, out = run([*args, "--quiet", "--device", "cpu", "train.epochs=1"])
    assert code == 0, out
    assert "4/4 steps" in out and (exp / "embedder.pt").is_file()
    assert load_config(DinoExperimentConfig, exp / "config.yaml").train.epochs == 1
    code, out = run([*args, "--no-resume"])
    assert code == 2 and "already holds checkpoints" in out
