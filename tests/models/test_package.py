"""The embedder package: save, load, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.errors import DataError
from dino_speech.models.package import EMBEDDER_FORMAT, load_embedder, save_embedder
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
