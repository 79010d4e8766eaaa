"""The design of the synthetic corpus: who says what, in which session, and the trials.

:func:`plan_corpus` draws every speaker's traits, the channels of their sessions, and each
utterance's session, emotion and length, then splits the speakers into train and test;
:func:`render_utterance` turns one :class:`UtterancePlan` into audio with the generator of
this package; :func:`make_trials` pairs the test utterances.

Every random draw comes from a generator seeded by ``(seed, purpose, index)``, so a plan and
its audio are the same however the work is spread over processes, and adding utterances or
speakers leaves the existing speakers' voices unchanged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_prep.synth.channel import Channel, apply_channel, perturb_channel, sample_channel
from data_prep.synth.phones import articulate
from data_prep.synth.source_filter import synthesise
from data_prep.synth.voice import (
    SpeakerTraits,
    realise_voice,
    sample_emotion,
    sample_speaker_traits,
)
from dino_speech.errors import DataError

__all__ = [
    "SAMPLE_RATE",
    "CorpusPlan",
    "UtterancePlan",
    "make_trials",
    "plan_corpus",
    "render_utterance",
    "rounded",
]

SAMPLE_RATE = 16000

# Purposes in the seed tuples (seed, purpose, index...) of the random generators.
_SPEAKER, _SESSION, _SCRIPT, _RENDER, _SPLIT, _TRIALS = range(6)


@dataclass(frozen=True)
class UtterancePlan:
    """Everything needed to render one utterance (picklable for worker processes)."""

    index: int  # position in the corpus; seeds the utterance's own generator
    utt_id: str
    speaker: str
    session: str
    emotion: str
    num_samples: int
    traits: SpeakerTraits
    channel: Channel  # the session's channel, before this recording's perturbation


@dataclass(frozen=True)
class CorpusPlan:
    """The whole corpus: speakers' traits, test speakers, session channels, utterances."""

    speakers: dict[str, SpeakerTraits]
    test_speakers: list[str]
    sessions: dict[str, Channel]  # session id -> channel
    utterances: list[UtterancePlan]


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _num_sessions(utts_per_speaker: int) -> int:
    return max(1, min(4, utts_per_speaker // 3, math.ceil(utts_per_speaker / 5)))


def plan_corpus(
    num_speakers: int,
    utts_per_speaker: int,
    duration_range: tuple[float, float],
    num_test_speakers: int,
    seed: int,
) -> CorpusPlan:
    """Speakers, their sessions and channels, the split, and every utterance's plan."""
    speakers: dict[str, SpeakerTraits] = {}
    sessions: dict[str, Channel] = {}
    utterances: list[UtterancePlan] = []
    lo, hi = duration_range
    for s in range(num_speakers):
        spk = f"spk{s:04d}"
        traits = sample_speaker_traits(_rng(seed, _SPEAKER, s))
        speakers[spk] = traits
        n_sess = _num_sessions(utts_per_speaker)
        for k in range(n_sess):
            sessions[f"{spk}-s{k}"] = sample_channel(_rng(seed, _SESSION, s, k))
        script = _rng(seed, _SCRIPT, s)
        session_of = script.permutation(utts_per_speaker) % n_sess
        for u in range(utts_per_speaker):
            session = f"{spk}-s{session_of[u]}"
            utterances.append(
                UtterancePlan(
                    index=s * utts_per_speaker + u,
                    utt_id=f"{spk}-{u:04d}",
                    speaker=spk,
                    session=session,
                    emotion=sample_emotion(script),
                    num_samples=int(round(script.uniform(lo, hi) * SAMPLE_RATE)),
                    traits=traits,
                    channel=sessions[session],
                )
            )
    order = _rng(seed, _SPLIT).permutation(num_speakers)
    test = sorted(f"spk{i:04d}" for i in order[:num_test_speakers])
    return CorpusPlan(speakers, test, sessions, utterances)


def render_utterance(plan: UtterancePlan, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Synthesise one utterance: ``(waveform (num_samples,) float32, realised parameters)``."""
    rng = _rng(seed, _RENDER, plan.index)
    voice = realise_voice(plan.traits, plan.emotion, rng)
    tracks = articulate(voice, plan.num_samples, SAMPLE_RATE, rng)
    speech = synthesise(tracks, voice, SAMPLE_RATE, rng)
    channel = perturb_channel(plan.channel, rng)
    wave = apply_channel(speech, channel, SAMPLE_RATE, rng, gain_db=voice.effort_db)
    realised = {"voice": voice.to_dict(), "channel": rounded(channel.to_dict())}
    return wave.astype(np.float32), realised


def make_trials(utt2spk: dict[str, str], seed: int) -> list[tuple[str, str, str]]:
    """All target pairs plus as many non-target pairs, drawn uniformly without repetition.

    Pairs are ``(utt1, utt2, "target"|"nontarget")`` with ``utt1 < utt2``, sorted.
    """
    utts = sorted(utt2spk)
    by_spk: dict[str, list[str]] = defaultdict(list)
    for u in utts:
        by_spk[utt2spk[u]].append(u)
    if len(by_spk) < 2:
        raise DataError("trials need at least two speakers")
    targets = [
        (a, b, "target") for us in by_spk.values() for i, a in enumerate(us) for b in us[i + 1 :]
    ]
    if not targets:
        raise DataError("trials need a speaker with at least two utterances")
    total_nontarget = (len(utts) ** 2 - sum(len(us) ** 2 for us in by_spk.values())) // 2
    wanted = min(len(targets), total_nontarget)
    rng = _rng(seed, _TRIALS)
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < wanted:
        i, j = rng.integers(len(utts), size=(2, 2 * (wanted - len(chosen)) + 16))
        for a, b in zip(i.tolist(), j.tolist(), strict=True):
            if utt2spk[utts[a]] != utt2spk[utts[b]]:
                chosen.add((min(a, b), max(a, b)))
                if len(chosen) == wanted:
                    break
    nontargets = [(utts[a], utts[b], "nontarget") for a, b in chosen]
    return sorted(targets + nontargets)


def rounded(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with its floats (also inside lists) rounded to 4 decimals, for the JSON files."""

    def r(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, (tuple, list)):
            return [r(x) for x in v]
        return v

    return {k: r(v) for k, v in d.items()}
