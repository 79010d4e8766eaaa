"""The audio writers every fake corpus uses: plain noise, emotion tones, speaker bursts.

Each writes a 16 kHz (unless told otherwise) wav with ``dino_speech.audio.write_audio``,
creating the parent folders, and returns the path. Same arguments, same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dino_speech.audio import write_audio

SR = 16000

# The pitch of each four-class emotion's tone; any other category gets OTHER_HZ.
EMOTION_HZ = {"neutral": 180.0, "happy": 420.0, "angry": 900.0, "sad": 1800.0}
OTHER_HZ = 300.0


def wav(path: Path, seconds: float = 0.25, seed: int = 0, sample_rate: int = SR) -> Path:
    """A short white-noise wav at ``path``: audio that carries no label."""
    rng = np.random.default_rng(seed)
    write_audio(path, 0.05 * rng.standard_normal(int(seconds * sample_rate)), sample_rate)
    return path


def tone(path: Path, hz: float, seed: int, seconds: float = 0.6) -> Path:
    """A noisy sine of about ``hz`` (2 % pitch jitter, a random level) at ``path``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    level = 10 ** rng.uniform(-1.2, -0.6)
    wave = level * np.sin(2 * np.pi * hz * (1 + 0.02 * rng.standard_normal()) * t)
    write_audio(path, (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)
    return path


def emotion_tone(path: Path, emotion: str | None, seed: int, seconds: float = 0.6) -> Path:
    """The :func:`tone` of a four-class ``emotion`` (``None`` or another one: OTHER_HZ)."""
    return tone(path, EMOTION_HZ.get(emotion or "", OTHER_HZ), seed, seconds)


def speaker_burst(path: Path, speaker: int, seed: int, seconds: float = 1.5) -> Path:
    """White noise through speaker ``speaker``'s fixed two-pole resonance (300 + 150 x
    ``speaker`` Hz) at ``path``: clips of one speaker sound alike, of two apart."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    r, theta = 0.97, 2 * np.pi * (300.0 + 150.0 * speaker) / SR
    out = lfilter(
        [1.0], [1.0, -2 * r * np.cos(theta), r * r], rng.standard_normal(int(seconds * SR))
    )
    write_audio(path, (0.05 * out / np.abs(out).max()).astype(np.float32), SR)
    return path
