"""Source-filter synthesis of one utterance from its articulation tracks (numpy, vectorised).

Source: a Rosenberg glottal flow pulse train, differentiated (flow derivative, which includes
lip radiation), whose period is perturbed cycle by cycle (jitter) and whose amplitude is
perturbed cycle by cycle (shimmer); an extra spectral slope sets the speaker's glottal tilt.
Breathiness is aspiration noise, pulsed with the glottal cycle, added to the voiced source.

Filter: a cascade of five second-order resonators (formants with bandwidths), evaluated as a
complex frequency response per 8 ms frame and applied by short-time Fourier filtering with
overlap-add (sqrt-Hann analysis and synthesis windows, 32 ms, 75 % overlap). Frication and
stop bursts are white noise shaped by a band filter in the same frames. This costs a few
matrix FFTs per utterance instead of per-sample recursive filters.
"""

from __future__ import annotations

import numpy as np

from data_prep.synth.phones import Tracks
from data_prep.synth.voice import UtteranceVoice

__all__ = ["FFT_SIZE", "HOP", "synthesise"]

FFT_SIZE = 512
HOP = 128


def _glottal_pulse(phase: np.ndarray, open_quotient: float) -> np.ndarray:
    """Rosenberg glottal flow at cycle phase in [0, 1): opening, closing, closed."""
    rise = 0.62 * open_quotient
    fall = open_quotient - rise
    opening = 0.5 * (1.0 - np.cos(np.pi * phase / rise))
    closing = np.cos(0.5 * np.pi * (phase - rise) / fall)
    return np.where(phase < rise, opening, np.where(phase < open_quotient, closing, 0.0))


def _voiced_source(
    f0: np.ndarray, voice: UtteranceVoice, sr: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Glottal flow derivative with jitter and shimmer, and the open-phase mask."""
    # jitter: every glottal cycle gets its own relative frequency perturbation
    cycle0 = np.floor(np.cumsum(f0) / sr).astype(np.int64)
    jitter = rng.normal(0.0, voice.jitter_pct / 100.0, int(cycle0[-1]) + 2)
    phase = np.cumsum(f0 * (1.0 + np.clip(jitter[cycle0], -0.2, 0.2))) / sr
    cycle = np.floor(phase).astype(np.int64)
    frac = phase - cycle
    flow = _glottal_pulse(frac, voice.open_quotient)
    # derivative per cycle (scaled by the period so every cycle has the same peak)
    deriv = np.diff(flow, prepend=0.0) * (sr / f0)
    shimmer = rng.normal(0.0, voice.shimmer_pct / 100.0, int(cycle[-1]) + 2)
    shimmer = 1.0 + np.clip(shimmer, -0.5, 0.5)
    return deriv * shimmer[cycle], frac < voice.open_quotient


def _apply_tilt(x: np.ndarray, tilt_db_oct: float, sr: int) -> np.ndarray:
    """Zero-phase spectral slope of ``tilt_db_oct`` dB per octave around 500 Hz."""
    n = len(x)
    spec = np.fft.rfft(x)
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 80.0)
    spec *= (freqs / 500.0) ** (tilt_db_oct / (20.0 * np.log10(2.0)))
    return np.fft.irfft(spec, n)


def _frames(x: np.ndarray, num_frames: int) -> np.ndarray:
    """``(num_frames, FFT_SIZE)`` frames with hop ``HOP`` of ``x`` (padded by the caller)."""
    idx = np.arange(num_frames)[:, None] * HOP + np.arange(FFT_SIZE)[None, :]
    return x[idx]


def _overlap_add(frames: np.ndarray, length: int) -> np.ndarray:
    num_frames = frames.shape[0]
    k = FFT_SIZE // HOP
    out = np.zeros((num_frames + k - 1, HOP))
    blocks = frames.reshape(num_frames, k, HOP)
    for j in range(k):
        out[j : j + num_frames] += blocks[:, j]
    return out.reshape(-1)[:length]


def _tract_response(formants: np.ndarray, bandwidths: np.ndarray, sr: int) -> np.ndarray:
    """Complex response ``(frames, FFT_SIZE // 2 + 1)`` of a cascade of resonators, DC gain 1."""
    omega = 2.0 * np.pi * np.fft.rfftfreq(FFT_SIZE, 1.0 / sr) / sr
    z1 = np.exp(-1j * omega)[None, None, :]
    r = np.exp(-np.pi * bandwidths / sr)[:, :, None]
    theta = (2.0 * np.pi * formants / sr)[:, :, None]
    a1 = -2.0 * r * np.cos(theta)
    a2 = r * r
    response = (1.0 + a1 + a2) / (1.0 + a1 * z1 + a2 * z1 * z1)
    return response.prod(axis=1)


def _band_response(centre: np.ndarray, width: np.ndarray, sr: int) -> np.ndarray:
    """Gaussian noise band ``(frames, bins)``: peak gain 1, ``width`` Hz at half maximum."""
    freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / sr)[None, :]
    sigma = width[:, None] / 2.355
    return np.exp(-0.5 * ((freqs - centre[:, None]) / sigma) ** 2)


def synthesise(
    tracks: Tracks, voice: UtteranceVoice, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Render one utterance: ``(num_samples,)`` float64, active-speech RMS about 0.05."""
    sr = sample_rate
    n = len(tracks.f0)
    deriv, open_phase = _voiced_source(tracks.f0, voice, sr, rng)
    voiced_mask = tracks.voicing > 0.05
    scale = np.sqrt(np.mean(deriv[voiced_mask] ** 2)) if voiced_mask.any() else 1.0
    voiced = _apply_tilt(deriv / scale, voice.tilt_db_oct, sr) * tracks.voicing
    # breathiness: aspiration during voicing, stronger while the glottis is open
    breath = 10.0 ** (voice.breathiness_db / 20.0) * tracks.voicing * (0.35 + 0.65 * open_phase)
    noise = rng.standard_normal(n)
    # /h/ and stop aspiration: steady noise through the vocal tract (level ~ a vowel's at 0 dB)
    source = voiced + noise * (breath + 3.0 * tracks.aspiration)
    frication = rng.standard_normal(n) * tracks.frication * 3.0

    pad = FFT_SIZE - HOP
    num_frames = (n + pad) // HOP + 1
    total = (num_frames - 1) * HOP + FFT_SIZE
    window = np.sqrt(np.hanning(FFT_SIZE + 1)[:-1])  # periodic sqrt-Hann: COLA at hop N/4

    def stft(x: np.ndarray) -> np.ndarray:
        padded = np.zeros(total)
        padded[pad : pad + n] = x
        return np.fft.rfft(_frames(padded, num_frames) * window, axis=1)

    centres = (np.arange(num_frames) * HOP + FFT_SIZE // 2 - pad) / sr
    t = tracks.control_times

    def at_frames(values: np.ndarray) -> np.ndarray:
        if values.ndim == 1:
            return np.interp(centres, t, values)
        return np.stack([np.interp(centres, t, values[:, j]) for j in range(values.shape[1])], 1)

    tract = _tract_response(at_frames(tracks.formants), at_frames(tracks.bandwidths), sr)
    band = _band_response(at_frames(tracks.fric_centre), at_frames(tracks.fric_width), sr)
    spectrum = stft(source) * tract + stft(frication) * band
    frames = np.fft.irfft(spectrum, FFT_SIZE, axis=1) * window
    # sqrt-Hann analysis x synthesis = Hann, whose shifts by N/4 sum to 2
    out = _overlap_add(frames, total)[pad : pad + n] / 2.0
    active = tracks.voicing + tracks.frication > 0.05
    rms = np.sqrt(np.mean(out[active] ** 2)) if active.any() else np.sqrt(np.mean(out**2))
    return out * (0.05 / max(float(rms), 1e-9))
