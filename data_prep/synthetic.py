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

The corpus design (speakers, sessions, utterances, split, trials) is :mod:`data_prep.synth.plan`;
every random draw there is seeded by ``(seed, purpose, index)``, so the output is the same for any
``num_jobs``. This module renders the plan with worker processes and writes the files.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from lhotse import AudioSource, MonoCut, Recording
from tqdm import tqdm

from data_prep.corpus import make_cut, write_part
from data_prep.synth.plan import (
    SAMPLE_RATE,
    UtterancePlan,
    make_trials,
    plan_corpus,
    render_utterance,
    rounded,
)
from data_prep.synth.voice import SpeakerTraits
from dino_speech.audio import write_audio
from dino_speech.data.manifests import manifest_path
from dino_speech.errors import ConfigError, DataError
from dino_speech.file_io import atomic_write_text

__all__ = ["CORPUS", "SAMPLE_RATE", "prepare_synthetic"]

log = logging.getLogger(__name__)

CORPUS = "synthetic"
# Bump when the generator's output changes, so an old corpus is not mistaken for a new one.
GENERATOR_VERSION = 2
PARTS = ("train", "test")


def _render_and_write(job: tuple[UtterancePlan, int, str]) -> dict[str, Any]:
    plan, seed, path = job
    wave, realised = render_utterance(plan, seed)
    write_audio(path, wave, SAMPLE_RATE)
    return realised


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

    started = time.monotonic()
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
        write_part(out, CORPUS, part, cut_list)
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
                "sessions": {s: rounded(plan.sessions[s].to_dict()) for s in sessions_of[spk]},
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
    record["seconds"] = round(time.monotonic() - started, 1)  # wall time of the generation
    atomic_write_text(out / "corpus.json", json.dumps(record, indent=2) + "\n")
    return _summary(record, out, skipped=False)


def _make_cut(u: UtterancePlan, path: Path) -> MonoCut:
    recording = Recording(
        id=u.utt_id,
        sources=[AudioSource(type="file", channels=[0], source=str(path))],
        sampling_rate=SAMPLE_RATE,
        num_samples=u.num_samples,
        duration=u.num_samples / SAMPLE_RATE,
    )
    return make_cut(
        recording,
        speaker=u.speaker,
        gender=u.traits.sex,
        custom={"emotion": u.emotion, "session": u.session},
    )
