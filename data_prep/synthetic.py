"""The built-in synthetic speech corpus: ``dino-speech prepare synthetic``.

Speakers are procedural source-filter voices (:mod:`data_prep.synth`): each has fixed traits
(F0 level and range, formant scaling, glottal tilt, breathiness, jitter, shimmer, speaking rate),
speaks random phone sequences from one shared inventory, in one of four emotions, over a few
sessions whose recording channels (EQ, band limit, room, noise) differ. A speaker can only be
told apart by what survives a channel change, so the corpus is a real test for speaker
embeddings and needs no download.

Layout of ``OUT`` (see PLAN.md)::

    corpus.json                                settings + completeness (idempotency)
    speaker_traits.json, utterance_traits.json ground truth (traits, realised voice, channel)
    wavs/<spk>/<utt>.wav                       16 kHz mono PCM16
    synthetic_{recordings,supervisions,cuts}_{train,test}.jsonl.gz
    {train,test}/wav.scp utt2spk spk2utt utt2emo utt2sess;  test/trials

Every random draw comes from a generator seeded by ``(seed, purpose, index)``, so the output is
the same for any ``num_jobs``, and adding utterances or speakers leaves the existing speakers'
voices unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import shutil
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lhotse import (
    AudioSource,
    CutSet,
    MonoCut,
    Recording,
    RecordingSet,
    SupervisionSegment,
    SupervisionSet,
)
from tqdm import tqdm

from data_prep.synth.channel import Channel, apply_channel, perturb_channel, sample_channel
from data_prep.synth.phones import articulate
from data_prep.synth.source_filter import synthesise
from data_prep.synth.voice import (
    SpeakerTraits,
    realise_voice,
    sample_emotion,
    sample_speaker_traits,
)
from dino_speech.audio import write_audio
from dino_speech.data.manifests import manifest_path, write_kaldi_lists, write_manifests
from dino_speech.errors import ConfigError, DataError

__all__ = [
    "CORPUS",
    "SAMPLE_RATE",
    "UtterancePlan",
    "make_trials",
    "plan_corpus",
    "prepare_synthetic",
    "render_utterance",
]

log = logging.getLogger(__name__)

CORPUS = "synthetic"
SAMPLE_RATE = 16000
# Bump when the generator's output changes, so an old corpus is not mistaken for a new one.
GENERATOR_VERSION = 2
PARTS = ("train", "test")

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
    realised = {"voice": voice.to_dict(), "channel": _round(channel.to_dict())}
    return wave.astype(np.float32), realised


def _render_and_write(job: tuple[UtterancePlan, int, str]) -> dict[str, Any]:
    plan, seed, path = job
    wave, realised = render_utterance(plan, seed)
    write_audio(path, wave, SAMPLE_RATE)
    return realised


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


def _round(d: dict[str, Any]) -> dict[str, Any]:
    def r(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, (tuple, list)):
            return [r(x) for x in v]
        return v

    return {k: r(v) for k, v in d.items()}


def _settings(
    num_speakers: int,
    utts_per_speaker: int,
    duration_range: tuple[float, float],
    num_test_speakers: int,
    seed: int,
) -> dict[str, Any]:
    return {
        "generator_version": GENERATOR_VERSION,
        "num_speakers": num_speakers,
        "utts_per_speaker": utts_per_speaker,
        "duration_range": [float(duration_range[0]), float(duration_range[1])],
        "num_test_speakers": num_test_speakers,
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
    }


def _validate(
    num_speakers: int,
    utts_per_speaker: int,
    duration_range: tuple[float, float],
    num_test_speakers: int | None,
    num_jobs: int,
) -> int:
    if num_speakers < 3:
        raise ConfigError(f"need at least 3 speakers (2 test + 1 train), got {num_speakers}")
    if utts_per_speaker < 2:
        raise ConfigError(f"need at least 2 utterances per speaker, got {utts_per_speaker}")
    lo, hi = (float(v) for v in duration_range)
    if not 0.5 <= lo <= hi <= 60.0:
        raise ConfigError(f"duration range must satisfy 0.5 <= MIN <= MAX <= 60 s, got {lo},{hi}")
    n_test = max(2, num_speakers // 4) if num_test_speakers is None else num_test_speakers
    if not 2 <= n_test <= num_speakers - 1:
        raise ConfigError(
            f"test speakers must be between 2 and {num_speakers - 1} (speakers - 1), got {n_test}"
        )
    if num_jobs < 1:
        raise ConfigError(f"num_jobs must be at least 1, got {num_jobs}")
    return n_test


def _expected_files(out: Path) -> list[Path]:
    files = [out / "speaker_traits.json", out / "utterance_traits.json", out / "test" / "trials"]
    for part in PARTS:
        files += [
            manifest_path(out, CORPUS, k, part) for k in ("recordings", "supervisions", "cuts")
        ]
        files += [out / part / n for n in ("wav.scp", "utt2spk", "spk2utt", "utt2emo", "utt2sess")]
    return files


def _existing_corpus(out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The finished corpus's record if ``out`` holds one made with ``settings``; else None.

    Raises DataError if ``out`` holds something else that regenerating would clobber.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a directory")
    record_path = out / "corpus.json"
    if not record_path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise DataError(
                f"{out} exists, is not empty and holds no synthetic corpus (no corpus.json); "
                "choose an empty or new --out-dir"
            )
        return None
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{record_path}: unreadable corpus record ({exc})") from None
    if not record.get("complete"):
        log.info("%s holds an unfinished corpus; generating it again", out)
        return None
    old = dict(record.get("settings") or {})
    if old.pop("generator_version", None) != settings["generator_version"] and old == {
        k: v for k, v in settings.items() if k != "generator_version"
    }:
        log.info("%s was made by an older generator; generating it again", out)
        return None
    if record.get("settings") != settings:
        raise DataError(
            f"{out} holds a synthetic corpus made with other settings "
            f"({record.get('settings')}); remove it or choose another --out-dir"
        )
    missing = [p for p in _expected_files(out) if not p.is_file()]
    missing += [
        out / "wavs" / u.split("-")[0] / f"{u}.wav"
        for part in PARTS
        for u in _read_ids(out / part / "utt2spk")
        if not (out / "wavs" / u.split("-")[0] / f"{u}.wav").is_file()
    ]
    if missing:
        log.info("%s is incomplete (%s missing); generating it again", out, missing[0])
        return None
    return record


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _summary(record: dict[str, Any], out: Path, skipped: bool) -> str:
    s = record["stats"]
    head = (
        f"Synthetic corpus already complete in {out} (same settings); nothing to do."
        if skipped
        else f"Synthetic corpus written to {out}"
    )
    return "\n".join(
        [
            head,
            f"  speakers: {s['speakers']} ({s['train_speakers']} train, {s['test_speakers']} test);"
            f" utterances: {s['utterances']} ({s['train_utterances']} train,"
            f" {s['test_utterances']} test); {s['hours']:.2f} h of audio at {SAMPLE_RATE} Hz",
            f"  trials: {s['trials']} ({s['target_trials']} target) in {out / 'test' / 'trials'}",
            f"  cuts: {manifest_path(out, CORPUS, 'cuts', 'train')},"
            f" {manifest_path(out, CORPUS, 'cuts', 'test')}",
            f"  true speaker traits: {out / 'speaker_traits.json'}",
        ]
    )


def prepare_synthetic(
    out_dir: str | Path,
    *,
    num_speakers: int = 40,
    utts_per_speaker: int = 20,
    duration_range: tuple[float, float] = (2.0, 6.0),
    num_test_speakers: int | None = None,
    seed: int = 0,
    num_jobs: int = 1,
) -> str:
    """Generate the synthetic corpus into ``out_dir`` and return a short summary.

    Args:
        out_dir: output directory (created; must be empty, new, or hold this corpus).
        num_speakers: speakers in total; split by speaker into train and test.
        utts_per_speaker: utterances per speaker, spread over up to 4 sessions.
        duration_range: utterance length range in seconds (uniform).
        num_test_speakers: speakers in the test split (default: a quarter, at least 2).
        seed: random seed; the same seed gives the same corpus, bit for bit.
        num_jobs: worker processes rendering audio (does not change the output).

    If ``out_dir`` already holds a complete corpus made with the same settings, nothing is
    done. Raises :class:`ConfigError` on bad settings and :class:`DataError` if ``out_dir``
    holds something else.
    """
    n_test = _validate(num_speakers, utts_per_speaker, duration_range, num_test_speakers, num_jobs)
    out = Path(out_dir).resolve()
    settings = _settings(num_speakers, utts_per_speaker, duration_range, n_test, seed)
    record = _existing_corpus(out, settings)
    if record is not None:
        return _summary(record, out, skipped=True)

    out.mkdir(parents=True, exist_ok=True)
    record = {"corpus": CORPUS, "settings": settings, "complete": False}
    (out / "corpus.json").write_text(json.dumps(record, indent=2) + "\n")
    for stale in ("wavs", "train", "test"):
        shutil.rmtree(out / stale, ignore_errors=True)

    plan = plan_corpus(num_speakers, utts_per_speaker, duration_range, n_test, seed)
    paths = {u.utt_id: out / "wavs" / u.speaker / f"{u.utt_id}.wav" for u in plan.utterances}
    jobs = [(u, seed, str(paths[u.utt_id])) for u in plan.utterances]
    bar = tqdm(total=len(jobs), desc="synthesising utterances", unit="utt")
    realised: list[dict[str, Any]] = []
    if num_jobs == 1:
        for job in jobs:
            realised.append(_render_and_write(job))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=num_jobs, mp_context=ctx) as pool:
            for result in pool.map(_render_and_write, jobs, chunksize=4):
                realised.append(result)
                bar.update()
    bar.close()

    test = set(plan.test_speakers)
    parts: dict[str, list[MonoCut]] = {p: [] for p in PARTS}
    for u in plan.utterances:
        parts["test" if u.speaker in test else "train"].append(_make_cut(u, paths[u.utt_id]))
    for part, cut_list in parts.items():
        cuts = CutSet.from_cuts(cut_list)
        recordings = RecordingSet.from_recordings(c.recording for c in cut_list)
        supervisions = SupervisionSet.from_segments(c.supervisions[0] for c in cut_list)
        write_manifests(out, CORPUS, part, recordings, supervisions, cuts)
        write_kaldi_lists(cuts, out / part)
    utt2spk = {u.utt_id: u.speaker for u in plan.utterances if u.speaker in test}
    trials = make_trials(utt2spk, seed)
    (out / "test" / "trials").write_text("".join(f"{a} {b} {t}\n" for a, b, t in trials))

    sessions_of: dict[str, list[str]] = defaultdict(list)
    for sess in plan.sessions:
        sessions_of[sess.rsplit("-", 1)[0]].append(sess)
    speaker_traits = {
        "trait_names": SpeakerTraits.numeric_names(),
        "speakers": {
            spk: {
                "part": "test" if spk in test else "train",
                "traits": traits.to_dict(),
                "sessions": {s: _round(plan.sessions[s].to_dict()) for s in sessions_of[spk]},
            }
            for spk, traits in plan.speakers.items()
        },
    }
    (out / "speaker_traits.json").write_text(json.dumps(speaker_traits, indent=1) + "\n")
    utterance_traits = {
        u.utt_id: {"speaker": u.speaker, "session": u.session, "emotion": u.emotion, **r}
        for u, r in zip(plan.utterances, realised, strict=True)
    }
    (out / "utterance_traits.json").write_text(json.dumps(utterance_traits) + "\n")

    seconds = sum(u.num_samples for u in plan.utterances) / SAMPLE_RATE
    record["stats"] = {
        "speakers": num_speakers,
        "train_speakers": num_speakers - n_test,
        "test_speakers": n_test,
        "utterances": len(plan.utterances),
        "train_utterances": len(parts["train"]),
        "test_utterances": len(parts["test"]),
        "hours": round(seconds / 3600.0, 4),
        "trials": len(trials),
        "target_trials": sum(t == "target" for _, _, t in trials),
    }
    record["complete"] = True
    (out / "corpus.json").write_text(json.dumps(record, indent=2) + "\n")
    return _summary(record, out, skipped=False)


def _make_cut(u: UtterancePlan, path: Path) -> MonoCut:
    duration = u.num_samples / SAMPLE_RATE
    recording = Recording(
        id=u.utt_id,
        sources=[AudioSource(type="file", channels=[0], source=str(path))],
        sampling_rate=SAMPLE_RATE,
        num_samples=u.num_samples,
        duration=duration,
    )
    supervision = SupervisionSegment(
        id=u.utt_id,
        recording_id=u.utt_id,
        start=0.0,
        duration=duration,
        speaker=u.speaker,
        gender="f" if u.traits.sex == "female" else "m",
    )
    return MonoCut(
        id=u.utt_id,
        start=0.0,
        duration=duration,
        channel=0,
        supervisions=[supervision],
        recording=recording,
        custom={"speaker": u.speaker, "emotion": u.emotion, "session": u.session},
    )
