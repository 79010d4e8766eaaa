"""Voices of the synthetic corpus: fixed speaker traits, emotions, and their per-utterance mix.

A speaker is a set of source-filter parameters that stay fixed for life (:class:`SpeakerTraits`).
An emotion (:data:`EMOTIONS`) shifts prosody and voice quality on top of them, and every
utterance adds a little natural variation; :func:`realise_voice` gives the values one utterance
is actually synthesised with (:class:`UtteranceVoice`).

The trait distributions follow adult speech: F0 around 115 Hz (men) and 205 Hz (women), formant
frequencies scaled by the inverse vocal-tract length (women's about 15-20 % higher), jitter of a
fraction of a percent to ~2 %, shimmer of a few percent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = [
    "EMOTIONS",
    "EMOTION_PROBS",
    "EmotionProfile",
    "SpeakerTraits",
    "UtteranceVoice",
    "realise_voice",
    "sample_emotion",
    "sample_speaker_traits",
]


@dataclass(frozen=True)
class SpeakerTraits:
    """The fixed voice of one speaker (the ground truth written to ``speaker_traits.json``)."""

    sex: str  # "female" or "male"; not used by the synthesiser beyond drawing the traits
    f0_mean_hz: float  # mean fundamental frequency
    f0_range_st: float  # spread of the intonation contour, semitones
    formant_scale: float  # all formant frequencies are multiplied by this (1 / vocal-tract length)
    tilt_db_oct: float  # extra spectral slope of the glottal source, dB per octave (< 0: darker)
    breathiness_db: float  # aspiration noise level relative to the voiced source, dB
    jitter_pct: float  # cycle-to-cycle F0 perturbation, percent
    shimmer_pct: float  # cycle-to-cycle amplitude perturbation, percent
    speaking_rate: float  # 1.0 = average; segment durations are divided by it

    def to_dict(self) -> dict[str, float | str]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @staticmethod
    def numeric_names() -> list[str]:
        """Names of the numeric traits (everything but ``sex``)."""
        return [f.name for f in fields(SpeakerTraits) if f.name != "sex"]


@dataclass(frozen=True)
class EmotionProfile:
    """How an emotion modifies a speaker's voice (multipliers and shifts)."""

    f0_scale: float  # multiplies the F0 level
    range_scale: float  # multiplies the intonation range
    rate_scale: float  # multiplies the speaking rate
    effort_db: float  # overall vocal effort (loudness) shift
    accent_db: float  # extra loudness of accented syllables (energy dynamics)
    tilt_shift_db_oct: float  # added to the source tilt (> 0: brighter, pressed voice)
    breath_shift_db: float  # added to the breathiness
    open_quotient: float  # glottal open quotient (lower: pressed, higher: lax/breathy)
    jitter_scale: float  # multiplies jitter and shimmer


# Directions follow the vocal-emotion literature (e.g. Scherer 2003; Banse & Scherer 1996):
# anger and joy raise F0, range, rate and effort; sadness lowers them and breathes more.
EMOTIONS: dict[str, EmotionProfile] = {
    "neutral": EmotionProfile(1.00, 1.00, 1.00, 0.0, 2.0, 0.0, 0.0, 0.60, 1.00),
    "happy": EmotionProfile(1.15, 1.30, 1.05, 3.0, 4.0, 1.0, -1.0, 0.55, 1.00),
    "angry": EmotionProfile(1.10, 1.20, 1.08, 6.0, 6.0, 2.0, -3.0, 0.45, 1.25),
    "sad": EmotionProfile(0.93, 0.70, 0.87, -4.0, 0.5, -1.5, 3.0, 0.70, 1.10),
}
EMOTION_PROBS: dict[str, float] = {"neutral": 0.4, "happy": 0.2, "angry": 0.2, "sad": 0.2}


@dataclass(frozen=True)
class UtteranceVoice:
    """The voice parameters one utterance is synthesised with (speaker x emotion x variation)."""

    f0_mean_hz: float
    f0_range_st: float
    formant_scale: float
    tilt_db_oct: float
    breathiness_db: float
    jitter_pct: float
    shimmer_pct: float
    speaking_rate: float
    open_quotient: float
    effort_db: float
    accent_db: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def sample_speaker_traits(rng: np.random.Generator) -> SpeakerTraits:
    """Draw one speaker's fixed traits."""
    female = bool(rng.random() < 0.5)
    f0 = (205.0 if female else 115.0) * float(np.exp(rng.normal(0.0, 0.14)))
    formant_scale = (1.17 if female else 1.0) * float(np.exp(rng.normal(0.0, 0.055)))
    return SpeakerTraits(
        sex="female" if female else "male",
        f0_mean_hz=f0,
        f0_range_st=float(rng.uniform(1.0, 5.0)),
        formant_scale=formant_scale,
        tilt_db_oct=float(np.clip(rng.normal(-1.0, 1.8), -5.0, 3.0)),
        breathiness_db=float(rng.uniform(-32.0, -10.0)),
        jitter_pct=float(np.exp(rng.uniform(np.log(0.25), np.log(2.5)))),
        shimmer_pct=float(rng.uniform(1.5, 10.0)),
        speaking_rate=float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))),
    )


def sample_emotion(rng: np.random.Generator) -> str:
    """Draw an emotion label with the probabilities of :data:`EMOTION_PROBS`."""
    names = list(EMOTION_PROBS)
    return names[int(rng.choice(len(names), p=list(EMOTION_PROBS.values())))]


def realise_voice(traits: SpeakerTraits, emotion: str, rng: np.random.Generator) -> UtteranceVoice:
    """Combine a speaker's traits with an emotion and small per-utterance variation."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion '{emotion}'; valid: {', '.join(EMOTIONS)}")
    e = EMOTIONS[emotion]
    jitter_scale = e.jitter_scale * float(np.exp(rng.normal(0.0, 0.07)))
    return UtteranceVoice(
        f0_mean_hz=traits.f0_mean_hz * e.f0_scale * float(np.exp(rng.normal(0.0, 0.03))),
        f0_range_st=traits.f0_range_st * e.range_scale * float(np.exp(rng.normal(0.0, 0.07))),
        # the vocal tract barely changes; a little articulation variation only
        formant_scale=traits.formant_scale * float(np.exp(rng.normal(0.0, 0.01))),
        tilt_db_oct=traits.tilt_db_oct + e.tilt_shift_db_oct + float(rng.normal(0.0, 0.3)),
        breathiness_db=traits.breathiness_db + e.breath_shift_db + float(rng.normal(0.0, 1.0)),
        jitter_pct=traits.jitter_pct * jitter_scale,
        shimmer_pct=traits.shimmer_pct * jitter_scale,
        speaking_rate=traits.speaking_rate * e.rate_scale * float(np.exp(rng.normal(0.0, 0.04))),
        open_quotient=float(np.clip(e.open_quotient + rng.normal(0.0, 0.02), 0.3, 0.85)),
        effort_db=e.effort_db + float(rng.normal(0.0, 1.0)),
        accent_db=e.accent_db,
    )
