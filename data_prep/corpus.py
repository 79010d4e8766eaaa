"""Shared machinery of the corpus preparers: read audio headers, build cuts, write parts.

Every preparer in ``data_prep`` follows the same steps: check that the corpus folder has the
expected layout (:func:`require_dir`), list its audio files with their utterance ids, read their
headers (:func:`scan_recordings`, in parallel, with a progress bar; unreadable or empty files are
skipped with a warning), turn each recording into a :class:`~lhotse.MonoCut` that carries its
labels in ``cut.custom`` (:func:`make_cut`), and write each part as Lhotse manifests plus
Kaldi-style lists (:func:`write_part`, :func:`write_parts`). A stamp file (:class:`Stamp`)
records the options, fingerprints of the input files (:func:`listing_digest`,
:func:`files_digest`) and the outputs of a finished run, so rerunning on the same inputs does
nothing, while adding audio to the corpus (say, extracting the VoxCeleb1 test zip after the dev
one) or editing a label file makes the rerun prepare again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from lhotse import CutSet, MonoCut, Recording, RecordingSet, SupervisionSegment, SupervisionSet
from lhotse.audio import AudioSource
from tqdm.auto import tqdm

from dino_speech.audio import AudioError, audio_info
from dino_speech.data.manifests import write_kaldi_lists, write_manifests
from dino_speech.errors import DataError
from dino_speech.file_io import atomic_write_text

__all__ = [
    "LABEL_KEYS",
    "Stamp",
    "describe_parts",
    "files_digest",
    "iter_files",
    "listing_digest",
    "make_cut",
    "normalise_gender",
    "require_dir",
    "scan_recordings",
    "write_part",
    "write_parts",
]

log = logging.getLogger(__name__)

# Labels written as Kaldi ``utt2*`` lists when a cut has them.
LABEL_KEYS: tuple[str, ...] = ("speaker", "emotion", "session")

_GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female"}


def normalise_gender(value: str | None) -> str | None:
    """``"male"``/``"female"`` from the spellings corpora use (m, M, Male, f, F, Female...)."""
    if value is None:
        return None
    return _GENDERS.get(value.strip().lower())


def require_dir(path: Path, what: str, expected: str) -> Path:
    """Return ``path`` if it is a directory, else raise a DataError saying what was expected."""
    if not path.is_dir():
        raise DataError(f"{what} not found: {path} is not a directory; expected {expected}")
    return path


def iter_files(root: Path, suffixes: Iterable[str], desc: str) -> Iterator[Path]:
    """Every file under ``root`` (recursively, sorted per folder) whose suffix is in ``suffixes``.

    Hidden files (``.*``, e.g. the macOS ``._name.wav`` resource forks some copies of
    corpora carry) are skipped. Shows a progress counter, since large corpora take a while
    to list.
    """
    wanted = {s.lower() for s in suffixes}
    with tqdm(desc=desc, unit=" files", leave=False) as bar:
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(folder.iterdir())
            except OSError as exc:
                raise DataError(f"cannot list {folder}: {exc.strerror or exc}") from None
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append(entry)
                elif entry.suffix.lower() in wanted:
                    bar.update()
                    yield entry


def scan_recordings(
    items: Sequence[tuple[str, Path]], *, num_jobs: int = 1, desc: str = "Reading audio headers"
) -> tuple[dict[str, Recording], list[tuple[Path, str]]]:
    """Read the headers of ``items`` (``(recording id, path)``) into Lhotse recordings.

    Only headers are read (:func:`dino_speech.audio.audio_info`), ``num_jobs`` processes in
    parallel. Paths are stored absolute, so manifests work from any working directory.

    Returns:
        ``({id: Recording}, [(path, reason), ...])``: the files that could not be read or hold
        no samples are left out, listed with the reason, and logged as a warning.

    Raises:
        DataError: two items share an id (the message names both files).
    """
    seen: dict[str, Path] = {}
    for rec_id, path in items:
        if rec_id in seen:
            raise DataError(
                f"two audio files map to the same utterance id '{rec_id}': {seen[rec_id]} and "
                f"{path}; keep only one copy of each file (e.g. not both a .wav and a .flac)"
            )
        seen[rec_id] = path
    paths = [os.path.abspath(p) for _, p in items]  # no per-file syscalls on 1M files
    if num_jobs > 1 and len(paths) > 1:
        with ProcessPoolExecutor(num_jobs) as pool:
            chunk = max(1, min(512, len(paths) // (8 * num_jobs)))
            infos = list(
                tqdm(pool.map(_header, paths, chunksize=chunk), total=len(paths), desc=desc)
            )
    else:
        infos = [_header(p) for p in tqdm(paths, desc=desc)]

    recordings: dict[str, Recording] = {}
    failures: list[tuple[Path, str]] = []
    for (rec_id, _), path, info in zip(items, paths, infos, strict=True):
        if isinstance(info, str):
            failures.append((Path(path), info))
            continue
        sample_rate, frames, channels = info
        recordings[rec_id] = Recording(
            id=rec_id,
            sources=[AudioSource(type="file", channels=list(range(channels)), source=path)],
            sampling_rate=sample_rate,
            num_samples=frames,
            duration=frames / sample_rate,
        )
    if failures:
        shown = "; ".join(f"{p}: {why}" for p, why in failures[:3])
        log.warning(
            "skipped %d of %d audio files that could not be read or are empty, e.g. %s",
            len(failures),
            len(paths),
            shown,
        )
    return recordings, failures


def _header(path: str) -> tuple[int, int, int] | str:
    """``(sample_rate, frames, channels)`` of one file, or the reason it is unusable."""
    try:
        sample_rate, frames, channels = audio_info(path)
    except AudioError as exc:
        return exc.reason
    if frames <= 0:
        return "audio is empty (0 samples)"
    return sample_rate, frames, channels


def make_cut(
    recording: Recording,
    *,
    speaker: str | None = None,
    gender: str | None = None,
    text: str | None = None,
    custom: Mapping[str, Any] | None = None,
) -> MonoCut:
    """A cut spanning ``recording`` with one supervision and its labels in ``cut.custom``.

    ``speaker`` goes both to the supervision (Lhotse's native place) and to
    ``cut.custom["speaker"]``; ``gender`` likewise. ``custom`` entries whose value is ``None``
    are left out, so a missing label is absent rather than null.
    """
    labels: dict[str, Any] = {}
    if speaker is not None:
        labels["speaker"] = speaker
    if gender is not None:
        labels["gender"] = gender
    labels.update({k: v for k, v in (custom or {}).items() if v is not None})
    supervision = SupervisionSegment(
        id=recording.id,
        recording_id=recording.id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        text=text,
        speaker=speaker,
        gender=gender,
    )
    return MonoCut(
        id=recording.id,
        start=0.0,
        duration=recording.duration,
        channel=0,
        supervisions=[supervision],
        recording=recording,
        custom=labels or None,
    )


def write_part(
    out_dir: Path,
    corpus: str,
    part: str,
    cuts: Sequence[MonoCut],
    keys: Sequence[str] = LABEL_KEYS,
) -> list[Path]:
    """Write one part: ``{corpus}_{recordings,supervisions,cuts}_{part}.jsonl.gz`` in
    ``out_dir`` and the Kaldi lists (``wav.scp``, ``utt2spk``, ``spk2utt``, ``utt2<key>``...)
    in ``out_dir/part``. Returns the paths written."""
    ordered = sorted(cuts, key=lambda c: c.id)
    if not ordered:
        raise DataError(f"{corpus}: part '{part}' has no utterances to write")
    cut_set = CutSet.from_cuts(ordered)
    recordings = RecordingSet.from_recordings(c.recording for c in ordered)
    # inside a cut supervision times count from the cut's start; the manifest counts from the
    # recording's (a cut of a Kaldi segment starts inside its recording)
    supervisions = SupervisionSet.from_segments(
        s.with_offset(c.start) for c in ordered for s in c.supervisions
    )
    written = list(
        write_manifests(out_dir, corpus, part, recordings, supervisions, cut_set).values()
    )
    written += list(write_kaldi_lists(cut_set, out_dir / part, keys=keys).values())
    return written


def write_parts(
    stamp: Stamp,
    parts: Mapping[str, Sequence[MonoCut]],
    *,
    notes: Sequence[str] = (),
    extra_files: Iterable[Path] = (),
) -> str:
    """Write every part (:func:`write_part`, the default label lists), then record the finished
    run in ``stamp`` (with ``extra_files``, e.g. trial lists written beside the parts).

    Returns:
        The summary: :func:`describe_parts` followed by the ``notes`` lines.
    """
    written = list(extra_files)
    bar = tqdm(parts.items(), desc="Writing manifests and lists", unit="part", leave=False)
    for part, cuts in bar:
        bar.set_postfix_str(f"{part}: {len(cuts)} cuts")
        written += write_part(stamp.out_dir, stamp.corpus, part, cuts)
    summary = "\n".join([describe_parts(stamp.corpus, stamp.out_dir, parts), *notes])
    stamp.write(written, summary)
    return summary


def describe_parts(corpus: str, out_dir: Path, parts: Mapping[str, Sequence[MonoCut]]) -> str:
    """A short table: each part's utterances, speakers and hours."""
    lines = [f"Prepared {corpus} in {out_dir}:"]
    width = max(len(p) for p in parts)
    for part, cuts in parts.items():
        speakers = {c.custom.get("speaker") for c in cuts if c.custom and c.custom.get("speaker")}
        hours = sum(c.duration for c in cuts) / 3600
        lines.append(
            f"  {part:<{width}}  {len(cuts):>8} utterances  {len(speakers):>5} speakers"
            f"  {hours:8.2f} h"
        )
    return "\n".join(lines)


def listing_digest(paths: Iterable[str | Path]) -> str:
    """A digest of a set of file paths (order does not matter), for :class:`Stamp` options:
    files added to or removed from a corpus change it. Only names are hashed, so it costs
    nothing beyond the listing a preparer makes anyway."""
    return _digest(str(p) for p in paths)


def files_digest(paths: Iterable[Path]) -> str:
    """A digest of the paths, sizes and modification times of a few label or list files, for
    :class:`Stamp` options: editing, replacing, adding or removing one changes it."""
    return _digest(f"{p.resolve()}\t{p.stat().st_size}\t{p.stat().st_mtime_ns}" for p in paths)


def _digest(items: Iterable[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for item in sorted(items):
        digest.update(item.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


class Stamp:
    """The record of a finished preparation: ``out_dir/.{corpus}.prepared.json``.

    It holds the options of the run (which include fingerprints of its inputs), the files it
    wrote and its summary. A rerun with the same options whose files all still exist is
    skipped: :meth:`done` returns the message to print instead.
    """

    def __init__(self, out_dir: Path, corpus: str, options: Mapping[str, Any]) -> None:
        self.path = Path(out_dir) / f".{corpus}.prepared.json"
        self.out_dir = Path(out_dir)
        self.corpus = corpus
        self.options = json.loads(json.dumps(dict(options), default=str))
        self.started = time.monotonic()

    def done(self) -> str | None:
        """``"{corpus} already prepared in {out_dir}; nothing to do."`` and the saved summary if
        this exact preparation already finished, else ``None``."""
        if not self.path.is_file():
            return None
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if saved.get("options") != self.options:
            log.info("%s: options or inputs differ from the last run; preparing again", self.path)
            return None
        files = saved.get("files", [])
        missing = [f for f in files if not (self.out_dir / f).is_file()]
        if missing:
            log.info("%s: %d output files are missing; preparing again", self.path, len(missing))
            return None
        summary = str(saved.get("summary", ""))
        return f"{self.corpus} already prepared in {self.out_dir}; nothing to do.\n{summary}"

    def write(self, files: Iterable[Path], summary: str) -> None:
        """Record a finished run (written last, atomically)."""
        record = {
            "options": self.options,
            "files": sorted(
                {str(Path(f).resolve().relative_to(self.out_dir.resolve())) for f in files}
            ),
            "summary": summary,
            "seconds": round(time.monotonic() - self.started, 1),  # wall time of the run
        }
        atomic_write_text(self.path, json.dumps(record, indent=1) + "\n")
