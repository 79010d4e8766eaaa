"""Lhotse manifests and Kaldi-style lists: loading, labels in cut ``custom`` fields, writing.

All data state lives in manifests (DESIGN.md, principle 3): a cut's id is the utterance id
(the key of ``wav.scp``, ``utt2spk``, trial lists and embedding archives), and its labels live
in ``cut.custom`` as ``speaker``, ``emotion``, ``session`` (strings) and ``pseudo_speaker``
(int). Kaldi-style lists (``wav.scp``, ``utt2spk``, ``spk2utt``, ``utt2emo``, ``utt2sess``) are
derived views written from the cuts, for tools that expect them.

A prepared corpus directory ``OUT`` holds ``{corpus}_{kind}_{part}.jsonl.gz`` for the kinds
recordings, supervisions and cuts (see :func:`manifest_path`) and ``OUT/{part}/`` with the
Kaldi lists.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lhotse import CutSet, RecordingSet, SupervisionSet
from lhotse.cut import Cut

from dino_speech.errors import DataError
from dino_speech.file_io import atomic_path

__all__ = [
    "KALDI_LIST_NAMES",
    "attach_labels",
    "cut_label",
    "filter_min_duration",
    "load_cuts",
    "manifest_path",
    "read_kaldi_list",
    "write_kaldi_lists",
    "write_manifests",
]

# Label key in ``cut.custom`` -> name of the Kaldi ``utt2*`` list holding it.
KALDI_LIST_NAMES: dict[str, str] = {
    "speaker": "utt2spk",
    "emotion": "utt2emo",
    "session": "utt2sess",
}

MANIFEST_KINDS = ("recordings", "supervisions", "cuts")


def manifest_path(out_dir: str | Path, corpus: str, kind: str, part: str) -> Path:
    """``out_dir/{corpus}_{kind}_{part}.jsonl.gz`` (kind: recordings, supervisions or cuts)."""
    if kind not in MANIFEST_KINDS:
        raise ValueError(f"unknown manifest kind '{kind}'; valid: {', '.join(MANIFEST_KINDS)}")
    return Path(out_dir) / f"{corpus}_{kind}_{part}.jsonl.gz"


def load_cuts(path: str | Path) -> CutSet:
    """Read a cut manifest (``.jsonl.gz``, ``.jsonl``, ``.json``) eagerly.

    Raises:
        DataError: the file is missing, unreadable, not a cut manifest, or holds no cuts.
    """
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.is_dir():
            found = sorted(p.name for p in path.glob("*_cuts_*.jsonl.gz"))
            hint = f" (it is a directory; cut manifests in it: {', '.join(found) or 'none'})"
        raise DataError(f"cut manifest not found: {path}{hint}")
    try:
        cuts = CutSet.from_file(path)
        # lhotse returns None for an empty file
        cuts = CutSet.from_cuts([]) if cuts is None else cuts.to_eager()
    except Exception as exc:  # lhotse raises many types for malformed files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a valid Lhotse cut manifest ({reason})") from None
    if not isinstance(cuts, CutSet):
        # lhotse detects the manifest type from the first item and may return another set
        raise DataError(f"{path}: holds a {type(cuts).__name__}, not a cut manifest")
    if len(cuts) == 0:
        raise DataError(f"{path}: the cut manifest holds no cuts")
    return cuts


def cut_label(cut: Cut, key: str) -> str | None:
    """The label ``key`` of a cut as a string, or ``None`` if the cut has none.

    Reads ``cut.custom[key]``; for ``key == "speaker"`` it falls back to the speaker of the
    cut's first supervision (Lhotse's native place for it).
    """
    custom = getattr(cut, "custom", None) or {}
    value = custom.get(key)
    if value is None and key == "speaker":
        supervisions = getattr(cut, "supervisions", None) or []
        if supervisions:
            value = supervisions[0].speaker
    return None if value is None else str(value)


def attach_labels(
    cuts: CutSet, key: str, mapping: Mapping[str, Any], *, require_all: bool = False
) -> CutSet:
    """Return new cuts with ``custom[key] = mapping[cut.id]`` (eager; input unchanged).

    Cuts whose id is not in ``mapping`` are kept as they are, unless ``require_all``.
    Values must be JSON-serialisable (str, int, float).

    Raises:
        DataError: ``mapping`` names ids that are not in ``cuts`` (e.g. labels from another
            corpus), or ``require_all`` and some cut has no entry.
    """
    cut_list = list(cuts)
    ids = {c.id for c in cut_list}
    unknown = [i for i in mapping if i not in ids]
    if unknown:
        raise DataError(
            f"{len(unknown)} of {len(mapping)} '{key}' labels name cuts that are not in the "
            f"cut set, e.g. {', '.join(sorted(unknown)[:3])}"
        )
    if require_all:
        missing = [c.id for c in cut_list if c.id not in mapping]
        if missing:
            raise DataError(
                f"{len(missing)} of {len(cut_list)} cuts have no '{key}' label, "
                f"e.g. {', '.join(sorted(missing)[:3])}"
            )
    return CutSet.from_cuts(
        c.with_custom(key, mapping[c.id]) if c.id in mapping else c for c in cut_list
    )


def filter_min_duration(cuts: CutSet, seconds: float) -> CutSet:
    """Keep the cuts at least ``seconds`` long (eager)."""
    return CutSet.from_cuts(c for c in cuts if c.duration >= seconds)


def write_kaldi_lists(
    cuts: CutSet,
    out_dir: str | Path,
    keys: Iterable[str] = ("speaker", "emotion", "session"),
) -> dict[str, Path]:
    """Write Kaldi-style lists for ``cuts`` into ``out_dir``, sorted by utterance id.

    Always writes ``wav.scp`` (utterance id -> absolute audio path). If some cut covers only
    part of its recording, ``wav.scp`` is keyed by recording id instead and a Kaldi
    ``segments`` file (``utt rec start end``) is written. For each label in ``keys`` that at
    least one cut has, ``utt2<name>`` is written (``utt2spk``, ``utt2emo``, ``utt2sess``; any
    other key ``k`` gives ``utt2k``) plus ``spk2utt`` for speakers.

    Returns:
        ``{list name: path}`` of the files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cut_list = sorted(cuts, key=lambda c: c.id)
    if not cut_list:
        raise DataError(f"no cuts to write Kaldi lists for into {out_dir}")
    seen: set[str] = set()
    for c in cut_list:
        if c.id in seen:
            raise DataError(f"duplicate cut id '{c.id}': Kaldi lists need unique utterance ids")
        seen.add(c.id)

    written: dict[str, Path] = {}
    audio = {c.id: _audio_path(c) for c in cut_list}
    whole = all(_covers_recording(c) and c.id == c.recording.id for c in cut_list)
    if whole:
        written["wav.scp"] = _write_list(out_dir / "wav.scp", audio.items())
    else:
        recordings = {c.recording.id: audio[c.id] for c in cut_list}
        written["wav.scp"] = _write_list(out_dir / "wav.scp", sorted(recordings.items()))
        segments = (
            (c.id, f"{c.recording.id} {c.start:.3f} {c.start + c.duration:.3f}") for c in cut_list
        )
        written["segments"] = _write_list(out_dir / "segments", segments)

    for key in keys:
        labels = [(c.id, cut_label(c, key)) for c in cut_list]
        labels = [(u, v) for u, v in labels if v is not None]
        if not labels:
            continue
        for utt, value in labels:
            if any(ch.isspace() for ch in value):
                raise DataError(f"cut '{utt}': label {key}='{value}' contains whitespace")
        name = KALDI_LIST_NAMES.get(key, f"utt2{key}")
        written[name] = _write_list(out_dir / name, labels)
        if key == "speaker":
            spk2utt: dict[str, list[str]] = defaultdict(list)
            for utt, spk in labels:
                spk2utt[spk].append(utt)
            rows = ((spk, " ".join(utts)) for spk, utts in sorted(spk2utt.items()))
            written["spk2utt"] = _write_list(out_dir / "spk2utt", rows)
    return written


def read_kaldi_list(path: str | Path) -> dict[str, str]:
    """Read a Kaldi ``key value...`` list (``wav.scp``, ``utt2spk``, ``spk2utt``...).

    The value is the rest of the line after the first run of whitespace (so ``wav.scp`` commands
    and ``spk2utt`` utterance lists stay whole). Blank lines are ignored.

    Raises:
        DataError: the file is missing, a line has no value, or a key repeats; the message
            names the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Kaldi list not found: {path}")
    result: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise DataError(f"{path}:{lineno}: expected 'KEY VALUE', got '{line[:80]}'")
            key, value = parts
            if key in result:
                raise DataError(f"{path}:{lineno}: duplicate key '{key}'")
            result[key] = value
    return result


def write_manifests(
    out_dir: str | Path,
    corpus: str,
    part: str,
    recordings: RecordingSet,
    supervisions: SupervisionSet,
    cuts: CutSet,
) -> dict[str, Path]:
    """Write ``{corpus}_{recordings,supervisions,cuts}_{part}.jsonl.gz`` into ``out_dir``.

    Returns:
        ``{"recordings": path, "supervisions": path, "cuts": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: manifest_path(out_dir, corpus, kind, part) for kind in MANIFEST_KINDS}
    for kind, manifest in zip(MANIFEST_KINDS, (recordings, supervisions, cuts), strict=True):
        with atomic_path(paths[kind], suffix=".jsonl.gz") as tmp:
            manifest.to_file(tmp)
    return paths


def _audio_path(cut: Cut) -> str:
    recording = getattr(cut, "recording", None)
    if recording is None or not recording.sources:
        raise DataError(f"cut '{cut.id}' has no recording, so it has no wav.scp entry")
    source = recording.sources[0]
    if source.type != "file":
        raise DataError(f"cut '{cut.id}': audio source type '{source.type}' is not a file")
    return str(Path(source.source).resolve())


def _covers_recording(cut: Cut) -> bool:
    return cut.start == 0 and abs(cut.duration - cut.recording.duration) < 1e-3


def _write_list(path: Path, rows: Iterable[tuple[str, str]]) -> Path:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for key, value in rows:
            f.write(f"{key} {value}\n")
    return path
