"""Room impulse responses of ``RIRS_NOISES`` (Ko et al., 2017; OpenSLR 28) for reverberation.

Expected layout (``rirs_noises.zip`` extracted; ``--corpus-dir`` is ``RIRS_NOISES`` or the
folder holding it)::

    RIRS_NOISES/simulated_rirs/{small,medium,large}room/RoomNNN/RoomNNN-NNNNN.wav  (+ rir_list)
    RIRS_NOISES/real_rirs_isotropic_noises/*.wav                                   (+ rir_list)

Each ``rir_list`` line reads ``--rir-id ID --room-id ROOM RIRS_NOISES/<path>.wav``. The lists
are the authority on which files are RIRs: ``real_rirs_isotropic_noises`` mixes RIRs with
isotropic noises, and the AIR responses (``air_type1_air_binaural_*.wav``) have no "rir" in
their names, so Lhotse's ``prepare_rir_noise`` (which keeps real files whose name contains
"rir") misses them; that is why this module reads the lists instead. Simulated rooms without a
``rir_list`` are scanned (``RoomNNN/*.wav``, ids as the official lists spell them:
``smallroom-Room001-00001``); the real RIRs need their list.

Written (one part, ``all``)::

    OUT/rirs_recordings_all.jsonl.gz, rirs_supervisions_all.jsonl.gz,
    OUT/rirs_cuts_all.jsonl.gz    one cut per RIR; custom["category"] = simulated | real,
                                  custom["room"] (the list's room id), custom["room_size"]
                                  (small | medium | large, simulated only)
    OUT/all/wav.scp, OUT/all/utt2category

``OUT/rirs_cuts_all.jsonl.gz`` is what ``data.rir_cuts`` of a training config points to.
Some real RIRs have several channels (one per microphone); the cut's ``channel`` is 0.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from data_prep.corpus import (
    Stamp,
    listing_digest,
    make_cut,
    require_dir,
    scan_recordings,
    write_part,
)
from dino_speech.errors import DataError

__all__ = ["KINDS", "ROOM_SIZES", "RirEntry", "prepare_rirs", "read_rir_list"]

log = logging.getLogger(__name__)

CORPUS = "rirs"
KINDS = ("simulated", "real")
ROOM_SIZES = ("small", "medium", "large")

_SIM_FILE = re.compile(r"^Room\d+-\d+$")


@dataclass(frozen=True)
class RirEntry:
    """One RIR: its id, room id and file."""

    rir_id: str
    room: str
    path: Path


def read_rir_list(path: Path, root: Path) -> list[RirEntry]:
    """Parse a Kaldi ``rir_list`` (``--rir-id ID --room-id ROOM RIRS_NOISES/path.wav``).

    File paths are resolved against ``root`` (the ``RIRS_NOISES`` folder).

    Raises:
        DataError: a line lacks ``--rir-id`` or the file path; the message names the line.
    """
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        options = dict(zip(tokens[:-1:2], tokens[1:-1:2], strict=True)) if len(tokens) % 2 else {}
        if "--rir-id" not in options:
            raise DataError(
                f"{path}:{lineno}: expected '--rir-id ID --room-id ROOM RIRS_NOISES/<file>.wav', "
                f"got '{line.strip()[:100]}'"
            )
        rel = Path(tokens[-1])
        if rel.parts and rel.parts[0] in ("RIRS_NOISES", root.name):
            rel = Path(*rel.parts[1:])
        entries.append(
            RirEntry(options["--rir-id"], options.get("--room-id", options["--rir-id"]), root / rel)
        )
    return entries


def prepare_rirs(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    kinds: tuple[str, ...] = KINDS,
    room_sizes: tuple[str, ...] = ROOM_SIZES,
    num_jobs: int = 1,
) -> str:
    """Prepare the RIRs of ``RIRS_NOISES`` into ``out_dir`` (part ``all``); returns a summary.

    Args:
        kinds: ``simulated`` and/or ``real``.
        room_sizes: the simulated room sizes to include (``small``, ``medium``, ``large``).
        num_jobs: processes reading audio headers.

    Rerunning on the same inputs does nothing.

    Raises:
        DataError: unknown kinds or sizes, the folder lacks the expected sub-folders, a
            ``rir_list`` is malformed or names missing files.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    _check_choice("RIR kinds", kinds, KINDS)
    if "simulated" in kinds:
        _check_choice("room sizes", room_sizes, ROOM_SIZES)
    kinds = tuple(k for k in KINDS if k in kinds)
    room_sizes = tuple(s for s in ROOM_SIZES if s in room_sizes) if "simulated" in kinds else ()
    expected = "RIRS_NOISES with simulated_rirs/ and real_rirs_isotropic_noises/"
    require_dir(corpus_dir, "RIRS_NOISES folder", expected)
    root = corpus_dir / "RIRS_NOISES" if (corpus_dir / "RIRS_NOISES").is_dir() else corpus_dir
    entries: list[tuple[RirEntry, str, str | None]] = []  # (entry, kind, room size)
    for size in room_sizes:
        entries += [(e, "simulated", size) for e in _simulated(root, size, expected)]
    if "real" in kinds:
        entries += [(e, "real", None) for e in _real(root, expected)]
    missing = [e.path for e, _, _ in entries if not e.path.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} RIR files named in the rir_list files do not exist, e.g. {missing[0]}"
        )
    stamp = Stamp(
        out_dir,
        CORPUS,
        {
            "root": root.resolve(),
            "kinds": kinds,
            "room_sizes": room_sizes,
            "rirs": listing_digest(f"{e.rir_id} {e.room} {e.path}" for e, _, _ in entries),
        },
    )
    if (done := stamp.done()) is not None:
        return done

    recordings, _ = scan_recordings(
        [(e.rir_id, e.path) for e, _, _ in entries], num_jobs=num_jobs, desc="RIRs"
    )
    cuts = [
        make_cut(
            recordings[e.rir_id],
            custom={"category": kind, "room": e.room, "room_size": size},
        )
        for e, kind, size in entries
        if e.rir_id in recordings
    ]
    if not cuts:
        raise DataError(f"{root}: no readable RIR found")
    written = write_part(out_dir, CORPUS, "all", cuts, keys=("category",))
    lines = [f"Prepared {CORPUS} in {out_dir} (part 'all', {len(cuts)} RIRs):"]
    for kind in kinds:
        of_kind = [c for c in cuts if c.custom["category"] == kind]
        rooms = len({c.custom["room"] for c in of_kind})
        lines.append(f"  {kind:<9} {len(of_kind):>6} RIRs  {rooms:>5} rooms")
    manifest = (out_dir / "rirs_cuts_all.jsonl.gz").resolve()
    lines.append(f"  training configs: data.rir_cuts={manifest}")
    summary = "\n".join(lines)
    stamp.write(written, summary)
    return summary


def _check_choice(what: str, given: tuple[str, ...], valid: tuple[str, ...]) -> None:
    unknown = [g for g in given if g not in valid]
    if unknown or not given:
        raise DataError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; valid: {', '.join(valid)}"
        )


def _simulated(root: Path, size: str, expected: str) -> list[RirEntry]:
    folder = root / "simulated_rirs" / f"{size}room"
    if not folder.is_dir():
        raise DataError(
            f"{root} does not look like RIRS_NOISES: {folder} is missing (expected {expected})"
        )
    listing = folder / "rir_list"
    if listing.is_file():
        return read_rir_list(listing, root)
    log.info("%s has no rir_list; scanning its RoomNNN folders", folder)
    entries = [
        RirEntry(f"{size}room-{wav.stem}", f"{size}room-{wav.parent.name}", wav)
        for wav in sorted(folder.glob("Room*/*.wav"))
        if _SIM_FILE.match(wav.stem)
    ]
    if not entries:
        raise DataError(f"{folder}: no RoomNNN/RoomNNN-NNNNN.wav files and no rir_list")
    return entries


def _real(root: Path, expected: str) -> list[RirEntry]:
    folder = root / "real_rirs_isotropic_noises"
    require_dir(folder, "real RIRs", f"{expected} (it holds rir_list)")
    listing = folder / "rir_list"
    if not listing.is_file():
        raise DataError(
            f"{listing} is missing: it tells the real RIRs from the isotropic noises kept in "
            "the same folder; restore it from rirs_noises.zip, or use --kinds simulated"
        )
    return read_rir_list(listing, root)
