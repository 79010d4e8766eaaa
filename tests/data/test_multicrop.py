"""Multi-crop dataset: crop geometry, tiling, resampling, seeding, bad-audio handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lhotse import AudioSource, CutSet, Recording

from dino_speech.audio import write_audio
from dino_speech.config import CropConfig
from dino_speech.data.multicrop import MultiCropDataset, trim_silence
from dino_speech.errors import ConfigError

SR = 16000
CROPS = CropConfig(num_global=2, global_seconds=0.5, num_local=3, local_seconds=0.25)


def _ramp(samples: int) -> torch.Tensor:
    """Distinct, exactly representable 16-bit values: a crop's first sample gives its start."""
    return (torch.arange(samples) % 30000 - 15000).float() / 32768


def _cut(path: Path, cut_id: str, *, sr: int = SR, seconds: float | None = None):
    if seconds is None:
        return Recording.from_file(path, recording_id=cut_id).to_cut()
    source = AudioSource(type="file", channels=[0], source=str(path))
    samples = int(seconds * sr)
    rec = Recording(cut_id, [source], sampling_rate=sr, num_samples=samples, duration=seconds)
    return rec.to_cut()


@pytest.fixture
def ramp_cut(tmp_path: Path):
    wave = _ramp(int(1.3 * SR))
    write_audio(tmp_path / "ramp.wav", wave, SR)
    return _cut(tmp_path / "ramp.wav", "ramp"), wave


def _start_of(crop: torch.Tensor, wave: torch.Tensor) -> int:
    start = int(torch.nonzero(wave == crop[0])[0])
    assert torch.equal(crop, wave[start : start + crop.shape[0]])
    return start


def test_batch_layout_and_crops_are_windows_of_the_audio(tmp_path: Path, ramp_cut) -> None:
    cut, wave = ramp_cut
    write_audio(tmp_path / "b.wav", _ramp(SR), SR)
    cuts = CutSet.from_cuts([cut, _cut(tmp_path / "b.wav", "b")])
    batch = MultiCropDataset(CROPS, SR, seed=0)[cuts]
    assert batch["global"].shape == (2, 2, 8000) and batch["global"].dtype == torch.float32
    assert batch["local"].shape == (3, 2, 4000)
    assert batch["global_lengths"].tolist() == [[8000, 8000]] * 2
    assert batch["local_lengths"].tolist() == [[4000, 4000]] * 3
    assert batch["cut_ids"] == ["ramp", "b"] and batch["num_skipped"] == 0
    starts = [_start_of(batch["global"][i, 0], wave) for i in range(2)]
    starts += [_start_of(batch["local"][i, 0], wave) for i in range(3)]
    assert len(set(starts)) == 5  # independent positions


def test_positions_cover_the_utterance(ramp_cut) -> None:
    cut, wave = ramp_cut
    dataset = MultiCropDataset(CROPS, SR, seed=1)
    starts = []
    for epoch in range(60):
        dataset.set_epoch(epoch)
        batch = dataset[CutSet.from_cuts([cut])]
        starts.append(_start_of(batch["global"][0, 0], wave))
    span = len(wave) - 8000
    assert min(starts) < 0.15 * span and max(starts) > 0.85 * span


def test_short_utterance_is_tiled(tmp_path: Path) -> None:
    wave = _ramp(3000)  # shorter than both crop lengths
    write_audio(tmp_path / "short.wav", wave, SR)
    batch = MultiCropDataset(CROPS, SR)[CutSet.from_cuts([_cut(tmp_path / "short.wav", "s")])]
    assert batch["cut_ids"] == ["s"]
    for crop in [*batch["global"][:, 0], *batch["local"][:, 0]]:
        start = int(torch.nonzero(wave == crop[0])[0])
        expected = wave[(start + torch.arange(crop.shape[0])) % 3000]
        assert torch.equal(crop, expected)


def test_other_rates_are_resampled(tmp_path: Path) -> None:
    t = torch.arange(8000) / 8000
    write_audio(tmp_path / "8k.wav", 0.5 * torch.sin(2 * torch.pi * 440 * t), 8000)
    cut = _cut(tmp_path / "8k.wav", "8k")
    batch = MultiCropDataset(CROPS, SR)[CutSet.from_cuts([cut])]
    crop = batch["global"][0, 0]
    assert crop.shape == (8000,)
    peak_hz = int(torch.fft.rfft(crop).abs().argmax()) * SR / 8000
    assert abs(peak_hz - 440) < 5


def test_crops_depend_on_seed_epoch_and_cut_only(tmp_path: Path, ramp_cut) -> None:
    cut, _ = ramp_cut
    write_audio(tmp_path / "c.wav", _ramp(2 * SR), SR)
    other = _cut(tmp_path / "c.wav", "c")
    dataset = MultiCropDataset(CROPS, SR, seed=3)
    together = dataset[CutSet.from_cuts([other, cut])]
    alone = MultiCropDataset(CROPS, SR, seed=3)[CutSet.from_cuts([cut])]
    assert torch.equal(together["global"][:, 1], alone["global"][:, 0])
    assert torch.equal(together["local"][:, 1], alone["local"][:, 0])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[CutSet.from_cuts([cut])]["global"], alone["global"])
    reseeded = MultiCropDataset(CROPS, SR, seed=4)[CutSet.from_cuts([cut])]
    assert not torch.equal(reseeded["global"], alone["global"])


def bad_cuts(tmp_path: Path) -> CutSet:
    """One good cut and one of each kind of bad audio the manifest still lists."""
    write_audio(tmp_path / "good.wav", _ramp(SR), SR)
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file" * 10)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), SR)
    nan = np.full(SR, 0.1, dtype=np.float32)
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    return CutSet.from_cuts(
        [
            _cut(tmp_path / "good.wav", "good"),
            _cut(tmp_path / "missing.wav", "missing", seconds=1.0),
            _cut(tmp_path / "garbage.wav", "garbage", seconds=1.0),
            _cut(tmp_path / "empty.wav", "empty", seconds=1.0),
            _cut(tmp_path / "nan.wav", "nan", seconds=1.0),
        ]
    )


def test_bad_audio_is_skipped_and_counted(tmp_path: Path) -> None:
    cuts = bad_cuts(tmp_path)
    batch = MultiCropDataset(CROPS, SR)[cuts]
    assert batch["cut_ids"] == ["good"]
    assert batch["num_skipped"] == 4
    assert [cut_id for cut_id, _ in batch["skipped"]] == ["missing", "garbage", "empty", "nan"]
    reasons = dict(batch["skipped"])
    assert "not found" in reasons["missing"] and "NaN" in reasons["nan"]
    assert batch["global"].shape == (2, 1, 8000)


def test_all_bad_gives_an_empty_batch(tmp_path: Path) -> None:
    cuts = bad_cuts(tmp_path).filter(lambda c: c.id != "good")
    batch = MultiCropDataset(CROPS, SR)[cuts.to_eager()]
    assert batch["cut_ids"] == [] and batch["num_skipped"] == 4
    assert batch["global"].shape == (2, 0, 8000) and batch["local"].shape == (3, 0, 4000)
    assert batch["global_lengths"].shape == (2, 0)


def test_invalid_crop_config() -> None:
    with pytest.raises(ConfigError, match="num_global"):
        MultiCropDataset(CropConfig(num_global=0), SR)
    with pytest.raises(ConfigError, match="local_seconds"):
        MultiCropDataset(CropConfig(local_seconds=0.0), SR)
    with pytest.raises(ConfigError, match="trim_db"):
        MultiCropDataset(CropConfig(trim_db=-1.0), SR)


def test_trim_silence_cuts_quiet_ends_and_keeps_pauses() -> None:
    frame = SR // 50
    loud = torch.ones(10 * frame) * 0.5
    quiet = torch.full((5 * frame,), 0.5 * 10 ** (-50 / 20))  # 50 dB below the loud frames
    wave = torch.cat([quiet, loud, quiet, loud, quiet[:-7]])
    trimmed = trim_silence(wave, SR, 40.0)
    assert torch.equal(trimmed, wave[5 * frame : 30 * frame])  # interior pause kept
    assert torch.equal(trim_silence(wave, SR, 60.0), wave[: (len(wave) // frame) * frame])
    assert torch.equal(trim_silence(torch.zeros(SR), SR, 40.0), torch.zeros(SR))
    assert torch.equal(trim_silence(loud[:frame], SR, 40.0), loud[:frame])


def test_trimmed_crops_hold_no_leading_or_trailing_silence(tmp_path: Path) -> None:
    speech = _ramp(int(0.6 * SR)) + 0.3  # never quiet
    wave = torch.cat([torch.zeros(int(0.4 * SR)), speech, torch.zeros(int(0.4 * SR))])
    write_audio(tmp_path / "q.wav", wave, SR)
    crops = CropConfig(num_global=2, global_seconds=0.5, num_local=3, local_seconds=0.25)
    trimmed = MultiCropDataset(CropConfig(**{**vars(crops), "trim_db": 40.0}), SR, seed=0)
    plain = MultiCropDataset(crops, SR, seed=0)
    cuts = CutSet.from_cuts([_cut(tmp_path / "q.wav", "q")])
    silent_frames = {True: 0, False: 0}
    for epoch in range(20):
        for dataset, key in ((trimmed, True), (plain, False)):
            dataset.set_epoch(epoch)
            batch = dataset[cuts]
            for name in ("global", "local"):
                frames = batch[name].reshape(-1, 200).abs().amax(dim=1)
                silent_frames[key] += int((frames < 1e-3).sum())
    assert silent_frames[True] == 0 and silent_frames[False] > 0


def test_spread_crops_take_one_stratum_each(ramp_cut) -> None:
    cut, wave = ramp_cut
    crops = CropConfig(num_global=2, global_seconds=0.5, num_local=3, local_seconds=0.25)
    spread = MultiCropDataset(CropConfig(**{**vars(crops), "spread": True}), SR, seed=0)
    independent = MultiCropDataset(crops, SR, seed=0)
    gaps = {True: [], False: []}
    for epoch in range(40):
        for dataset, key in ((spread, True), (independent, False)):
            dataset.set_epoch(epoch)
            batch = dataset[CutSet.from_cuts([cut])]
            g = sorted(_start_of(batch["global"][i, 0], wave) for i in range(2))
            gaps[key].append(g[1] - g[0])
            if key:
                span = len(wave) - 8000 + 1
                assert g[0] < span / 2 <= g[1] + 1  # one start in each half
                local = sorted(_start_of(batch["local"][i, 0], wave) for i in range(3))
                lspan = len(wave) - 4000 + 1
                for k, start in enumerate(local):
                    assert k * lspan // 3 - 1 <= start < (k + 1) * lspan / 3 + 1
    # spread crops lie further apart on average than independent draws
    assert np.mean(gaps[True]) > 1.3 * np.mean(gaps[False])


def test_spread_crops_of_a_short_utterance_are_tiled(tmp_path: Path) -> None:
    write_audio(tmp_path / "s.wav", _ramp(3000), SR)
    crops = CropConfig(num_global=2, global_seconds=0.5, num_local=0, spread=True)
    batch = MultiCropDataset(crops, SR, seed=0)[CutSet.from_cuts([_cut(tmp_path / "s.wav", "s")])]
    assert batch["global"].shape == (2, 1, 8000)
