from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from dino_speech.audio import (
    AudioNotFoundError,
    AudioReadError,
    AudioTooShortError,
    EmptyAudioError,
    NonFiniteAudioError,
    audio_info,
    read_audio,
    read_cut,
    write_audio,
)
from dino_speech.errors import DinoSpeechError


def _tone(seconds: float, sr: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def test_reads_wav_and_flac_at_native_rate(tmp_path):
    tone = _tone(0.5, 16000)
    for suffix in ("wav", "flac"):
        path = tmp_path / f"a.{suffix}"
        sf.write(path, tone, 16000)
        wave = read_audio(path)
        assert wave.dtype == torch.float32 and wave.shape == (8000,)
        assert torch.allclose(wave, torch.from_numpy(tone), atol=1e-4)


def test_resamples_and_mixes_channels(tmp_path):
    left, right = _tone(1.0, 8000, 300), _tone(1.0, 8000, 500)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    assert audio_info(path) == (8000, 8000, 2)
    wave = read_audio(path, 16000)
    assert wave.shape == (16000,)
    native = read_audio(path, None)
    assert torch.allclose(native, torch.from_numpy((left + right) / 2), atol=1e-6)
    # energy of the resampled 300 Hz + 500 Hz mix sits at those frequencies
    spectrum = torch.fft.rfft(wave).abs()
    peaks = set(torch.topk(spectrum, 2).indices.tolist())
    assert peaks == {300, 500}


def test_segment_reading(tmp_path):
    data = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    seg = read_audio(path, offset=0.25, duration=0.5)
    assert seg.shape == (8000,)
    assert seg[0].item() == pytest.approx(data[4000], abs=1e-6)


def test_missing_unreadable_empty_short_and_nonfinite(tmp_path):
    with pytest.raises(AudioNotFoundError, match="nope.wav: audio file not found"):
        read_audio(tmp_path / "nope.wav")

    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF0000WAVEfmt nonsense")
    with pytest.raises(AudioReadError) as err:
        read_audio(garbage)
    assert err.value.path == str(garbage)

    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(EmptyAudioError, match="empty"):
        read_audio(empty)

    short = tmp_path / "short.wav"
    sf.write(short, _tone(0.1, 16000), 16000)
    with pytest.raises(AudioTooShortError, match="0.100 s long"):
        read_audio(short, min_seconds=0.5)

    nan = tmp_path / "nan.wav"
    bad = _tone(0.2, 16000)
    bad[10] = np.nan
    sf.write(nan, bad, 16000, subtype="FLOAT")
    with pytest.raises(NonFiniteAudioError, match="NaN"):
        read_audio(nan)

    for cls in (AudioNotFoundError, AudioReadError, EmptyAudioError, NonFiniteAudioError):
        assert issubclass(cls, DinoSpeechError)


@pytest.mark.parametrize(
    ("values", "finite"),
    [
        ([0.5, np.inf, -np.inf], False),  # the sum is NaN
        ([np.inf, 1.0], False),
        ([-0.5, np.nan], False),
        ([3e38, 3e38, -1.0], True),  # finite samples whose float32 sum overflows
    ],
)
def test_non_finite_samples_are_found_at_any_rate(tmp_path, values, finite):
    wave = _tone(0.2, 16000)
    wave[100 : 100 + len(values)] = values
    sf.write(tmp_path / "x.wav", wave, 16000, subtype="FLOAT")
    for rate in (16000, 8000):  # read as is, and resampled
        if finite:
            assert read_audio(tmp_path / "x.wav", rate).shape == (3200 * rate // 16000,)
        else:
            with pytest.raises(NonFiniteAudioError):
                read_audio(tmp_path / "x.wav", rate)


def test_write_then_read_round_trip(tmp_path):
    wave = torch.from_numpy(_tone(0.3, 16000))
    write_audio(tmp_path / "sub" / "x.wav", wave, 16000)
    again = read_audio(tmp_path / "sub" / "x.wav")
    assert torch.allclose(again, wave, atol=1 / 32768 + 1e-6)


def test_read_cut_reads_the_cut_segment(tmp_path):
    from lhotse import Recording

    data = np.linspace(-0.5, 0.5, 32000, dtype=np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    cut = Recording.from_file(path).to_cut().truncate(offset=0.5, duration=1.0)
    wave = read_cut(cut, 16000)
    assert wave.shape == (16000,)
    assert wave[0].item() == pytest.approx(data[8000], abs=1e-6)


def test_read_cut_takes_the_cut_channel(tmp_path):
    from lhotse import Recording
    from lhotse.cut import MonoCut

    left, right = _tone(0.5, 16000, 300), _tone(0.5, 16000, 500)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    recording = Recording.from_file(path)
    both = read_cut(recording.to_cut(), 16000)
    assert torch.allclose(both, torch.from_numpy((left + right) / 2), atol=1e-6)
    right_cut = MonoCut(id="r", start=0.0, duration=0.5, channel=1, recording=recording)
    assert torch.allclose(read_cut(right_cut, 16000), torch.from_numpy(right), atol=1e-6)


def test_read_cut_of_a_speed_perturbed_recording(tmp_path):
    from lhotse import Recording

    tone = _tone(1.0, 16000, 400)
    sf.write(tmp_path / "tone.wav", tone, 16000, subtype="FLOAT")
    cut = Recording.from_file(tmp_path / "tone.wav").to_cut().perturb_speed(1.25)
    wave = read_cut(cut, 16000)
    # the whole second played 1.25 times faster: 0.8 s, and the tone is now at 500 Hz
    assert wave.shape == (cut.num_samples,) and cut.num_samples == 12800
    spectrum = torch.fft.rfft(wave).abs()
    assert abs(int(spectrum.argmax()) * 16000 / wave.numel() - 500) < 3
    assert read_cut(cut, 8000).shape == (6400,)


def test_read_cut_with_one_file_per_channel(tmp_path):
    from lhotse import AudioSource, Recording
    from lhotse.cut import MonoCut

    left, right = _tone(0.5, 16000, 300), _tone(0.5, 16000, 500)
    sf.write(tmp_path / "left.wav", left, 16000, subtype="FLOAT")
    sf.write(tmp_path / "right.wav", right, 16000, subtype="FLOAT")
    sources = [
        AudioSource(type="file", channels=[0], source=str(tmp_path / "left.wav")),
        AudioSource(type="file", channels=[1], source=str(tmp_path / "right.wav")),
    ]
    recording = Recording("pair", sources, sampling_rate=16000, num_samples=8000, duration=0.5)
    right_cut = MonoCut(id="r", start=0.0, duration=0.5, channel=1, recording=recording)
    assert torch.allclose(read_cut(right_cut, 16000), torch.from_numpy(right), atol=1e-6)
    (tmp_path / "right.wav").unlink()
    with pytest.raises(AudioNotFoundError, match="right.wav"):
        read_cut(right_cut, 16000)
