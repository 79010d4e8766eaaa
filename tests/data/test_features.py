"""Fbank parity with torchaudio's Kaldi fbank, mean normalisation against direct loops."""

from __future__ import annotations

import math

import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from dino_speech.config import FbankConfig
from dino_speech.data.features import Fbank, sliding_mean_norm, utterance_mean_norm
from dino_speech.errors import ConfigError


def _reference(wave: torch.Tensor, cfg: FbankConfig) -> torch.Tensor:
    """torchaudio's Kaldi fbank in float64 (the exact value; float32 itself differs by ~1e-4)."""
    return kaldi.fbank(
        (wave.double() * cfg.wave_scale)[None],
        num_mel_bins=cfg.num_mel_bins,
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        sample_frequency=cfg.sample_rate,
        dither=0.0,
        window_type="povey",
        preemphasis_coefficient=0.97,
        remove_dc_offset=True,
        snip_edges=True,
        use_energy=False,
        use_power=True,
        use_log_fbank=True,
    ).float()


def _speech_like(samples: int, sample_rate: int, seed: int) -> torch.Tensor:
    """Harmonics with a wandering pitch, syllable-rate envelope, silences and a DC offset."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / sample_rate
    f0 = 120 + 40 * torch.sin(2 * math.pi * 0.7 * t + torch.rand(1, generator=g) * 6)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 15))
    envelope = torch.sin(2 * math.pi * 4.0 * t).clamp(min=0) ** 2
    envelope[: samples // 5] = 0.0  # a stretch of digital silence hits the log floor
    noise = 0.01 * torch.randn(samples, generator=g)
    return 0.3 * voiced * envelope + noise + 0.02


CONFIGS = [
    FbankConfig(mean_norm="none"),
    FbankConfig(mean_norm="none", num_mel_bins=40, low_freq=0.0, high_freq=0.0),
    FbankConfig(mean_norm="none", frame_length_ms=20.0, frame_shift_ms=12.5, high_freq=-400.0),
    FbankConfig(mean_norm="none", sample_rate=8000, low_freq=20.0, high_freq=3800.0),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.sample_rate}-{c.num_mel_bins}")
@pytest.mark.parametrize("seconds", [0.025, 0.0251, 1.0, 2.3456])
def test_fbank_matches_torchaudio_kaldi(cfg: FbankConfig, seconds: float) -> None:
    fbank = Fbank(cfg)
    samples = int(seconds * cfg.sample_rate)
    g = torch.Generator().manual_seed(samples)
    noise = 0.1 * torch.randn(samples, generator=g)
    for wave in (noise, _speech_like(samples, cfg.sample_rate, seed=3)):
        ref = _reference(wave, cfg)
        feats, frame_lengths = fbank(wave[None])
        assert feats.shape == (1, ref.shape[0], cfg.num_mel_bins)
        assert frame_lengths.tolist() == [ref.shape[0]]
        torch.testing.assert_close(feats[0], ref, atol=1e-3, rtol=0)


def test_padded_batch_equals_one_by_one() -> None:
    cfg = FbankConfig(mean_norm="none")
    fbank = Fbank(cfg)
    lengths = torch.tensor([16000, 9001, 400, 399, 12000])
    waves = torch.zeros(len(lengths), int(lengths.max()))
    for i, n in enumerate(lengths.tolist()):
        waves[i, :n] = _speech_like(n, 16000, seed=i)
        waves[i, n:] = 5.0  # junk padding must not leak into any valid frame
    feats, frame_lengths = fbank(waves, lengths)
    assert frame_lengths.tolist() == [98, 54, 1, 0, 73]
    for i, n in enumerate(lengths.tolist()):
        valid = int(frame_lengths[i])
        if valid:
            ref = _reference(waves[i, :n], cfg)
            torch.testing.assert_close(feats[i, :valid], ref, atol=1e-3, rtol=0)
        assert torch.all(feats[i, valid:] == 0)


def test_shorter_than_one_frame_gives_zero_frames() -> None:
    feats, frame_lengths = Fbank(FbankConfig())(torch.randn(3, 100))
    assert feats.shape == (3, 0, 80)
    assert frame_lengths.tolist() == [0, 0, 0]


def test_empty_batch() -> None:
    for mode in ("sliding", "utterance", "none"):
        feats, frame_lengths = Fbank(FbankConfig(mean_norm=mode))(torch.zeros(0, 16000))
        assert feats.shape == (0, 98, 80) and frame_lengths.shape == (0,)


def _kaldi_sliding_cmn_loop(feats: torch.Tensor, window: int) -> torch.Tensor:
    """Kaldi's SlidingWindowCmn with center=true, norm_vars=false, written as a plain loop."""
    n = feats.shape[0]
    out = torch.empty_like(feats)
    for t in range(n):
        start = t - window // 2
        end = start + window
        if start < 0:
            end -= start
            start = 0
        if end > n:
            start -= end - n
            end = n
            start = max(start, 0)
        out[t] = feats[t] - feats[start:end].double().mean(dim=0).float()
    return out


@pytest.mark.parametrize("window", [150, 7, 1, 400])
def test_sliding_mean_norm_matches_kaldi_loop(window: int) -> None:
    g = torch.Generator().manual_seed(window)
    lengths = torch.tensor([300, 151, 149, 75, 1, 0])
    feats = 3.0 * torch.randn(len(lengths), 300, 5, generator=g) + 12.0
    out = sliding_mean_norm(feats, lengths, window)
    for i, n in enumerate(lengths.tolist()):
        if n:
            expected = _kaldi_sliding_cmn_loop(feats[i, :n], window)
            torch.testing.assert_close(out[i, :n], expected, atol=1e-4, rtol=0)
        assert torch.all(out[i, n:] == 0)


@pytest.mark.parametrize("lengths", [[120, 120, 120], [120, 120, 60]], ids=["full", "padded"])
def test_sliding_mean_norm_paths_agree(lengths: list[int]) -> None:
    """The in-place path (fixed-size crops, or padded batches) equals the autograd path, and
    gradients flow through the latter."""
    g = torch.Generator().manual_seed(len(lengths))
    feats = 2.0 * torch.randn(len(lengths), 120, 6, generator=g) + 5.0
    frame_lengths = torch.tensor(lengths)
    fast = sliding_mean_norm(feats, frame_lengths, 50)
    leaf = feats.clone().requires_grad_(True)
    plain = sliding_mean_norm(leaf, frame_lengths, 50)
    torch.testing.assert_close(fast, plain.detach(), atol=1e-5, rtol=0)
    plain.square().sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    for i, n in enumerate(lengths):
        torch.testing.assert_close(
            fast[i, :n], _kaldi_sliding_cmn_loop(feats[i, :n], 50), atol=1e-4, rtol=0
        )


def test_utterance_mean_norm_respects_lengths() -> None:
    feats = torch.randn(3, 20, 4) + 7.0
    lengths = torch.tensor([20, 11, 0])
    out = utterance_mean_norm(feats, lengths)
    for i, n in enumerate(lengths.tolist()):
        if n:
            torch.testing.assert_close(out[i, :n], feats[i, :n] - feats[i, :n].mean(0))
        assert torch.all(out[i, n:] == 0)


@pytest.mark.parametrize("mode", ["sliding", "utterance"])
def test_fbank_applies_mean_norm(mode: str) -> None:
    raw_cfg = FbankConfig(mean_norm="none")
    cfg = FbankConfig(mean_norm=mode, mean_norm_window=50)
    wave = _speech_like(24000, 16000, seed=1)
    raw, lengths = Fbank(raw_cfg)(wave[None])
    normed, _ = Fbank(cfg)(wave[None])
    if mode == "utterance":
        expected = raw[0] - raw[0].mean(0)
    else:
        expected = _kaldi_sliding_cmn_loop(raw[0], 50)
    torch.testing.assert_close(normed[0], expected, atol=1e-4, rtol=0)


def test_fbank_under_autocast_stays_float32() -> None:
    fbank = Fbank(FbankConfig())
    wave = _speech_like(8000, 16000, seed=2)[None]
    plain, _ = fbank(wave)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto, _ = fbank(wave)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, plain)


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="high_freq"):
        Fbank(FbankConfig(low_freq=100.0, high_freq=9000.0))
    with pytest.raises(ConfigError, match="mean_norm_window"):
        Fbank(FbankConfig(mean_norm_window=0))(torch.randn(1, 4000))
