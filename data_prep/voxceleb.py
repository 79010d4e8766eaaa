"""VoxCeleb1 and VoxCeleb2 (Nagrani et al. 2017, Chung et al. 2018) with the Vox1-O/E/H trials.

Expected layout (``--corpus-dir ROOT`` holding ``voxceleb1/`` and/or ``voxceleb2/``, or the two
roots given on their own)::

    voxceleb1/wav/idXXXXX/<youtube_id>/NNNNN.wav   vox1_dev_wav.zip and vox1_test_wav.zip
                                                   both extract to wav/
    voxceleb1/vox1_meta.csv                        optional: gender, nationality, dev/test set
    voxceleb1/veri_test.txt ... list_test_hard2.txt  optional: the trial lists present are converted
    voxceleb2/dev/wav/idXXXXX/<youtube_id>/NNNNN.wav   converted from the official dev/aac/*.m4a
    voxceleb2/test/wav/...                             optional, the VoxCeleb2 test set
    voxceleb2/vox2_meta.csv                            optional: gender, dev/test set

Audio is found anywhere under a root as ``.../idXXXXX/<youtube_id>/NNNNN.{wav,flac}``, so other
arrangements (``vox1_dev_wav/wav``, in-place ``dev/aac/*.wav``, flac) work as well.
VoxCeleb2 is distributed as AAC (``.m4a``), which soundfile, the toolkit's only audio reader,
cannot decode; convert it first, e.g. with ffmpeg (16 kHz mono, wav or flac)::

    cd voxceleb2 && find dev test -name '*.m4a' | sed 's/\\.m4a$//' \\
      | xargs -P 8 -I{} ffmpeg -nostdin -loglevel error -i {}.m4a -ac 1 -ar 16000 {}.wav

The utterance id is ``<speaker>-<youtube_id>-<NNNNN>`` (``id10270-x6uYqmx31kE-00001``), as in
Kaldi's and Lhotse's VoxCeleb recipes. Without the meta files, the VoxCeleb1 test speakers are
the official 40 (id10270 ... id10309) and VoxCeleb2 test files are those under a ``test``
folder.

Written parts (those whose audio is present): ``vox1_dev``, ``vox1_test``, ``vox1`` (all of
VoxCeleb1, written when both halves are present: Vox1-E and H need it), ``vox2_dev``,
``vox2_test``. Cuts carry ``custom`` ``speaker``, ``session`` (the YouTube video), ``subset``
(the part it came from) and, with the meta files, ``gender`` and ``nationality``.

Trial lists (VoxCeleb form ``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``)
are converted to Kaldi form ``utt1 utt2 target|nontarget``:

* Vox1-O cleaned (``veri_test2.txt``) -> ``vox1_test/trials_vox1_o_clean`` and
  ``vox1_test/trials`` (the default list of the part); original (``veri_test.txt``) ->
  ``vox1_test/trials_vox1_o_orig``;
* Vox1-E cleaned / original (``list_test_all2.txt`` / ``list_test_all.txt``) ->
  ``vox1/trials_vox1_e_clean`` / ``vox1/trials_vox1_e_orig``;
* Vox1-H cleaned / original (``list_test_hard2.txt`` / ``list_test_hard.txt``) ->
  ``vox1/trials_vox1_h_clean`` / ``vox1/trials_vox1_h_orig``.

``vox1/`` also receives both Vox1-O lists. Trials naming an utterance whose audio is missing are
dropped with a warning, and the summary gives the count.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_prep.corpus import (
    Stamp,
    files_digest,
    iter_files,
    listing_digest,
    make_cut,
    normalise_gender,
    scan_recordings,
    write_parts,
)
from dino_speech.errors import DataError
from dino_speech.file_io import atomic_path

__all__ = [
    "TRIAL_LISTS",
    "prepare_voxceleb",
    "read_voxceleb_trials",
    "utterance_id",
    "write_kaldi_trials",
]

log = logging.getLogger(__name__)

CORPUS = "voxceleb"

# Kaldi trial list name -> official file name.
TRIAL_LISTS: dict[str, str] = {
    "vox1_o_clean": "veri_test2.txt",
    "vox1_o_orig": "veri_test.txt",
    "vox1_e_clean": "list_test_all2.txt",
    "vox1_e_orig": "list_test_all.txt",
    "vox1_h_clean": "list_test_hard2.txt",
    "vox1_h_orig": "list_test_hard.txt",
}
# The 40 VoxCeleb1 test speakers (used when vox1_meta.csv is absent).
VOX1_TEST_SPEAKERS = frozenset(f"id{n}" for n in range(10270, 10310))

_SPEAKER = re.compile(r"^id\d{5}$")
_READABLE = (".wav", ".flac")
_VOX1_NAMES = ("voxceleb1", "VoxCeleb1", "vox1")
_VOX2_NAMES = ("voxceleb2", "VoxCeleb2", "vox2")


def utterance_id(relative_path: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001``.

    Raises:
        DataError: the path is not ``speaker/video/utterance[.ext]``.
    """
    parts = relative_path.strip().split("/")
    if len(parts) != 3 or not _SPEAKER.match(parts[0]) or not all(parts):
        raise DataError(
            f"'{relative_path}' is not a VoxCeleb utterance path 'idXXXXX/<video>/NNNNN.wav'"
        )
    return "-".join([parts[0], parts[1], parts[2].rsplit(".", 1)[0]])


def read_voxceleb_trials(path: Path) -> list[tuple[str, str, bool]]:
    """``[(utt1, utt2, is_target)]`` from a VoxCeleb trial list (``1|0 path1 path2`` lines).

    Raises:
        DataError: a line is malformed; the message names the file and line.
    """
    trials = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise DataError(
                    f"{path}:{lineno}: expected '1|0 idXXXXX/<video>/NNNNN.wav "
                    f"idXXXXX/<video>/NNNNN.wav', got '{line.strip()[:100]}'"
                )
            try:
                trials.append((utterance_id(fields[1]), utterance_id(fields[2]), fields[0] == "1"))
            except DataError as exc:
                raise DataError(f"{path}:{lineno}: {exc}") from None
    if not trials:
        raise DataError(f"{path}: the trial list is empty")
    return trials


def write_kaldi_trials(path: Path, trials: list[tuple[str, str, bool]]) -> Path:
    """Write ``utt1 utt2 target|nontarget`` lines (atomically)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for utt1, utt2, target in trials:
            f.write(f"{utt1} {utt2} {'target' if target else 'nontarget'}\n")
    return path


def prepare_voxceleb(
    out_dir: str | Path,
    *,
    corpus_dir: str | Path | None = None,
    vox1_dir: str | Path | None = None,
    vox2_dir: str | Path | None = None,
    trials_dir: str | Path | None = None,
    num_jobs: int = 1,
) -> str:
    """Prepare VoxCeleb1 and/or VoxCeleb2 and the Vox1 trial lists; returns a summary.

    Args:
        out_dir: where manifests, lists and trials are written.
        corpus_dir: a folder holding ``voxceleb1/`` and/or ``voxceleb2/`` (or itself one root).
        vox1_dir, vox2_dir: the roots, overriding what ``corpus_dir`` gives.
        trials_dir: where the official trial lists are [default: the VoxCeleb1 root, its
            ``meta/`` folder, and ``corpus_dir``].
        num_jobs: processes reading audio headers.

    Rerunning on the same inputs does nothing.

    Raises:
        DataError: no VoxCeleb audio where expected (the message says what was expected),
            VoxCeleb2 still in AAC, duplicate utterances, or a malformed meta or trial file.
    """
    out_dir = Path(out_dir)
    vox1, vox2 = _roots(corpus_dir, vox1_dir, vox2_dir)
    trial_files = _find_trial_lists(vox1, trials_dir, corpus_dir) if vox1 else {}
    meta_files = [
        root / name
        for root, name in ((vox1, "vox1_meta.csv"), (vox2, "vox2_meta.csv"))
        if root is not None and (root / name).is_file()
    ]
    meta: dict[str, dict[str, str | None]] = {}
    for path in meta_files:
        meta.update(_read_meta(path))
    items = (_vox1_items(vox1, meta) if vox1 else []) + (_vox2_items(vox2, meta) if vox2 else [])
    stamp = Stamp(
        out_dir,
        CORPUS,
        {
            "vox1": vox1.resolve() if vox1 else None,
            "vox2": vox2.resolve() if vox2 else None,
            "trials": sorted(trial_files),
            "lists": files_digest([*trial_files.values(), *meta_files]),
            "audio": listing_digest(item.path for item in items),
        },
    )
    if (done := stamp.done()) is not None:
        return done

    recordings, _ = scan_recordings(
        [(item.utt, item.path) for item in items], num_jobs=num_jobs, desc="VoxCeleb"
    )
    parts: dict[str, list[Any]] = {}
    for item in items:
        if item.utt not in recordings:
            continue
        info = meta.get(item.speaker, {})
        cut = make_cut(
            recordings[item.utt],
            speaker=item.speaker,
            gender=info.get("gender"),
            custom={
                "session": item.video,
                "subset": item.part,
                "nationality": info.get("nationality"),
            },
        )
        parts.setdefault(item.part, []).append(cut)
    if "vox1_dev" in parts and "vox1_test" in parts:
        parts["vox1"] = parts["vox1_dev"] + parts["vox1_test"]
    parts = {
        p: parts[p]
        for p in ("vox1_dev", "vox1_test", "vox1", "vox2_dev", "vox2_test")
        if p in parts
    }
    trial_lines, trial_paths = _write_trials(out_dir, trial_files, parts)
    if not trial_lines and vox1 is not None:
        trial_lines = [
            f"  no trial lists found (looked for {', '.join(TRIAL_LISTS.values())} in the "
            "VoxCeleb1 root; see --trials-dir)"
        ]
    return write_parts(stamp, parts, notes=trial_lines, extra_files=trial_paths)


def _roots(
    corpus_dir: str | Path | None, vox1_dir: str | Path | None, vox2_dir: str | Path | None
) -> tuple[Path | None, Path | None]:
    """The VoxCeleb1 and VoxCeleb2 roots to scan (at least one)."""
    vox1 = Path(vox1_dir) if vox1_dir is not None else None
    vox2 = Path(vox2_dir) if vox2_dir is not None else None
    for root, what in ((vox1, "VoxCeleb1"), (vox2, "VoxCeleb2")):
        if root is not None and not root.is_dir():
            raise DataError(f"{what} folder not found: {root} is not a directory")
    if corpus_dir is not None:
        base = Path(corpus_dir)
        if not base.is_dir():
            raise DataError(f"VoxCeleb folder not found: {base} is not a directory")
        if vox1 is None:
            vox1 = next((base / n for n in _VOX1_NAMES if (base / n).is_dir()), None)
        if vox2 is None:
            vox2 = next((base / n for n in _VOX2_NAMES if (base / n).is_dir()), None)
        if vox1 is None and vox2 is None:
            # the folder may be one root itself
            if (base / "wav").is_dir():
                vox1 = base
            elif (base / "dev").is_dir():
                vox2 = base
            else:
                raise DataError(
                    f"{base} does not look like VoxCeleb: expected {base}/voxceleb1 "
                    "(wav/idXXXXX/<video>/NNNNN.wav) and/or "
                    f"{base}/voxceleb2 (dev/wav/idXXXXX/<video>/NNNNN.wav)"
                )
    if vox1 is None and vox2 is None:
        raise DataError("give --corpus-dir, or --vox1-dir and/or --vox2-dir")
    return vox1, vox2


@dataclass
class _Item:
    """One audio file: ``utt`` = ``speaker-video-NNNNN``; ``part`` is set by the caller."""

    utt: str
    path: Path
    speaker: str
    video: str
    part: str = ""


def _audio_files(root: Path, what: str) -> tuple[list[_Item], int]:
    """The wav/flac utterances under ``root`` and the number of ``.m4a`` files there."""
    found, m4a = [], 0
    for path in iter_files(root, (*_READABLE, ".m4a"), desc=f"Listing {what}"):
        if len(path.parts) < 3 or not _SPEAKER.match(path.parts[-3]):
            continue
        if path.suffix.lower() == ".m4a":
            m4a += 1
            continue
        speaker, video = path.parts[-3], path.parts[-2]
        found.append(_Item(f"{speaker}-{video}-{path.stem}", path, speaker, video))
    return found, m4a


def _vox1_items(root: Path, meta: dict[str, dict[str, str | None]]) -> list[_Item]:
    items, _ = _audio_files(root, "VoxCeleb1")
    if not items:
        raise DataError(
            f"no VoxCeleb1 audio under {root}: expected {root}/wav/idXXXXX/<video>/NNNNN.wav "
            "(vox1_dev_wav.zip and vox1_test_wav.zip both extract to wav/)"
        )
    for item in items:
        split = meta.get(item.speaker, {}).get("split")
        if split not in ("dev", "test"):
            split = "test" if item.speaker in VOX1_TEST_SPEAKERS else "dev"
        item.part = f"vox1_{split}"
    return items


def _vox2_items(root: Path, meta: dict[str, dict[str, str | None]]) -> list[_Item]:
    items, m4a = _audio_files(root, "VoxCeleb2")
    if not items:
        if m4a:
            raise DataError(
                f"VoxCeleb2 under {root} is AAC ({m4a} .m4a files), which the toolkit's audio "
                "reader (soundfile) cannot decode; convert it to 16 kHz wav or flac first, e.g. "
                "'ffmpeg -i dev/aac/idXXXXX/<video>/NNNNN.m4a -ac 1 -ar 16000 "
                "dev/wav/idXXXXX/<video>/NNNNN.wav' for every file (see the README), then rerun"
            )
        raise DataError(
            f"no VoxCeleb2 audio under {root}: expected "
            f"{root}/dev/wav/idXXXXX/<video>/NNNNN.wav (converted from dev/aac/*.m4a)"
        )
    if m4a:
        log.info("VoxCeleb2: using %d wav/flac files; ignoring %d .m4a files", len(items), m4a)
    for item in items:
        split = meta.get(item.speaker, {}).get("split")
        if split not in ("dev", "test"):
            folders = [p.lower() for p in item.path.relative_to(root).parts[:-3]]
            is_test = any(f == "test" or f.startswith("vox2_test") for f in folders)
            split = "test" if is_test else "dev"
        item.part = f"vox2_{split}"
    return items


def _read_meta(path: Path) -> dict[str, dict[str, str | None]]:
    """``{speaker: {"gender", "nationality", "split"}}`` from ``vox1_meta.csv`` (tab-separated)
    or ``vox2_meta.csv`` (comma-separated)."""
    lines = [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not lines:
        return {}
    sep = "\t" if "\t" in lines[0] else ","
    header = [h.strip().lower() for h in lines[0].split(sep)]
    try:
        col_set, col_gender = header.index("set"), header.index("gender")
    except ValueError:
        raise DataError(
            f"{path}: expected a header naming the columns Gender and Set, got '{lines[0]}'"
        ) from None
    col_nat = header.index("nationality") if "nationality" in header else None
    meta = {}
    for lineno, line in enumerate(lines[1:], start=2):
        fields = [f.strip() for f in line.split(sep)]
        if len(fields) < len(header) or not _SPEAKER.match(fields[0]):
            raise DataError(f"{path}:{lineno}: expected {len(header)} fields, got '{line}'")
        meta[fields[0]] = {
            "gender": normalise_gender(fields[col_gender]),
            "nationality": fields[col_nat] if col_nat is not None else None,
            "split": fields[col_set].lower(),
        }
    return meta


def _find_trial_lists(
    vox1: Path, trials_dir: str | Path | None, corpus_dir: str | Path | None
) -> dict[str, Path]:
    """``{list name: path}`` of the official trial lists that exist."""
    if trials_dir is not None:
        folders = [Path(trials_dir)]
        if not folders[0].is_dir():
            raise DataError(f"trials folder not found: {trials_dir} is not a directory")
    else:
        folders = [vox1, vox1 / "meta"] + ([Path(corpus_dir)] if corpus_dir is not None else [])
    found = {}
    for name, file_name in TRIAL_LISTS.items():
        path = next((f / file_name for f in folders if (f / file_name).is_file()), None)
        if path is not None:
            found[name] = path
    if trials_dir is not None and not found:
        raise DataError(
            f"no VoxCeleb1 trial list in {trials_dir}: expected some of "
            f"{', '.join(TRIAL_LISTS.values())}"
        )
    return found


def _write_trials(
    out_dir: Path, trial_files: dict[str, Path], parts: dict[str, list[Any]]
) -> tuple[list[str], list[Path]]:
    """Convert the trial lists into the parts that hold their utterances."""
    lines, written = [], []
    for name, source in trial_files.items():
        targets = ["vox1_test", "vox1"] if name.startswith("vox1_o") else ["vox1"]
        targets = [t for t in targets if t in parts]
        if not targets:
            log.warning(
                "%s (%s) needs part %s, which was not prepared (its audio is missing); skipped",
                name,
                source.name,
                " or ".join(["vox1_test", "vox1"] if name.startswith("vox1_o") else ["vox1"]),
            )
            continue
        trials = read_voxceleb_trials(source)
        for part in targets:
            ids = {c.id for c in parts[part]}
            kept = [t for t in trials if t[0] in ids and t[1] in ids]
            dropped = len(trials) - len(kept)
            if dropped:
                example = next(u for t in trials for u in t[:2] if u not in ids)
                log.warning(
                    "%s: %d of %d trials name utterances missing from part %s (e.g. %s); dropped",
                    source.name,
                    dropped,
                    len(trials),
                    part,
                    example,
                )
            if not kept:
                continue
            written.append(write_kaldi_trials(out_dir / part / f"trials_{name}", kept))
            if part == "vox1_test" and (
                name == "vox1_o_clean" or "vox1_o_clean" not in trial_files
            ):
                written.append(write_kaldi_trials(out_dir / part / "trials", kept))
            targets_n = sum(t[2] for t in kept)
            lines.append(
                f"  trials {name:<12} {len(kept):>7} ({targets_n} target) -> "
                f"{part}/trials_{name}"
                + (f"; {dropped} dropped (audio missing)" if dropped else "")
            )
    return lines, written
