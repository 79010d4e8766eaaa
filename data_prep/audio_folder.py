"""A folder of one's own audio, any layout: ``dino-speech prepare audio``.

Every audio file under the folder (recursively; hidden files skipped) becomes one utterance.
Its id is the relative path without the extension, ``/`` turned into ``-`` and any character
outside ``[A-Za-z0-9._-]`` into ``_`` (``alice/take 1.wav`` -> ``alice-take_1``); paths that
come out the same (``a b.wav`` and ``a_b.wav``, ``x.wav`` and ``x.flac``) each get a short hash
of their relative path appended, so ids are unique and depend on nothing but the path.

Speakers are optional, read from the path with ``--speaker-regex`` (a Python regex with a
named group ``speaker``, searched in the relative path, e.g. ``(?P<speaker>[^/]+)/[^/]+$`` for
``<speaker>/<file>``); DINO trains without them, they serve the dev split and its trials.
Each file is read once; those that cannot be read, are empty, hold NaN/Inf samples or are
shorter than ``--min-duration`` are listed in ``OUT/skipped``. Parts: ``all``, or ``train``
and ``dev`` (whole speakers held out, :class:`data_prep.splits.Split`) with ``dev/trials``.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import soundfile as sf

from data_prep.corpus import Stamp, iter_files, listing_digest, make_cut, require_dir
from data_prep.splits import Split, check_audio, too_short, write_prepared
from dino_speech.errors import DataError

__all__ = ["AUDIO_EXTENSIONS", "parse_speaker_regex", "prepare_audio_folder", "utterance_ids"]

# what soundfile reads, by the usual file name endings (RAW has no header to read)
_FORMAT_ENDINGS = {"aiff": ("aiff", "aif"), "nist": ("nist", "sph"), "ogg": ("ogg", "oga", "opus")}
_NOT_ENDINGS = {"raw", "wavex", "mat4", "mat5"}
AUDIO_EXTENSIONS: tuple[str, ...] = tuple(
    sorted(
        {
            ending
            for fmt in sf.available_formats()
            if fmt.lower() not in _NOT_ENDINGS
            for ending in _FORMAT_ENDINGS.get(fmt.lower(), (fmt.lower(),))
        }
    )
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def utterance_ids(relative_paths: list[str]) -> dict[str, str]:
    """``{relative POSIX path: utterance id}``: sanitised, unique, stable (see the module)."""
    by_id: dict[str, list[str]] = defaultdict(list)
    for rel in relative_paths:
        stem = rel[: -len(Path(rel).suffix)] if Path(rel).suffix else rel
        by_id[_UNSAFE.sub("_", stem.replace("/", "-"))].append(rel)
    ids: dict[str, str] = {}
    for utt, rels in by_id.items():
        for rel in rels:
            if len(rels) == 1:
                ids[rel] = utt
            else:
                key = rel.encode("utf-8", "surrogateescape")
                ids[rel] = f"{utt}-{hashlib.blake2b(key, digest_size=4).hexdigest()}"
    if len(set(ids.values())) != len(ids):  # a hashed id equal to another file's plain one
        raise DataError("utterance ids collide even with hashes; rename a few files")
    return ids


def parse_speaker_regex(pattern: str | None) -> re.Pattern[str] | None:
    """Compile ``--speaker-regex``; it must have a named group ``speaker``."""
    if pattern is None:
        return None
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"--speaker-regex '{pattern}' is not a valid regex: {exc}") from None
    if "speaker" not in regex.groupindex:
        raise DataError(
            f"--speaker-regex '{pattern}' has no named group 'speaker'; "
            "e.g. '(?P<speaker>[^/]+)/[^/]+$' takes the folder holding each file"
        )
    return regex


def _extensions(extensions: tuple[str, ...] | None) -> tuple[str, ...]:
    wanted = tuple(sorted({e.strip().lstrip(".").lower() for e in extensions or () if e.strip()}))
    return wanted or AUDIO_EXTENSIONS


def prepare_audio_folder(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = "audio",
    extensions: tuple[str, ...] | None = None,
    speaker_regex: str | None = None,
    split: Split | None = None,
    min_duration: float = 0.5,
    num_jobs: int = 1,
) -> str:
    """Prepare every audio file under ``corpus_dir`` into ``out_dir``; returns a summary.

    Writes ``{name}_{recordings,supervisions,cuts}_{part}.jsonl.gz``, the Kaldi lists in
    ``out_dir/{part}/``, ``out_dir/skipped`` and, with a split, ``out_dir/dev/trials``.
    Rerunning on the same files and options does nothing.

    Raises:
        DataError: no audio files, none usable, a bad regex, or a split without speakers.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    require_dir(corpus_dir, "audio folder", "a folder holding audio files")
    split = split or Split()
    regex = parse_speaker_regex(speaker_regex)
    hint = (
        "give a --speaker-regex that matches the relative paths, e.g. "
        "'(?P<speaker>[^/]+)/[^/]+$' for <speaker>/<file> folders"
    )
    if regex is None and split.enabled:
        raise DataError(f"--dev-speakers/--dev-fraction need speakers; {hint}")
    endings = _extensions(extensions)
    files = {
        p.relative_to(corpus_dir).as_posix(): p
        for p in iter_files(corpus_dir, [f".{e}" for e in endings], desc="Listing audio files")
    }
    if not files:
        raise DataError(f"{corpus_dir}: no audio files ending in .{', .'.join(endings)}")
    stamp = Stamp(
        out_dir,
        name,
        {
            "corpus_dir": corpus_dir.resolve(),
            "files": listing_digest(files),
            "extensions": endings,
            "speaker_regex": speaker_regex,
            "min_duration": min_duration,
            **split.options(),
        },
    )
    if (done := stamp.done()) is not None:
        return done

    ids = utterance_ids(sorted(files))
    rel_of = {utt: rel for rel, utt in ids.items()}
    recordings, failures = check_audio(
        sorted((utt, files[rel]) for rel, utt in ids.items()), num_jobs=num_jobs
    )
    skipped = {rel_of[utt]: reason for utt, reason in failures.items()}
    cuts, unmatched = [], 0
    for utt, recording in sorted(recordings.items()):
        rel = rel_of[utt]
        if (reason := too_short(recording.duration, min_duration)) is not None:
            skipped[rel] = reason
            continue
        speaker = None
        if regex is not None:
            match = regex.search(rel)
            speaker = "_".join(match["speaker"].split()) if match and match["speaker"] else None
            unmatched += speaker is None
        cuts.append(make_cut(recording, speaker=speaker))
    notes = [f"  no speaker: {unmatched} files matched no --speaker-regex"] if regex else []
    return write_prepared(
        stamp,
        cuts,
        skipped,
        split,
        source=str(corpus_dir),
        no_speakers_hint=hint,
        notes=notes,
    )
