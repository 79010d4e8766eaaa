"""Training runs on digits and the ``dino-speech image`` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dino_speech.cli import image as image_cli
from dino_speech.cli.main import cli
from dino_speech.errors import ConfigError
from dino_speech.image import heads, methods, study_config
from dino_speech.image.report import format_results_table, load_runs
from dino_speech.image.train import (
    ImageTrainConfig,
    load_image_encoder,
    resolve,
    train_image_ssl,
)


def test_cli_choices_match_the_library() -> None:
    assert image_cli.METHODS == methods.METHODS
    assert set(image_cli.TRAIN_PREDICTORS) == set(heads.PREDICTORS) - {"identity"}
    assert image_cli.VARIANTS is study_config.VARIANTS


def test_resolve_fills_dataset_defaults() -> None:
    cfg = resolve(ImageTrainConfig(dataset="digits", batch_size=128))
    assert (cfg.backbone, cfg.head_scale, cfg.optimizer) == ("small_cnn", "small", "adamw")
    assert cfg.lr == pytest.approx(1e-3)
    cifar = resolve(ImageTrainConfig(dataset="cifar10", lr=0.1))
    assert (cifar.backbone, cifar.optimizer, cifar.lr) == ("resnet18_cifar", "sgd", 0.1)
    with pytest.raises(ConfigError):
        resolve(ImageTrainConfig(epochs=0))
    assert resolve(ImageTrainConfig(method="simsiam")).predictor == "mlp"
    assert resolve(ImageTrainConfig(method="vicreg")).predictor is None
    with pytest.raises(ConfigError, match="has no predictor"):
        resolve(ImageTrainConfig(method="barlow", predictor="linear"))
    with pytest.raises(ConfigError, match="valid methods"):
        resolve(ImageTrainConfig(method="moco"))


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # the CI machine has 2 shared cores: one torch thread avoids oversubscription stalls
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_short_run_learns_and_writes_everything(tmp_path: Path) -> None:
    cfg = ImageTrainConfig(method="simsiam", predictor="offdiag_identity", epochs=3,
                           batch_size=128, warmup_epochs=1, linear_probe=False,
                           out_dir=str(tmp_path / "run"))  # fmt: skip
    result = train_image_ssl(cfg, progress=False)
    losses = result["epoch_losses"]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.05  # -cos falls as views align
    assert set(result["results"]) == {"ssl", "random_init", "raw_pixels"}
    for key in ("knn@20", "knn@200", "std", "eff_rank", "offdiag_corr"):
        assert key in result["results"]["ssl"]
    assert "linear" not in result["results"]["ssl"]
    assert result["results"]["raw_pixels"]["dim"] == 64
    # the saved encoder reproduces the trained backbone's features
    encoder = load_image_encoder(tmp_path / "run")
    assert encoder(torch.zeros(2, 1, 8, 8)).shape == (2, 512)
    run = load_runs([tmp_path / "run"])[0]
    assert run["results"]["ssl"] == pytest.approx(result["results"]["ssl"])
    table = format_results_table([run])
    assert "simsiam (offdiag_identity predictor)" in table
    assert "random init (small_cnn, seed 0)" in table and "raw pixels" in table
    assert result["collapsed"] is False and "[collapsed]" not in table
    run["collapsed"] = True
    assert "simsiam (offdiag_identity predictor) [collapsed]" in format_results_table([run])


@pytest.mark.slow
def test_short_byol_run_beats_random_init_on_digits() -> None:
    # ~1-2 minutes on 2 cores: BYOL for 40 epochs lifts kNN@20 and the linear probe above the
    # same backbone at random init (about 95.6 % and 98.0 %) on the fixed digits test split.
    result = train_image_ssl(ImageTrainConfig(method="byol", epochs=40), progress=False)
    ssl, init = result["results"]["ssl"], result["results"]["random_init"]
    assert ssl["knn@20"] > init["knn@20"]
    assert ssl["linear"] >= init["linear"]


def test_cli_train_report_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "barlow"
    res = runner.invoke(cli, ["image", "train", "--method", "barlow", "--epochs", "1",
                              "--batch-size", "512", "--no-linear-probe", "--no-progress",
                              "--num-threads", "1", "--out-dir", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| barlow | digits |" in res.output and (out / "metrics.json").is_file()
    res = runner.invoke(cli, ["image", "report", str(out), str(out / "metrics.json")])
    assert res.exit_code == 0 and res.output.count("| barlow |") == 2

    res = runner.invoke(cli, ["image", "train", "--method", "vicreg", "--predictor", "mlp"])
    assert res.exit_code == 2 and "has no predictor" in res.output
    res = runner.invoke(cli, ["image", "train", "--dataset", "cifar10",
                              "--data-dir", str(tmp_path / "nowhere")])  # fmt: skip
    assert res.exit_code == 2 and "CIFAR-10 not found" in res.output
    res = runner.invoke(cli, ["image", "train", "--method", "moco"])
    assert res.exit_code == 2 and "byol" in res.output
    res = runner.invoke(cli, ["image", "report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no metrics file" in res.output


def test_cli_predictor_study(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["image", "predictor-study", "--seeds", "0", "--steps", "20",
                              "--variants", "identity,offdiag", "--no-progress",
                              "--json-out", str(tmp_path / "study.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "(c) identity + trainable off-diag" in res.output
    rows = json.loads((tmp_path / "study.json").read_text())
    assert [r["variant"] for r in rows] == ["identity", "offdiag"]
    res = runner.invoke(cli, ["image", "predictor-study", "--variants", "bogus"])
    assert res.exit_code == 2 and "unknown variant" in res.output
    res = runner.invoke(cli, ["image", "predictor-study", "--seeds", "a,b"])
    assert res.exit_code == 2


def test_help_lists_every_option() -> None:
    runner = CliRunner()
    for cmd in ("train", "predictor-study", "report"):
        res = runner.invoke(cli, ["image", cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output
    assert "--predictor" in runner.invoke(cli, ["image", "train", "--help"]).output
