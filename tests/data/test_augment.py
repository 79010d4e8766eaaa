"""On-device augmentation: SNR, reverberation, gain, banks, reproducibility, SpecAugment."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
import torch
from lhotse import CutSet, Recording

from dino_speech.audio import write_audio
from dino_speech.config import AugmentConfig
from dino_speech.data.augment import (
    SpecAugment,
    WaveAugment,
    add_noise_at_snr,
    fft_size,
    reverberate,
    windows,
)
from dino_speech.data.noise_bank import NoiseBank, musan_category, prepare_rir
from dino_speech.errors import ConfigError, DataError

SR = 16000
# small banks keep the tests fast; the maths does not depend on the bank size
SMALL = {
    "bank_size": 6,
    "synthetic_bank_size": 4,
    "bank_seconds": 1.5,
    "bank_refresh_size": 2,
    "rir_max_seconds": 0.25,
}


def _cfg(**kwargs: object) -> AugmentConfig:
    base = {"noise_prob": 0.0, "reverb_prob": 0.0, "gain_prob": 0.0, **SMALL}
    base.update(kwargs)
    return AugmentConfig(**base)  # type: ignore[arg-type]


def _speech(num: int, samples: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / SR
    f0 = 100 + 100 * torch.rand(num, 1, generator=g)
    env = torch.sin(2 * math.pi * 4 * t).abs()
    return 0.1 * torch.sin(2 * math.pi * f0 * t) * env + 0.01 * torch.randn(
        num, samples, generator=g
    )


def _snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(clean.square().mean(-1) / (noisy - clean).square().mean(-1))


def _cuts(tmp: Path, specs: list[tuple[str, str | None, torch.Tensor]]) -> CutSet:
    """Cuts of wav files written from ``(id, custom category or None, wave)``."""
    cuts = []
    for name, category, wave in specs:
        path = tmp / f"{name}.wav"
        write_audio(path, wave, SR)
        cut = Recording.from_file(path, recording_id=name).to_cut()
        if category is not None:
            cut.custom = {"category": category}
        cuts.append(cut)
    return CutSet.from_cuts(cuts)


def test_fft_size_is_smooth_and_large_enough() -> None:
    for n in [1, 7, 97, 1000, 79999, 123457]:
        size = fft_size(n)
        assert size >= n
        rest = size
        for p in (2, 3, 5):
            while rest % p == 0:
                rest //= p
        assert rest == 1
        assert size < 1.25 * n or size <= 8


def test_add_noise_hits_the_snr() -> None:
    clean = _speech(5, 8000)
    noise = torch.randn(5, 8000) * torch.linspace(0.1, 3, 5)[:, None]
    snr = torch.tensor([-5.0, 0.0, 7.5, 13.0, 20.0])
    mixed = add_noise_at_snr(clean, noise, snr)
    torch.testing.assert_close(_snr_db(clean, mixed), snr, atol=1e-3, rtol=0)
    silent = add_noise_at_snr(clean, torch.zeros_like(noise), snr)
    assert torch.equal(silent, clean)


def test_unit_impulse_reverb_is_identity_and_alignment_removes_delay() -> None:
    clean = _speech(3, 5000)
    delta = torch.zeros(3, 800)
    delta[:, 0] = 1.0
    torch.testing.assert_close(reverberate(clean, delta), clean, atol=1e-5, rtol=0)
    delayed = torch.zeros(800)
    delayed[123] = -0.5  # a negative, delayed direct path
    rir = prepare_rir(delayed, 400)
    assert rir is not None
    torch.testing.assert_close(reverberate(clean, rir.expand(3, -1)), -clean, atol=1e-5, rtol=0)
    assert prepare_rir(torch.zeros(100), 50) is None


def test_wave_augment_with_impulse_rirs_is_identity(tmp_path: Path) -> None:
    impulse = torch.zeros(800)
    impulse[300] = 0.5  # delayed, scaled: aligned and normalised to a unit impulse
    rirs = _cuts(tmp_path, [("rir-a", None, impulse), ("rir-b", None, -impulse)])
    aug = WaveAugment(_cfg(reverb_prob=1.0), SR, rir_cuts=rirs)
    clean = _speech(6, 7000)
    out = aug(clean, torch.Generator().manual_seed(0))
    assert torch.allclose(out.abs(), clean.abs(), atol=1e-5)
    assert aug(clean[:0], torch.Generator()).shape == (0, 7000)


def test_reverb_keeps_power_and_alignment() -> None:
    g = torch.Generator().manual_seed(0)
    clean = 0.1 * torch.randn(2, 16000, generator=g)  # white: its correlation peaks only at 0
    tail = torch.randn(2, 4000, generator=g) * torch.exp(-torch.arange(4000) / 800.0) * 0.05
    tail[:, 0] = 1.0
    wet = reverberate(clean, tail)
    torch.testing.assert_close(wet.square().mean(-1), clean.square().mean(-1), rtol=1e-4, atol=0)
    # the cross-correlation of wet and dry peaks at lag 0: the crop is not shifted
    for i in range(2):
        spec = torch.fft.rfft(wet[i], n=32768) * torch.fft.rfft(clean[i], n=32768).conj()
        xcorr = torch.fft.irfft(spec, n=32768)
        assert int(xcorr.argmax()) == 0


def test_windows_tiles_short_rows() -> None:
    rows = torch.arange(10.0).view(2, 5)
    out = windows(rows, torch.tensor([1, 0]), torch.tensor([0.0, 0.999]), 7)
    assert out[0].tolist() == [5, 6, 7, 8, 9, 5, 6]
    assert out[1].tolist() == [3, 4, 0, 1, 2, 3, 4]


def test_generated_noise_snr_per_category() -> None:
    cfg = _cfg(
        noise_prob=1.0, noise_snr=(0.0, 1.0), music_snr=(10.0, 11.0), babble_snr=(20.0, 21.0)
    )
    aug = WaveAugment(cfg, SR)
    assert aug.bank.synthetic_noise and aug.bank.categories == ["noise", "music", "speech"]
    clean = _speech(60, 12000)
    noisy = aug(clean, torch.Generator().manual_seed(1))
    snr = _snr_db(clean, noisy)
    ranges = [(0.0, 1.0), (10.0, 11.0), (20.0, 21.0)]
    hits = [((snr > lo - 1e-3) & (snr < hi + 1e-3)).sum().item() for lo, hi in ranges]
    assert sum(hits) == 60, snr
    assert min(hits) > 5  # every category is used


def test_babble_sums_several_talkers(tmp_path: Path) -> None:
    freqs = [200.0, 350.0, 500.0, 650.0]  # one pure tone per "talker"
    t = torch.arange(SR) / SR
    speech = [
        (f"speech-{i}", "speech", 0.3 * torch.sin(2 * math.pi * f * t)) for i, f in enumerate(freqs)
    ]
    cuts = _cuts(tmp_path, speech)
    clean = _speech(32, 4000)
    window = torch.hann_window(4000)
    tone_bins = [round(f * 4000 / SR) for f in freqs]

    def talkers_heard(speakers: tuple[int, int]) -> torch.Tensor:
        cfg = _cfg(noise_prob=1.0, babble_speakers=speakers, babble_snr=(0.0, 0.0), bank_size=16)
        aug = WaveAugment(cfg, SR, noise_cuts=cuts)
        assert aug.bank.categories == ["speech"]
        noisy = aug(clean, torch.Generator().manual_seed(0))
        torch.testing.assert_close(_snr_db(clean, noisy), torch.zeros(32), atol=1e-3, rtol=0)
        level = torch.fft.rfft((noisy - clean) * window).abs()[:, tone_bins]
        return (level > 0.3 * level.amax(dim=1, keepdim=True)).sum(dim=1)

    assert torch.all(talkers_heard((1, 1)) == 1)
    three = talkers_heard((3, 3))
    assert torch.all(three <= 3) and three.float().mean() > 2.0


def test_musan_and_rir_cuts_feed_the_bank(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = torch.Generator().manual_seed(0)
    specs = [(f"noise-{i}", None, 0.1 * torch.randn(SR // 2, generator=g)) for i in range(3)]
    specs += [(f"m{i}", "music", 0.2 * torch.randn(SR * 3, generator=g)) for i in range(2)]
    noise_cuts = _cuts(tmp_path, specs)
    (tmp_path / "noise-1.wav").unlink()  # one unreadable noise file
    rir = torch.zeros(SR // 4)
    rir[40] = 0.9
    rir[41:] = 0.01 * torch.randn(SR // 4 - 41, generator=g)
    rir_cuts = _cuts(tmp_path, [("rir-0", None, rir)])
    bank = NoiseBank(_cfg(), SR, noise_cuts, rir_cuts, seed=3)
    assert bank.categories == ["noise", "music"]
    with caplog.at_level(logging.WARNING):
        rows = bank.noise_rows("noise", 0, torch.device("cpu"))
    assert rows.shape == (6, int(1.5 * SR))
    assert torch.all(rows.square().mean(-1) > 1e-4)  # every slot holds noise; short files tiled
    assert sum("noise-1" in r.message for r in caplog.records) == 1  # warned once
    rirs = bank.rir_rows(0, torch.device("cpu"))
    assert rirs.shape == (6, SR // 4)
    assert torch.all(rirs.abs().argmax(-1) == 0)
    torch.testing.assert_close(rirs.square().sum(-1), torch.ones(6))


def test_noise_cuts_without_category_are_refused(tmp_path: Path) -> None:
    cuts = _cuts(tmp_path, [("thing", None, torch.zeros(100) + 0.1)])
    with pytest.raises(DataError, match="MUSAN category"):
        NoiseBank(_cfg(), SR, cuts)


def test_musan_category_inference(tmp_path: Path) -> None:
    cuts = _cuts(
        tmp_path,
        [("music-fma-0001", None, torch.ones(10) * 0.1), ("x", "speech", torch.ones(10) * 0.1)],
    )
    assert [musan_category(c) for c in cuts] == ["music", "speech"]


def test_rolling_refresh_equals_fresh_build() -> None:
    cfg = _cfg(synthetic_bank_size=5, bank_refresh_size=2, bank_seconds=0.2)
    cpu = torch.device("cpu")
    stepped = NoiseBank(cfg, SR, seed=7)
    seen = [stepped.noise_rows("noise", v, cpu).clone() for v in range(6)]
    for v in (1, 4, 5):
        fresh = NoiseBank(cfg, SR, seed=7).noise_rows("noise", v, cpu)
        assert torch.equal(fresh, seen[v])
    changed = [(seen[v] != seen[v - 1]).any(-1).sum().item() for v in range(1, 6)]
    assert changed == [2, 2, 2, 2, 2]
    assert not torch.equal(NoiseBank(cfg, SR, seed=8).noise_rows("noise", 0, cpu), seen[0])


def test_reproducible_and_resumable() -> None:
    cfg = _cfg(
        noise_prob=0.7, reverb_prob=0.5, gain_prob=0.5, bank_refresh_every=2, bank_seconds=0.4
    )
    clean = _speech(8, 6000)
    runs = []
    for _ in range(2):
        aug, g = WaveAugment(cfg, SR, seed=1), torch.Generator().manual_seed(5)
        runs.append([aug(clean, g) for _ in range(5)])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)
    # resume after 3 calls: the bank and the generator state are all that matter
    aug, g = WaveAugment(cfg, SR, seed=1), torch.Generator().manual_seed(5)
    for _ in range(3):
        aug(clean, g)
    resumed = WaveAugment(cfg, SR, seed=1)
    resumed.load_state_dict(aug.state_dict())
    g2 = torch.Generator()
    g2.set_state(g.get_state())
    assert torch.equal(resumed(clean, g2), runs[0][3])
    other = WaveAugment(cfg, SR, seed=1)(clean, torch.Generator().manual_seed(6))
    assert not torch.equal(other, runs[0][0])


def test_independent_draw_per_crop() -> None:
    cfg = _cfg(noise_prob=1.0, reverb_prob=0.5, gain_prob=1.0)
    same = _speech(1, 6000).expand(6, -1).contiguous()
    out = WaveAugment(cfg, SR)(same, torch.Generator().manual_seed(0))
    for i in range(6):
        for j in range(i):
            assert not torch.allclose(out[i], out[j])
    # a crop's augmentation does not depend on the other crops in the batch
    a = torch.cat([same[:1], _speech(3, 6000, seed=9)])
    b = torch.cat([same[:1], _speech(3, 6000, seed=10)])
    out_a = WaveAugment(cfg, SR)(a, torch.Generator().manual_seed(0))
    out_b = WaveAugment(cfg, SR)(b, torch.Generator().manual_seed(0))
    assert torch.equal(out_a[0], out_b[0])


def test_probabilities_and_gain() -> None:
    clean = _speech(400, 800)
    untouched = WaveAugment(_cfg(), SR)(clean, torch.Generator().manual_seed(0))
    assert torch.equal(untouched, clean)
    out = WaveAugment(_cfg(gain_prob=0.5, gain_db=(-6.0, 6.0)), SR)(
        clean, torch.Generator().manual_seed(0)
    )
    ratio_db = 20 * torch.log10(out.norm(dim=-1) / clean.norm(dim=-1))
    changed = ratio_db.abs() > 1e-4
    assert 0.4 < changed.float().mean().item() < 0.6
    assert ratio_db.min() >= -6.0 - 1e-3 and ratio_db.max() <= 6.0 + 1e-3
    out = WaveAugment(_cfg(noise_prob=0.3), SR)(clean, torch.Generator().manual_seed(0))
    noisy = (out - clean).abs().amax(-1) > 0
    assert 0.2 < noisy.float().mean().item() < 0.4


def test_specaugment_masks() -> None:
    cfg = AugmentConfig(
        specaug_prob=1.0, time_masks=2, time_mask_max=10, freq_masks=1, freq_mask_max=5
    )
    feats = torch.randn(50, 40, 20) + 5.0  # no exact zeros before masking
    lengths = torch.full((50,), 40)
    lengths[0] = 8
    out = SpecAugment(cfg)(feats, torch.Generator().manual_seed(0), lengths)
    zero = out == 0
    time_masked = zero.all(dim=2).sum(dim=1)  # frames masked across all bins
    freq_masked = zero.all(dim=1).sum(dim=1)
    assert torch.all(time_masked <= 20) and torch.all(freq_masked <= 5)
    assert time_masked.float().mean() > 3 and freq_masked.float().mean() > 1
    assert not zero[0, 8:].all(dim=1).any()  # time masks stay inside the length
    kept = ~zero
    assert torch.equal(out[kept], feats[kept])
    again = SpecAugment(cfg)(feats, torch.Generator().manual_seed(0), lengths)
    assert torch.equal(out, again)
    off = SpecAugment(AugmentConfig(specaug_prob=0.0))(feats, torch.Generator().manual_seed(0))
    assert torch.equal(off, feats)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("noise_prob", 1.5),
        ("music_snr", (18.0, 3.0)),
        ("babble_speakers", (0, 3)),
        ("bank_size", 0),
    ],
)
def test_bad_augment_config_is_a_config_error(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key):
        WaveAugment(_cfg(**{key: value}), SR)


def test_cpu_chunking_does_not_change_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crops are augmented a chunk at a time on a CPU; every crop keeps its own draw."""
    import dino_speech.data.augment as augment_module

    cfg = _cfg(noise_prob=0.8, reverb_prob=0.6, gain_prob=0.5, bank_seconds=0.4)
    clean = _speech(7, 6000, seed=3)
    whole = WaveAugment(cfg, SR, seed=2)(clean, torch.Generator().manual_seed(1))
    monkeypatch.setattr(augment_module, "_CPU_CHUNK_SAMPLES", 2 * 6000)  # chunks of 2 crops
    chunked = WaveAugment(cfg, SR, seed=2)(clean, torch.Generator().manual_seed(1))
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    assert not torch.equal(chunked, clean)
