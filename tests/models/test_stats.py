"""The parameter-free statistics encoder and the built-in ``logmel-stats`` model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

from dino_speech import Embedder
from dino_speech.audio import read_audio, write_audio
from dino_speech.errors import ConfigError, DataError
from dino_speech.loading import load_embedder
from dino_speech.models.registry import build_encoder
from dino_speech.models.stats import FeatureStats, builtin_model, list_builtin_models


def test_feature_stats_matches_torch_mean_std_with_lengths() -> None:
    torch.manual_seed(0)
    feats = torch.randn(3, 50, 6)
    lengths = torch.tensor([50, 17, 2])
    out = FeatureStats(6)(feats, lengths)
    assert out.shape == (3, 12)
    for i, n in enumerate(lengths.tolist()):
        x = feats[i, :n]
        expected = torch.cat([x.mean(0), x.std(0)])  # torch.std is unbiased
        assert torch.allclose(out[i], expected, atol=1e-5)
    # frames past the length do not matter
    changed = feats.clone()
    changed[1, 17:] = 1e6
    assert torch.allclose(FeatureStats(6)(changed, lengths), out)


def test_feature_stats_edge_cases_and_errors() -> None:
    stats = FeatureStats(4, unbiased=False)
    one = stats(torch.ones(1, 1, 4) * 3.0)
    assert torch.equal(one, torch.tensor([[3.0, 3.0, 3.0, 3.0, 0.0, 0.0, 0.0, 0.0]]))
    empty = stats(torch.randn(1, 5, 4), torch.tensor([0]))
    assert torch.equal(empty, torch.zeros(1, 8))
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        stats(torch.randn(2, 5, 3))
    with pytest.raises(ConfigError):
        FeatureStats(0)
    assert sum(p.numel() for p in stats.parameters()) == 0


def test_registry_builds_it_for_any_feature_size() -> None:
    encoder = build_encoder("logmel_stats", feat_dim=24)
    assert encoder.embed_dim == 48


def test_builtin_names_and_unknown_name() -> None:
    assert list_builtin_models() == ["logmel-stats"]
    with pytest.raises(ConfigError, match="built-in models: logmel-stats"):
        builtin_model("mfcc-stats")
    _, features, meta = builtin_model("logmel-stats")
    assert features.num_mel_bins == 40 and features.mean_norm == "none"
    assert meta["builtin"] == "logmel-stats"


def kaldi_logmel_stats(wave: torch.Tensor) -> np.ndarray:
    """The baseline of ``bench/baseline_logmel.py``: Kaldi fbank, 40 bands, mean + std."""
    fb = torchaudio.compliance.kaldi.fbank(
        wave[None] * 32768.0, num_mel_bins=40, dither=0.0, sample_frequency=16000
    )
    return torch.cat([fb.mean(0), fb.std(0)]).numpy()


def test_builtin_model_reproduces_the_kaldi_logmel_baseline(tmp_path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    waves = [
        0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size),
        0.1 * rng.standard_normal(16000 * 3 + 123),  # a different length: batch padding
    ]
    paths = []
    for i, w in enumerate(waves):
        paths.append(tmp_path / f"u{i}.wav")
        write_audio(paths[-1], torch.tensor(w, dtype=torch.float32), 16000)
    embedder = Embedder.from_pretrained("logmel-stats", device="cpu")
    assert embedder.embed_dim == 80 and embedder.sample_rate == 16000
    got = embedder.embed_files(paths, batch_size=2, progress=False)
    for path, row in zip(paths, got, strict=True):
        expected = kaldi_logmel_stats(read_audio(path))
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=2e-3)


def test_an_existing_path_wins_over_the_builtin_name(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logmel-stats").mkdir()
    with pytest.raises(DataError, match="no embedder.pt"):
        load_embedder("logmel-stats")


def test_missing_model_message_names_the_builtins(tmp_path) -> None:
    with pytest.raises(DataError, match="nor is it a built-in model: logmel-stats"):
        load_embedder(tmp_path / "nope")
