"""Checkpoint files: atomic writes, finding the newest, pruning, averaging, RNG round trip."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dino_speech.errors import DataError
from dino_speech.train import checkpoint as ckpt


def test_save_find_and_load(tmp_path: Path) -> None:
    assert ckpt.find_latest(tmp_path) is None
    ckpt.save_checkpoint(tmp_path, ckpt.checkpoint_name(10), {"step": 10})
    ckpt.save_checkpoint(tmp_path, ckpt.checkpoint_name(20, epoch=1), {"step": 20})
    latest = ckpt.find_latest(tmp_path)
    assert latest is not None and latest.name == "epoch-0001.pt"
    assert ckpt.load_checkpoint(latest)["step"] == 20
    assert not list(tmp_path.glob(".*tmp"))
    # A stale pointer falls back to the newest file.
    (tmp_path / "latest").write_text("gone.pt\n")
    assert ckpt.find_latest(tmp_path) is not None


def test_load_rejects_foreign_files(tmp_path: Path) -> None:
    torch.save({"x": 1}, tmp_path / "a.pt")
    with pytest.raises(DataError, match="not a dino_speech training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "a.pt")
    (tmp_path / "b.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        ckpt.load_checkpoint(tmp_path / "b.pt")


def test_prune_keeps_newest_of_each_kind(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, ckpt.checkpoint_name(step), {})
    for epoch in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path, ckpt.checkpoint_name(0, epoch=epoch), {})
    deleted = ckpt.prune_checkpoints(tmp_path, keep_steps=2, keep_epochs=1)
    assert sorted(p.name for p in deleted) == [
        "epoch-0001.pt",
        "epoch-0002.pt",
        "step-00000001.pt",
        "step-00000002.pt",
    ]
    assert [p.name for p in ckpt.epoch_checkpoints(tmp_path)] == ["epoch-0003.pt"]
    assert ckpt.prune_checkpoints(tmp_path, 0, 0) == []


def test_average_state_dicts() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    out = ckpt.average_state_dicts([a, b])
    torch.testing.assert_close(out["w"], torch.tensor([2.0, 4.0]))
    assert int(out["n"]) == 5
    with pytest.raises(DataError):
        ckpt.average_state_dicts([a, {"w": a["w"]}])


def test_rng_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    torch.rand(5, generator=gen)
    state = ckpt.capture_rng(gen)
    ckpt.save_checkpoint(tmp_path, "step-00000001.pt", {"rng": state})
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    gen.manual_seed(99)
    ckpt.restore_rng(ckpt.load_checkpoint(tmp_path / "step-00000001.pt")["rng"], gen)
    again = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(3, generator=gen))
    torch.testing.assert_close(again[0], expected[0])
    np.testing.assert_array_equal(again[1], expected[1])
    assert again[2] == expected[2]
    torch.testing.assert_close(again[3], expected[3])
