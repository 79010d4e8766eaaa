"""Generated stand-ins for MUSAN and RIR recordings, so augmentation works without corpora.

When no MUSAN or RIR manifest is configured (the mini recipe, tests), :class:`NoiseBank`
fills its banks from these generators instead of audio files:

* ``noise``: coloured noise, a random choice of white, pink or brown (spectral slope 0, -3 or
  -6 dB per octave, flat below 20 Hz);
* ``music``: note sequences of harmonic tones (random tempo, pitch, chords and note decay);
* ``speech``: babble sources, speech-shaped noise plus a voiced harmonic complex with a gliding
  pitch, switched on and off at a syllable rate of 3-6 Hz with pauses between words;
* RIRs: a direct-path impulse followed, after a 1-8 ms gap, by exponentially decaying Gaussian
  noise with a random RT60 and direct-to-reverberant ratio of 0-10 dB, normalised to unit energy.

Every generator is deterministic given its ``torch.Generator`` and returns unit-RMS (noise) or
unit-energy (RIR) float32 rows on the CPU.
"""

from __future__ import annotations

import math

import torch

__all__ = ["coloured_noise", "music_like", "speech_like", "synthetic_rirs"]


def _uniform(shape: tuple[int, ...], low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=g)


def _phase(freq: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Running phase of an instantaneous frequency ``(num, samples)`` Hz, wrapped to [0, 2 pi)."""
    cycles = torch.cumsum(freq.double(), dim=1) / sample_rate
    return (2 * math.pi * (cycles - cycles.floor())).float()


def _unit_rms(x: torch.Tensor) -> torch.Tensor:
    rms = x.square().mean(dim=-1, keepdim=True).sqrt().clamp(min=1e-8)
    return x / rms


def _shaped_noise(
    num: int, samples: int, sample_rate: int, slope: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Gaussian noise with power ``~ f ** -slope`` above 20 Hz; ``slope`` is ``(num, 1)``."""
    spectrum = torch.fft.rfft(torch.randn(num, samples, generator=g))
    freqs = torch.fft.rfftfreq(samples, d=1.0 / sample_rate).clamp(min=20.0)
    spectrum = spectrum * freqs.pow(-slope / 2)
    spectrum[:, 0] = 0.0
    return torch.fft.irfft(spectrum, n=samples)


def coloured_noise(num: int, samples: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """``(num, samples)`` white, pink or brown noise (random per row), unit RMS."""
    slope = torch.randint(0, 3, (num, 1), generator=g).float()
    return _unit_rms(_shaped_noise(num, samples, sample_rate, slope, g))


def _piecewise(values: torch.Tensor, seg: torch.Tensor, samples: int) -> torch.Tensor:
    """Hold ``values[:, j]`` for ``seg`` samples each: ``(num, J)`` → ``(num, samples)``."""
    t = torch.arange(samples)[None, :]
    index = torch.div(t, seg, rounding_mode="floor").clamp(max=values.shape[1] - 1)
    return values.gather(1, index)


def music_like(num: int, samples: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """``(num, samples)`` sequences of decaying harmonic notes and chords, unit RMS."""
    t = torch.arange(samples)[None, :]
    note = (_uniform((num, 1), 0.12, 0.5, g) * sample_rate).long()
    max_notes = samples // int(0.12 * sample_rate) + 2
    out = torch.zeros(num, samples)
    root = torch.randint(40, 80, (num, max_notes), generator=g).float()
    decay = _uniform((num, 1), 2.0, 9.0, g)
    in_note = (t % note).float() / sample_rate
    envelope = torch.exp(-decay * in_note) * (1 - torch.exp(-in_note * 400.0))
    for interval, gain in ((0, 1.0), (4, 0.6), (7, 0.5)):  # root, third, fifth of a chord
        voiced = torch.rand(num, max_notes, generator=g) < (1.0 if interval == 0 else 0.5)
        freq = 440.0 * 2.0 ** ((root + interval - 69) / 12)
        freq = _piecewise(freq * voiced, note, samples)
        phase = _phase(freq, sample_rate)
        for k in range(1, 5):
            out += gain * 0.6 ** (k - 1) * torch.sin(k * phase) * (k * freq < sample_rate / 2)
    return _unit_rms(out * envelope)


def speech_like(num: int, samples: int, sample_rate: int, g: torch.Generator) -> torch.Tensor:
    """``(num, samples)`` babble sources: syllable-modulated voiced sound and noise, unit RMS."""
    t = torch.arange(samples)[None, :] / sample_rate
    # pitch glides between random targets every 150 ms around a per-talker base of 90-250 Hz
    hop = int(0.15 * sample_rate)
    base = _uniform((num, 1), 90.0, 250.0, g)
    targets = base * _uniform((num, samples // hop + 2), 0.8, 1.25, g)
    f0 = torch.nn.functional.interpolate(
        targets[:, None], size=samples, mode="linear", align_corners=False
    )[:, 0]
    phase = _phase(f0, sample_rate)
    voiced = sum(torch.sin(k * phase + k) / k * (k * f0 < sample_rate / 2) for k in range(1, 9))
    noise = _shaped_noise(num, samples, sample_rate, torch.full((num, 1), 1.0), g)
    noise = noise / noise.std(dim=1, keepdim=True).clamp(min=1e-8)
    rate = _uniform((num, 1), 3.0, 6.0, g)
    syllables = torch.sin(math.pi * rate * t + _uniform((num, 1), 0.0, math.pi, g)).abs() ** 1.5
    words = (torch.rand(num, samples // hop + 2, generator=g) < 0.8).float()
    pauses = _piecewise(words, torch.full((num, 1), 2 * hop), samples)
    return _unit_rms((voiced + 0.3 * noise) * syllables * pauses)


def synthetic_rirs(
    num: int,
    sample_rate: int,
    rt60: tuple[float, float],
    max_seconds: float,
    g: torch.Generator,
) -> torch.Tensor:
    """``(num, L)`` room impulse responses with the direct path at index 0, unit energy.

    ``L = max_seconds * sample_rate``; the decay reaches -60 dB after the row's RT60, drawn
    uniformly from ``rt60`` seconds.
    """
    length = max(1, int(round(max_seconds * sample_rate)))
    t = torch.arange(length)[None, :] / sample_rate
    seconds = _uniform((num, 1), rt60[0], rt60[1], g).clamp(min=1e-3)
    tail = torch.randn(num, length, generator=g) * 10.0 ** (-3.0 * t / seconds)
    gap = (_uniform((num, 1), 0.001, 0.008, g) * sample_rate).long()
    tail = tail * (torch.arange(length)[None, :] >= gap)
    drr_db = _uniform((num, 1), 0.0, 10.0, g)
    tail_energy = tail.square().sum(dim=1, keepdim=True).clamp(min=1e-12)
    rir = tail * torch.sqrt(10.0 ** (-drr_db / 10.0) / tail_energy)
    rir[:, 0] = 1.0
    return (rir / rir.square().sum(dim=1, keepdim=True).sqrt()).float()
