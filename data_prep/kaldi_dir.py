"""An existing Kaldi data directory: ``dino-speech prepare kaldi``.

Read from ``DATA_DIR``::

    wav.scp         required: <recording> <path>; relative paths resolve against DATA_DIR first,
                    then the working directory
    segments        optional: <utt> <recording> <start> <end> (seconds; end -1 = to the end);
                    without it each wav.scp entry is one utterance
    utt2spk         speaker;   utt2emo -> emotion;   utt2lang -> language
    utt2sess / utt2session -> session;   utt2gender or spk2gender -> gender
    utt2<X>         any other list -> cut.custom[X]

Piped entries (``sox ... - |``), stdin (``-``) and archive offsets (``foo.ark:123``) are not
read: write the audio to files first. Bad audio, too short utterances and segments past the end
of their recording are listed in ``OUT/skipped`` (``<utt><TAB><reason>``); the split options and
outputs are those of ``prepare audio`` (:mod:`data_prep.splits`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from lhotse import MonoCut
from lhotse.utils import fastcopy

from data_prep.corpus import (
    Stamp,
    files_digest,
    listing_digest,
    make_cut,
    normalise_gender,
    require_dir,
)
from data_prep.splits import Split, check_audio, too_short, write_prepared
from dino_speech.data.manifests import read_kaldi_list
from dino_speech.errors import DataError

__all__ = ["prepare_kaldi_dir", "read_wav_scp"]

log = logging.getLogger(__name__)

# utt2<list> -> the cut.custom key it fills (other utt2X lists fill X)
_LIST_KEYS = {
    "utt2spk": "speaker",
    "utt2emo": "emotion",
    "utt2lang": "language",
    "utt2sess": "session",
    "utt2session": "session",
    "utt2gender": "gender",
}
_ARK_OFFSET = re.compile(r"(^ark:)|(:\d+$)")


def read_wav_scp(data_dir: Path) -> dict[str, Path]:
    """``{recording id: audio path}`` of ``data_dir/wav.scp``, relative paths resolved.

    Raises:
        DataError: no wav.scp, or a piped command, stdin or archive entry.
    """
    wav_scp = data_dir / "wav.scp"
    entries = read_kaldi_list(wav_scp)
    paths: dict[str, Path] = {}
    for rec, value in entries.items():
        value = value.strip()
        if value == "-" or value.endswith("|") or value.startswith("|"):
            raise DataError(
                f"{wav_scp}: entry '{rec}' is a piped command ('{value[:60]}'); piped wav.scp "
                "commands are not supported: write the audio to files first (e.g. with sox or "
                "Kaldi's wav-copy) and list the files"
            )
        path = Path(value)
        if not path.is_absolute():
            in_dir, in_cwd = data_dir / path, Path.cwd() / path
            path = in_cwd if not in_dir.exists() and in_cwd.exists() else in_dir
        if not path.exists() and _ARK_OFFSET.search(value):
            raise DataError(
                f"{wav_scp}: entry '{rec}' is an archive offset ('{value[:60]}'); ark: entries "
                "are not supported: write the audio to files first (e.g. with Kaldi's wav-copy) "
                "and list the files"
            )
        paths[rec] = path
    return paths


def _read_segments(path: Path, recordings: dict[str, Path]) -> dict[str, tuple[str, float, float]]:
    """``{utt: (recording, start, end)}``; ``end`` is -1 for "to the end"."""
    segments = {}
    for utt, value in read_kaldi_list(path).items():
        fields = value.split()
        try:
            rec, start, end = fields[0], float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            raise DataError(f"{path}: '{utt} {value}': expected 'UTT REC START END'") from None
        if rec not in recordings:
            raise DataError(f"{path}: utterance '{utt}' names recording '{rec}', not in wav.scp")
        if start < 0 or (end >= 0 and end <= start):
            raise DataError(f"{path}: utterance '{utt}' has start {start} and end {end}")
        segments[utt] = (rec, start, end)
    return segments


def _label_lists(data_dir: Path) -> dict[str, Path]:
    """``{custom key: utt2* path}`` of the label lists present (segments and wav.scp aside)."""
    lists = {}
    for path in sorted(data_dir.glob("utt2*")):
        if path.is_file() and not path.name.endswith((".tmp", "~")):
            key = _LIST_KEYS.get(path.name, path.name[len("utt2") :])
            lists.setdefault(key, path)
    return lists


def _labels(data_dir: Path, utts: set[str]) -> dict[str, dict[str, str]]:
    """``{utt: {key: value}}`` from the label lists (and ``spk2gender``)."""
    labels: dict[str, dict[str, str]] = {utt: {} for utt in utts}
    for key, path in _label_lists(data_dir).items():
        values = read_kaldi_list(path)
        unknown = [u for u in values if u not in labels]
        if unknown:
            log.warning("%s: %d utterances not in wav.scp/segments are ignored", path, len(unknown))
        for utt, value in values.items():
            if utt in labels:
                labels[utt][key] = value
    spk2gender = data_dir / "spk2gender"
    if spk2gender.is_file():
        genders = read_kaldi_list(spk2gender)
        for found in labels.values():
            if "gender" not in found and found.get("speaker") in genders:
                found["gender"] = genders[found["speaker"]]
    return labels


def prepare_kaldi_dir(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = "kaldi",
    split: Split | None = None,
    min_duration: float = 0.5,
    num_jobs: int = 1,
) -> str:
    """Prepare the Kaldi data directory ``data_dir`` into ``out_dir``; returns a summary.

    Outputs as :func:`data_prep.audio_folder.prepare_audio_folder`; with ``segments`` each cut
    is the segment of its recording. Rerunning on the same lists and options does nothing.

    Raises:
        DataError: no or unsupported wav.scp, malformed lists, nothing usable, or a split
            without speakers.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    require_dir(data_dir, "Kaldi data directory", "a folder holding wav.scp")
    split = split or Split()
    audio = read_wav_scp(data_dir)
    lists = [data_dir / n for n in ("wav.scp", "segments", "spk2gender")]
    lists += _label_lists(data_dir).values()
    stamp = Stamp(
        out_dir,
        name,
        {
            "data_dir": data_dir.resolve(),
            "lists": files_digest(p for p in lists if p.is_file()),
            "audio": listing_digest(p.absolute() for p in audio.values()),
            "min_duration": min_duration,
            **split.options(),
        },
    )
    if (done := stamp.done()) is not None:
        return done
    has_segments = (data_dir / "segments").is_file()
    segments = (
        _read_segments(data_dir / "segments", audio)
        if has_segments
        else {rec: (rec, 0.0, -1.0) for rec in audio}
    )
    labels = _labels(data_dir, set(segments))
    if split.enabled and not any("speaker" in found for found in labels.values()):
        raise DataError(f"--dev-speakers/--dev-fraction need speakers; {data_dir} has no utt2spk")
    used = sorted({rec for rec, _, _ in segments.values()})
    recordings, failures = check_audio([(rec, audio[rec]) for rec in used], num_jobs=num_jobs)
    cuts: list[MonoCut] = []
    skipped: dict[str, str] = {}
    for utt, (rec, start, end) in sorted(segments.items()):
        if rec in failures:
            skipped[utt] = f"{audio[rec]}: {failures[rec]}"
            continue
        recording = recordings[rec]
        if end > recording.duration + 0.01:
            skipped[utt] = f"ends at {end:g} s, after the end of {rec} ({recording.duration:g} s)"
            continue
        end = recording.duration if end < 0 else min(end, recording.duration)
        if (reason := too_short(end - start, min_duration)) is not None:
            skipped[utt] = reason
            continue
        cuts.append(_cut(utt, recording, start, end, labels[utt], whole=not has_segments))
    summary = write_prepared(
        stamp,
        cuts,
        skipped,
        split,
        source=str(data_dir),
        no_speakers_hint=f"no utterance of {data_dir} is in utt2spk",
    )
    return summary


def _cut(
    utt: str, recording: Any, start: float, end: float, found: dict[str, str], *, whole: bool
) -> MonoCut:
    """The cut of utterance ``utt``: ``[start, end)`` of ``recording``, with its labels."""
    custom: dict[str, Any] = dict(found)
    speaker = custom.pop("speaker", None)
    gender = custom.pop("gender", None)
    cut = make_cut(
        recording, speaker=speaker, gender=normalise_gender(gender) or gender, custom=custom
    )
    if whole:
        return cut
    duration = end - start  # supervision times inside a cut are relative to the cut
    supervisions = [fastcopy(s, id=utt, start=0.0, duration=duration) for s in cut.supervisions]
    return fastcopy(cut, id=utt, start=start, duration=duration, supervisions=supervisions)
