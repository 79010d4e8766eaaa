"""Content of the synthetic corpus: random phone sequences turned into articulation tracks.

One phone inventory is shared by all speakers, so the words carry no speaker information:
vowels with formant targets (adult male reference values, after Peterson & Barney 1952),
approximants and nasals (voiced, with their own formant targets), fricatives (band-shaped
noise), stops (closure, burst, aspiration) and pauses. Utterances are phrases of words of
one to three syllables; each word has a stressed syllable that may carry a pitch accent.

:func:`articulate` turns a random sequence into :class:`Tracks`: sample-rate envelopes of
voicing, frication and aspiration and an F0 contour, plus control-rate (5 ms) formant,
bandwidth and frication-band tracks with smooth transitions between the phone targets. The
speaker enters only through :class:`~data_prep.synth.voice.UtteranceVoice` (rate, formant
scale, F0 level and range, accent strength).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.synth.voice import UtteranceVoice

__all__ = ["CONTROL_HOP_S", "PHONES", "Phone", "Tracks", "articulate"]

CONTROL_HOP_S = 0.005
NUM_FORMANTS = 5
# Higher formants and bandwidths of the adult male reference voice (Hz).
F4_F5 = (3400.0, 4400.0)
BANDWIDTHS = np.array([70.0, 95.0, 140.0, 220.0, 300.0])


@dataclass(frozen=True)
class Phone:
    """One entry of the inventory (levels in dB relative to a vowel's voicing)."""

    name: str
    kind: str  # vowel | approximant | nasal | fricative | stop | aspirate
    formants: tuple[float, float, float] | None  # F1-F3 target or locus; None: take the next
    duration_ms: tuple[float, float]  # for stops: the closure
    voice_db: float | None = None  # None: unvoiced
    fric_db: float | None = None  # frication (fricatives) or burst (stops) level
    fric_band: tuple[float, float] = (0.0, 0.0)  # centre and width (Hz) of the noise band
    aspiration_db: float | None = None  # aspiration after a stop burst, or /h/
    bandwidth_scale: float = 1.0


_LABIAL = (250.0, 900.0, 2200.0)
_ALVEOLAR = (280.0, 1700.0, 2600.0)
_VELAR = (280.0, 1800.0, 2300.0)
_POSTALV = (280.0, 1900.0, 2400.0)

PHONES: dict[str, Phone] = {
    p.name: p
    for p in [
        Phone("iy", "vowel", (270, 2290, 3010), (90, 170), 0.0),
        Phone("ih", "vowel", (390, 1990, 2550), (60, 120), 0.0),
        Phone("eh", "vowel", (530, 1840, 2480), (70, 130), 0.0),
        Phone("ae", "vowel", (660, 1720, 2410), (90, 180), 0.0),
        Phone("aa", "vowel", (730, 1090, 2440), (90, 180), 0.0),
        Phone("ao", "vowel", (570, 840, 2410), (90, 170), 0.0),
        Phone("uh", "vowel", (440, 1020, 2240), (60, 120), 0.0),
        Phone("uw", "vowel", (300, 870, 2240), (80, 160), 0.0),
        Phone("ah", "vowel", (520, 1190, 2390), (60, 120), 0.0),
        Phone("er", "vowel", (490, 1350, 1690), (80, 150), 0.0),
        Phone("l", "approximant", (360, 1300, 2700), (40, 70), -5.0),
        Phone("r", "approximant", (310, 1060, 1380), (40, 70), -5.0),
        Phone("w", "approximant", (290, 610, 2150), (40, 70), -6.0),
        Phone("y", "approximant", (260, 2070, 3020), (40, 60), -6.0),
        Phone("m", "nasal", (250, 1100, 2100), (50, 90), -9.0, bandwidth_scale=1.8),
        Phone("n", "nasal", (250, 1450, 2500), (50, 80), -9.0, bandwidth_scale=1.8),
        Phone("s", "fricative", _ALVEOLAR, (80, 140), None, -14.0, (5600.0, 2400.0)),
        Phone("sh", "fricative", _POSTALV, (80, 140), None, -12.0, (3100.0, 1600.0)),
        Phone("f", "fricative", _LABIAL, (70, 120), None, -26.0, (5000.0, 7000.0)),
        Phone("th", "fricative", _ALVEOLAR, (60, 110), None, -28.0, (5500.0, 7000.0)),
        Phone("z", "fricative", _ALVEOLAR, (60, 110), -14.0, -20.0, (5600.0, 2400.0)),
        Phone("v", "fricative", _LABIAL, (50, 90), -12.0, -30.0, (5000.0, 7000.0)),
        Phone("h", "aspirate", None, (50, 90), None, None, (0.0, 0.0), -16.0),
        Phone("p", "stop", _LABIAL, (50, 90), None, -18.0, (1200.0, 2000.0), -20.0),
        Phone("t", "stop", _ALVEOLAR, (45, 80), None, -10.0, (4500.0, 3000.0), -18.0),
        Phone("k", "stop", _VELAR, (50, 85), None, -12.0, (2200.0, 1200.0), -18.0),
        Phone("b", "stop", _LABIAL, (45, 80), -28.0, -24.0, (1200.0, 2000.0)),
        Phone("d", "stop", _ALVEOLAR, (40, 70), -28.0, -16.0, (4500.0, 3000.0)),
        Phone("g", "stop", _VELAR, (45, 75), -28.0, -18.0, (2200.0, 1200.0)),
    ]
}
_VOWELS = [p for p in PHONES.values() if p.kind == "vowel"]
_ONSETS = [p for p in PHONES.values() if p.kind != "vowel"]
_CODAS = [p for p in PHONES.values() if p.kind in ("stop", "fricative", "nasal")] + [PHONES["l"]]
_CLUSTER_FIRST = [PHONES[n] for n in ("p", "t", "k", "b", "g", "f", "s")]
_CLUSTER_SECOND = [PHONES[n] for n in ("l", "r", "w")]


@dataclass
class Tracks:
    """Articulation of one utterance.

    Sample-rate arrays ``(num_samples,)``: ``f0`` (Hz), ``voicing``, ``frication`` and
    ``aspiration`` (linear amplitudes). Control-rate arrays at ``control_times`` (seconds,
    ``(C,)``): ``formants`` and ``bandwidths`` ``(C, 5)`` in Hz, ``fric_centre`` and
    ``fric_width`` ``(C,)`` in Hz.
    """

    f0: np.ndarray
    voicing: np.ndarray
    frication: np.ndarray
    aspiration: np.ndarray
    control_times: np.ndarray
    formants: np.ndarray
    bandwidths: np.ndarray
    fric_centre: np.ndarray
    fric_width: np.ndarray


@dataclass
class _Segment:
    """A stretch of one articulatory state (levels linear; 0 = silent)."""

    samples: int
    formants: tuple[float, float, float] | None
    voice: float = 0.0
    fric: float = 0.0
    aspiration: float = 0.0
    fric_band: tuple[float, float] = (4000.0, 4000.0)
    bandwidth_scale: float = 1.0
    accent_st: float = 0.0  # pitch accent on this segment (semitones)
    phrase: int = -1  # phrase index; -1 for pauses


def _db(level: float | None) -> float:
    return 0.0 if level is None else float(10.0 ** (level / 20.0))


def _phone_segments(
    phone: Phone,
    rng: np.random.Generator,
    sr: int,
    rate: float,
    stretch: float = 1.0,
    loud_db: float = 0.0,
) -> list[_Segment]:
    lo, hi = phone.duration_ms
    ms = rng.uniform(lo, hi) * stretch / rate
    n = max(1, int(sr * ms / 1000.0))
    gain = 10.0 ** (loud_db / 20.0)
    if phone.kind != "stop":
        fric_gain = gain if phone.kind == "fricative" else 1.0
        return [
            _Segment(
                n,
                phone.formants,
                voice=_db(phone.voice_db) * gain,
                fric=_db(phone.fric_db) * fric_gain,
                aspiration=_db(phone.aspiration_db),
                fric_band=phone.fric_band,
                bandwidth_scale=phone.bandwidth_scale,
            )
        ]
    closure = _Segment(n, phone.formants, voice=_db(phone.voice_db))
    burst = _Segment(
        int(sr * rng.uniform(0.006, 0.014)),
        phone.formants,
        fric=_db(phone.fric_db),
        fric_band=phone.fric_band,
    )
    segments = [closure, burst]
    if phone.aspiration_db is not None:
        asp_ms = rng.uniform(25, 60) / rate
        segments.append(
            _Segment(int(sr * asp_ms / 1000.0), None, aspiration=_db(phone.aspiration_db))
        )
    return segments


def _syllable(
    rng: np.random.Generator, sr: int, voice: UtteranceVoice, stressed: bool
) -> list[_Segment]:
    segments: list[_Segment] = []
    rate = voice.speaking_rate
    r = rng.random()
    if r < 0.15:
        onset = [_CLUSTER_FIRST[rng.integers(len(_CLUSTER_FIRST))]]
        onset.append(_CLUSTER_SECOND[rng.integers(len(_CLUSTER_SECOND))])
    elif r < 0.85:
        onset = [_ONSETS[rng.integers(len(_ONSETS))]]
    else:
        onset = []
    for phone in onset:
        segments += _phone_segments(phone, rng, sr, rate)
    vowel = _VOWELS[rng.integers(len(_VOWELS))]
    loud = (voice.accent_db if stressed else 0.0) + rng.normal(0.0, 1.5)
    nucleus = _phone_segments(vowel, rng, sr, rate, 1.35 if stressed else 0.9, loud)
    if stressed and rng.random() < 0.65:
        nucleus[0].accent_st = voice.f0_range_st * rng.uniform(0.6, 1.5)
    segments += nucleus
    if rng.random() < 0.4:
        segments += _phone_segments(_CODAS[rng.integers(len(_CODAS))], rng, sr, rate)
    return segments


def _sequence(
    rng: np.random.Generator, sr: int, voice: UtteranceVoice, speech_samples: int
) -> list[_Segment]:
    """Phrases of words until ``speech_samples`` are filled, separated by pauses."""
    segments: list[_Segment] = []
    total = 0
    phrase = 0
    while total < speech_samples:
        if phrase:
            pause = int(sr * rng.uniform(0.12, 0.45) / voice.speaking_rate)
            segments.append(_Segment(pause, None))
            total += pause
        for _ in range(int(rng.integers(2, 7))):
            syllables = int(rng.choice([1, 2, 3], p=[0.45, 0.4, 0.15]))
            stress = int(rng.integers(syllables))
            for i in range(syllables):
                for seg in _syllable(rng, sr, voice, i == stress):
                    seg.phrase = phrase
                    segments.append(seg)
                    total += seg.samples
            if total >= speech_samples:
                break
        phrase += 1
    return segments


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Smooth along axis 0 with a normalised Hann kernel of ``width`` (odd) points."""
    if width <= 1:
        return x
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    pad = width // 2
    if x.ndim == 1:
        return np.convolve(np.pad(x, pad, mode="edge"), kernel, mode="valid")
    padded = np.pad(x, ((pad, pad), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(x.shape[1])], 1)


def _f0_contour(
    segments: list[_Segment],
    starts: np.ndarray,
    n_ctrl: int,
    hop: int,
    voice: UtteranceVoice,
    rng: np.random.Generator,
) -> np.ndarray:
    """Intonation in semitones at control rate: declination, accents, final fall or rise."""
    st = np.zeros(n_ctrl)
    t = np.arange(n_ctrl)
    phrases = sorted({s.phrase for s in segments if s.phrase >= 0})
    r = voice.f0_range_st
    for ph in phrases:
        idx = [i for i, s in enumerate(segments) if s.phrase == ph]
        a = int(starts[idx[0]] // hop)
        b = max(a + 1, int((starts[idx[-1]] + segments[idx[-1]].samples) // hop))
        b = min(b, n_ctrl)
        if a >= n_ctrl:
            break
        decl = rng.uniform(0.6, 1.2) * r
        st[a:b] += np.linspace(decl / 2, -decl / 2, b - a)
        final = min(b - a, int(0.25 / CONTROL_HOP_S))
        shape = np.linspace(0.0, 1.0, final) ** 2
        if rng.random() < 0.2:
            st[b - final : b] += r * rng.uniform(0.8, 1.6) * shape  # question-like rise
        else:
            st[b - final : b] -= r * rng.uniform(0.3, 0.8) * shape
    for seg, start in zip(segments, starts, strict=True):
        if seg.accent_st:
            centre = (start + seg.samples * 0.4) / hop
            width = 0.07 / CONTROL_HOP_S
            st += seg.accent_st * np.exp(-0.5 * ((t - centre) / width) ** 2)
    wander = _smooth(rng.normal(0.0, 1.0, n_ctrl), int(0.15 / CONTROL_HOP_S) | 1)
    st += 0.25 * r * wander / (wander.std() + 1e-9)
    return st


def articulate(
    voice: UtteranceVoice, num_samples: int, sample_rate: int, rng: np.random.Generator
) -> Tracks:
    """Draw a random phone sequence for ``voice`` and return its articulation tracks."""
    sr = sample_rate
    lead = int(min(sr * rng.uniform(0.05, 0.25), 0.15 * num_samples))
    trail = int(min(sr * rng.uniform(0.05, 0.2), 0.15 * num_samples))
    speech = max(1, num_samples - lead - trail)
    segments = [_Segment(lead, None)] + _sequence(rng, sr, voice, speech)
    lengths = np.array([s.samples for s in segments])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    seg_of_sample = np.full(num_samples, -1)  # -1: silence
    filled = np.repeat(np.arange(len(segments)), lengths)[:num_samples]
    seg_of_sample[: len(filled)] = filled
    seg_of_sample[num_samples - trail :] = -1

    def per_sample(values: list[float], smooth_ms: float) -> np.ndarray:
        table = np.append(np.asarray(values, dtype=np.float64), 0.0)  # index -1: silence
        return _smooth(table[seg_of_sample], int(sr * smooth_ms / 1000) | 1)

    voicing = per_sample([s.voice for s in segments], 8.0)
    frication = per_sample([s.fric for s in segments], 3.0)
    aspiration = per_sample([s.aspiration for s in segments], 6.0)

    hop = int(sr * CONTROL_HOP_S)
    n_ctrl = num_samples // hop + 1
    ctrl_seg = seg_of_sample[np.minimum(np.arange(n_ctrl) * hop, num_samples - 1)]
    # formant targets: phones' own, per-utterance articulation variation; gaps interpolated
    wobble = np.exp(rng.normal(0.0, 0.03, (len(segments), 3)))
    known = np.full((len(segments), 3), np.nan)
    for i, s in enumerate(segments):
        if s.formants is not None:
            known[i] = np.asarray(s.formants) * wobble[i]
    ctrl_targets = np.where(ctrl_seg[:, None] >= 0, known[np.maximum(ctrl_seg, 0)], np.nan)
    formants = np.empty((n_ctrl, NUM_FORMANTS))
    for j in range(3):
        col = ctrl_targets[:, j]
        ok = ~np.isnan(col)
        if ok.any():
            formants[:, j] = np.interp(np.arange(n_ctrl), np.flatnonzero(ok), col[ok])
        else:  # nothing has a target: a uniform tube
            formants[:, j] = 500.0 * (2 * j + 1)
    formants[:, 3:] = np.asarray(F4_F5) * np.exp(rng.normal(0.0, 0.02, 2))
    # transitions of ~40 ms between targets (smoothing in the log domain)
    formants = np.exp(_smooth(np.log(formants), int(0.04 / CONTROL_HOP_S) | 1))
    formants *= voice.formant_scale
    formants = np.minimum(formants, 0.45 * sr)
    bw_scale = np.array([s.bandwidth_scale for s in segments] + [1.0])[ctrl_seg]
    bandwidths = BANDWIDTHS[None, :] * _smooth(bw_scale, 5)[:, None]
    band = np.array([s.fric_band for s in segments] + [(4000.0, 4000.0)])[ctrl_seg]
    # fricative spectra move with the size of the front cavity, about half as much as formants
    fric_centre = np.minimum(band[:, 0] * voice.formant_scale**0.5, 0.45 * sr)
    fric_width = np.maximum(band[:, 1], 500.0)

    st = _f0_contour(segments, starts, n_ctrl, hop, voice, rng)
    ctrl_voicing = voicing[np.minimum(np.arange(n_ctrl) * hop, num_samples - 1)]
    weight = ctrl_voicing / (ctrl_voicing.sum() + 1e-9)
    st -= float((st * weight).sum())  # the realised mean F0 is the voice's F0 level
    f0_ctrl = np.clip(voice.f0_mean_hz * 2.0 ** (st / 12.0), 50.0, 500.0)
    f0 = np.interp(np.arange(num_samples), np.arange(n_ctrl) * hop, f0_ctrl)
    return Tracks(
        f0=f0,
        voicing=voicing,
        frication=frication,
        aspiration=aspiration,
        control_times=np.arange(n_ctrl) * CONTROL_HOP_S,
        formants=formants,
        bandwidths=bandwidths,
        fric_centre=fric_centre,
        fric_width=fric_width,
    )
