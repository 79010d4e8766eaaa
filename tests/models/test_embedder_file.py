"""The embedder package: save, load, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.errors import DataError
from dino_speech.loading import load_embedder
from dino_speech.models.embedder_file import EMBEDDER_FORMAT, save_embedder
from dino_speech.models.registry import build_encoder


def test_round_trip_gives_same_embeddings(tmp_path: Path) -> None:
    cfg = EncoderConfig(name="resnet_tiny", kwargs={"embed_dim": 48})
    feats = FbankConfig(num_mel_bins=40, mean_norm="utterance")
    encoder = build_encoder(cfg.name, feat_dim=40, **cfg.kwargs)
    for p in encoder.parameters():  # make it differ from a fresh init
        p.data.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "sub" / "embedder.pt"
    save_embedder(path, encoder, cfg, feats, {"step": 7})
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == EMBEDDER_FORMAT
    assert blob["encoder"] == {"name": "resnet_tiny", "kwargs": {"embed_dim": 48}, "feat_dim": 40}
    loaded, fbank, meta = load_embedder(path)
    assert fbank == feats
    assert meta == {"step": 7}
    assert not loaded.training
    x = torch.randn(2, 30, 40)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), encoder.eval()(x))
    # An experiment directory resolves to its embedder.pt.
    assert load_embedder(tmp_path / "sub")[2] == {"step": 7}
    assert not list(path.parent.glob("*.tmp"))


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="model not found"):
        load_embedder(tmp_path / "nope.pt")
    with pytest.raises(DataError, match="no embedder.pt"):
        load_embedder(tmp_path)
    torch.save({"state_dict": {}}, tmp_path / "x.pt")
    with pytest.raises(DataError, match="not a dino_speech embedder"):
        load_embedder(tmp_path / "x.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(DataError, match="cannot read"):
        load_embedder(tmp_path / "junk.pt")


def test_weights_that_do_not_fit(tmp_path: Path) -> None:
    cfg = EncoderConfig(name="resnet_tiny")
    encoder = build_encoder("resnet_tiny", feat_dim=40)
    save_embedder(tmp_path / "e.pt", encoder, cfg, FbankConfig(num_mel_bins=40))
    blob = torch.load(tmp_path / "e.pt", weights_only=True)
    blob["encoder"]["kwargs"] = {"embed_dim": 64}
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="do not fit"):
        load_embedder(tmp_path / "bad.pt")


def test_experiment_without_embedder_resolves_to_its_latest_checkpoint(tmp_path: Path) -> None:
    import os

    from dino_speech.loading import resolve_model_path
    from dino_speech.train.checkpoint import save_checkpoint

    ckpts = tmp_path / "exp" / "checkpoints"
    ckpts.mkdir(parents=True)
    save_checkpoint(ckpts, "step-00000010.pt", {"step": 10})
    save_checkpoint(ckpts, "epoch-0001.pt", {"step": 12})
    os.utime(ckpts / "step-00000010.pt", (2e9, 2e9))  # newer on disk, but not the latest
    assert resolve_model_path(tmp_path / "exp") == ckpts / "epoch-0001.pt"
    (ckpts / "latest").unlink()
    assert resolve_model_path(tmp_path / "exp") == ckpts / "step-00000010.pt"
