"""Recording channels of the synthetic corpus: room, background noise, equaliser, band limit, level.

Every session of a speaker gets its own :class:`Channel` (microphone and room: smooth random
EQ, a tilt, a few peaking bands, a band limit from telephone to wideband, optional
reverberation, a background-noise colour and level, a recording level). Each recording in the
session perturbs it a little (:func:`perturb_channel`): the mic moves, the noise level
changes. So channels are partially shared within a session and differ across sessions, and a
speaker can only be recognised from what survives a channel change.

:func:`apply_channel` runs room -> noise -> EQ/band limit -> level, in numpy on a whole
utterance (zero-phase FFT filtering).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

__all__ = ["Channel", "apply_channel", "perturb_channel", "sample_channel"]

_BAND_LIMITS = {
    # name: (probability, high-pass range Hz, low-pass range Hz)
    "wideband": (0.45, (30.0, 120.0), (6500.0, 7900.0)),
    "medium": (0.35, (80.0, 250.0), (3800.0, 6500.0)),
    "telephone": (0.20, (250.0, 400.0), (3100.0, 3700.0)),
}


@dataclass(frozen=True)
class Channel:
    """One recording channel (all gains in dB)."""

    eq_cos_db: tuple[float, ...]  # smooth EQ: cosine series over log frequency (50 Hz - 8 kHz)
    eq_phase: tuple[float, ...]
    tilt_db_oct: float  # slope around 1 kHz
    peaks: tuple[tuple[float, float, float], ...]  # (centre Hz, gain dB, width octaves)
    band: str  # key of the band limits
    highpass_hz: float
    lowpass_hz: float
    filter_order: int
    rt60_s: float  # 0: no reverberation
    noise_colour: float  # noise power spectrum ~ 1 / f**colour (0 white, 1 pink, 2 brown)
    hum_hz: float  # mains hum fundamental, 0: none
    snr_db: float  # speech-to-noise ratio over active speech
    level_dbfs: float  # active-speech RMS of the finished recording

    def to_dict(self) -> dict:
        return asdict(self)


def sample_channel(rng: np.random.Generator, strength: float = 1.0) -> Channel:
    """Draw a session channel; ``strength`` scales all EQ gains (1.0: the corpus default)."""
    names = list(_BAND_LIMITS)
    band = names[int(rng.choice(len(names), p=[_BAND_LIMITS[b][0] for b in names]))]
    _, hp, lp = _BAND_LIMITS[band]
    num_peaks = int(rng.integers(0, 4))
    peaks = tuple(
        (
            float(np.exp(rng.uniform(np.log(150.0), np.log(6000.0)))),
            float(rng.normal(0.0, 6.0 * strength)),
            float(rng.uniform(0.3, 1.5)),
        )
        for _ in range(num_peaks)
    )
    return Channel(
        eq_cos_db=tuple(float(rng.normal(0.0, 4.0 * strength / k)) for k in range(1, 6)),
        eq_phase=tuple(float(rng.uniform(0.0, 2 * np.pi)) for _ in range(5)),
        tilt_db_oct=float(rng.normal(0.0, 1.5 * strength)),
        peaks=peaks,
        band=band,
        highpass_hz=float(rng.uniform(*hp)),
        lowpass_hz=float(rng.uniform(*lp)),
        filter_order=int(rng.integers(3, 9)),
        rt60_s=float(rng.uniform(0.15, 0.6)) if rng.random() < 0.4 else 0.0,
        noise_colour=float(rng.uniform(0.5, 2.0)),
        hum_hz=float(rng.choice([50.0, 60.0])) if rng.random() < 0.15 else 0.0,
        snr_db=float(rng.uniform(10.0, 30.0)),
        level_dbfs=float(rng.uniform(-32.0, -18.0)),
    )


def perturb_channel(channel: Channel, rng: np.random.Generator) -> Channel:
    """The session's channel for one recording: small EQ, noise-level and level changes."""
    return replace(
        channel,
        eq_cos_db=tuple(g + float(rng.normal(0.0, 1.0)) for g in channel.eq_cos_db),
        tilt_db_oct=channel.tilt_db_oct + float(rng.normal(0.0, 0.3)),
        peaks=tuple((f, g + float(rng.normal(0.0, 1.0)), w) for f, g, w in channel.peaks),
        snr_db=float(np.clip(channel.snr_db + rng.normal(0.0, 3.0), 7.0, 35.0)),
        level_dbfs=channel.level_dbfs + float(rng.normal(0.0, 2.0)),
    )


def _magnitude(channel: Channel, freqs: np.ndarray) -> np.ndarray:
    """Linear magnitude response of EQ, tilt, peaks and band limit at ``freqs`` (Hz)."""
    f = np.maximum(freqs, 1.0)
    u = np.clip(np.log(f / 50.0) / np.log(8000.0 / 50.0), 0.0, 1.0)
    db = np.zeros_like(f)
    for k, (gain, phase) in enumerate(zip(channel.eq_cos_db, channel.eq_phase, strict=True), 1):
        db += gain * np.cos(np.pi * k * u + phase)
    db += channel.tilt_db_oct * np.log2(f / 1000.0)
    for centre, gain, width in channel.peaks:
        db += gain * np.exp(-0.5 * (np.log2(f / centre) / (width / 2.355)) ** 2)
    n = channel.filter_order
    band = 1.0 / np.sqrt(1.0 + (channel.highpass_hz / f) ** (2 * n))
    band /= np.sqrt(1.0 + (f / channel.lowpass_hz) ** (2 * n))
    return 10.0 ** (db / 20.0) * band


def _active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over the 20 ms frames within 30 dB of the loudest (an active speech level)."""
    hop = sr // 50
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    power = (frames**2).mean(axis=1)
    if power.max() <= 0:
        return 0.0
    active = power > power.max() * 1e-3
    return float(np.sqrt(power[active].mean()))


def _room(rt60: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Impulse response: direct path plus exponentially decaying noise (60 dB in ``rt60``)."""
    length = int(min(rt60, 0.5) * sr)
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    tail[: int(0.002 * sr)] = 0.0  # first reflections arrive a little after the direct sound
    rir = 0.5 * tail / np.sqrt((tail**2).sum() + 1e-12)
    rir[0] = 1.0
    return rir


def apply_channel(
    speech: np.ndarray,
    channel: Channel,
    sample_rate: int,
    rng: np.random.Generator,
    *,
    gain_db: float = 0.0,
) -> np.ndarray:
    """Record ``speech`` ``(num_samples,)`` through ``channel``; returns the same length.

    The active-speech level ends at ``channel.level_dbfs + gain_db`` (``gain_db``: the
    speaker's vocal effort), scaled down if the peak would pass 0.95.
    """
    sr = sample_rate
    n = len(speech)
    x = speech
    size = 1 << int(np.ceil(np.log2(n + sr // 2 + 1)))
    freqs = np.fft.rfftfreq(size, 1.0 / sr)
    if channel.rt60_s > 0:
        rir = _room(channel.rt60_s, sr, rng)
        x = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[:n]
    speech_rms = _active_rms(x, sr)
    white = np.fft.rfft(rng.standard_normal(size))
    noise = np.fft.irfft(white / np.maximum(freqs, 20.0) ** (channel.noise_colour / 2), size)[:n]
    if channel.hum_hz:
        t = np.arange(n) / sr
        hum = sum(np.sin(2 * np.pi * k * channel.hum_hz * t + k) / k for k in (1, 2, 3, 5))
        noise = noise / (noise.std() + 1e-12) + 0.7 * hum
    noise *= speech_rms / (noise.std() + 1e-12) * 10.0 ** (-channel.snr_db / 20.0)
    y = np.fft.irfft(np.fft.rfft(x + noise, size) * _magnitude(channel, freqs), size)[:n]
    rms = _active_rms(y, sr)
    y *= 10.0 ** ((channel.level_dbfs + gain_db) / 20.0) / max(rms, 1e-12)
    peak = np.abs(y).max()
    return y * (0.95 / peak) if peak > 0.95 else y
