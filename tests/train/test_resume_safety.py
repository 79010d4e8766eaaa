"""Resume safety: an unreadable newest checkpoint falls back to the previous one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dino_speech.config import DinoExperimentConfig, apply_overrides
from dino_speech.errors import DataError
from dino_speech.train import checkpoint as ckpt
from dino_speech.train.trainer import DinoTrainer, train_dino


def test_truncated_newest_checkpoint_resumes_from_the_previous(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(tiny_config, ["train.epochs=1", "train.keep_last=1"])
    exp = tmp_path / "exp"
    train_dino(cfg, exp, progress=False)
    checkpoints = exp / "checkpoints"
    newest = checkpoints / "epoch-0001.pt"
    assert ckpt.find_latest(checkpoints) == newest
    assert (checkpoints / "step-00000003.pt").is_file()
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a copy cut short

    resumed = DinoTrainer(cfg, exp, progress=False)
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (3, 0, 3)
    log = (exp / "train.log").read_text()
    warning = next(line for line in log.splitlines() if "cannot read the newest" in line)
    assert str(newest) in warning and str(checkpoints / "step-00000003.pt") in warning
    # The bad file is kept (moved aside, so the next save cannot overwrite it).
    aside = checkpoints / "epoch-0001.pt.unreadable"
    assert aside.read_bytes() == data[: len(data) // 2]
    assert resumed.fit().steps == 4
    assert aside.is_file() and ckpt.load_checkpoint(newest)["step"] == 4


def test_nothing_readable_is_an_error(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    cfg = apply_overrides(
        tiny_config, ["train.epochs=1", "train.steps_per_epoch=1", "train.checkpoint_every=0"]
    )
    exp = tmp_path / "exp"
    train_dino(cfg, exp, progress=False)
    (exp / "checkpoints" / "epoch-0001.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="epoch-0001.pt: cannot read"):
        DinoTrainer(cfg, exp, progress=False)


def test_pruning_spares_the_checkpoint_before_the_newest(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    # keep_last=1 with epoch checkpoints only: the previous epoch's stays as the fallback.
    cfg = apply_overrides(
        tiny_config, ["train.epochs=3", "train.steps_per_epoch=1", "train.checkpoint_every=0",
                      "train.keep_last=1"],
    )  # fmt: skip
    train_dino(cfg, tmp_path / "exp", progress=False)
    names = sorted(p.name for p in (tmp_path / "exp" / "checkpoints").glob("*.pt"))
    assert names == ["epoch-0002.pt", "epoch-0003.pt"]


def test_resume_candidates_newest_first(tmp_path: Path) -> None:
    assert ckpt.resume_candidates(tmp_path) == []
    for t, name in enumerate(["step-00000001.pt", "epoch-0001.pt", "step-00000002.pt"]):
        path = ckpt.save_checkpoint(tmp_path, name, {})
        os.utime(path, ns=(10**18 + t * 10**9, 10**18 + t * 10**9))  # one second apart
    (tmp_path / "latest").write_text("epoch-0001.pt\n")  # as after a fallback
    names = [p.name for p in ckpt.resume_candidates(tmp_path)]
    assert names == ["epoch-0001.pt", "step-00000002.pt", "step-00000001.pt"]
    deleted = ckpt.prune_checkpoints(tmp_path, 1, 1, protect=[tmp_path / "step-00000001.pt"])
    assert deleted == []
