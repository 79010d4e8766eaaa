"""MSP-Podcast (Lotfian & Busso, 2019): emotional speech from podcasts, with official splits.

Expected layout (the release as distributed by the MSP lab)::

    CORPUS/Audios/<FileName>.wav                 e.g. MSP-PODCAST_0001_0008.wav
    CORPUS/Labels/labels_consensus.csv           (``labels_concensus.csv`` in older releases)

The labels file has the columns ``FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender,
Split_Set`` (more are ignored). Each value of ``Split_Set`` becomes a part, in lower case:
``train``, ``development``, ``test1``, ``test2`` (and ``test3`` where a release has it).
Each cut has ``custom`` ``emotion`` (the consensus class by name, below), ``emotion_code``
(the letter), ``activation``, ``valence``, ``dominance`` (the mean ratings, 1-7), ``speaker``
(``SpkrID``; left out when ``Unknown``) and ``gender``. Rows whose file is missing from
``Audios`` are skipped with a warning.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from data_prep.corpus import (
    Stamp,
    files_digest,
    listing_digest,
    make_cut,
    normalise_gender,
    require_dir,
    scan_recordings,
    write_parts,
)
from dino_speech.errors import DataError

__all__ = ["EMOTIONS", "prepare_msp_podcast", "read_labels"]

log = logging.getLogger(__name__)

CORPUS = "msp_podcast"

# Consensus classes of MSP-Podcast (EmoClass letters).
EMOTIONS = {
    "N": "neutral",
    "H": "happy",
    "A": "angry",
    "S": "sad",
    "U": "surprised",
    "C": "contempt",
    "D": "disgusted",
    "F": "fearful",
    "O": "other",
    "X": "no_agreement",
}
LABEL_FILES = ("labels_consensus.csv", "labels_concensus.csv")
REQUIRED_COLUMNS = ("FileName", "EmoClass", "Split_Set")
_UNKNOWN = {"", "unknown", "nan", "none"}


def read_labels(path: Path) -> list[dict[str, str]]:
    """The rows of a ``labels_consensus.csv`` (values stripped).

    Raises:
        DataError: a required column (FileName, EmoClass, Split_Set) is missing, a row has an
            unknown EmoClass, or a file name repeats; the message names the file and line.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)}; expected a header with "
                "FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set"
            )
        rows, seen = [], set()
        for lineno, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            if not row["FileName"]:
                raise DataError(f"{path}:{lineno}: empty FileName")
            if row["EmoClass"] and row["EmoClass"] not in EMOTIONS:
                raise DataError(
                    f"{path}:{lineno}: unknown EmoClass '{row['EmoClass']}'; "
                    f"known: {', '.join(EMOTIONS)}"
                )
            if not row["Split_Set"]:
                raise DataError(f"{path}:{lineno}: empty Split_Set")
            if row["FileName"] in seen:
                raise DataError(f"{path}:{lineno}: file '{row['FileName']}' is listed twice")
            seen.add(row["FileName"])
            row["_line"] = str(lineno)
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: the labels file has no rows")
    return rows


def prepare_msp_podcast(corpus_dir: str | Path, out_dir: str | Path, *, num_jobs: int = 1) -> str:
    """Prepare MSP-Podcast into ``out_dir``, one part per official split; returns a summary.

    Rerunning on the same inputs does nothing.

    Raises:
        DataError: the folder lacks ``Audios/`` or the labels file, the labels are malformed,
            or none of the labelled files has audio.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    expected = "Audios/<FileName>.wav and Labels/labels_consensus.csv"
    require_dir(corpus_dir, "MSP-Podcast folder", f"a folder holding {expected}")
    audio_dir = corpus_dir / "Audios"
    labels_path = next(
        (corpus_dir / "Labels" / n for n in LABEL_FILES if (corpus_dir / "Labels" / n).is_file()),
        None,
    )
    if not audio_dir.is_dir() or labels_path is None:
        raise DataError(f"{corpus_dir} does not look like MSP-Podcast: expected {expected}")
    rows = read_labels(labels_path)

    items, missing = [], []
    for row in rows:
        path = audio_dir / row["FileName"]
        if path.suffix.lower() != ".wav":
            path = path.with_name(path.name + ".wav")
        if path.is_file():
            items.append((path.stem, path))
        else:
            missing.append(row["FileName"])
    if missing:
        log.warning(
            "%d of %d labelled files are not in %s and are left out, e.g. %s",
            len(missing),
            len(rows),
            audio_dir,
            missing[0],
        )
    if not items:
        raise DataError(f"none of the {len(rows)} files listed in {labels_path} is in {audio_dir}")
    stamp = Stamp(
        out_dir,
        CORPUS,
        {
            "corpus_dir": corpus_dir.resolve(),
            "labels": files_digest([labels_path]),
            "audio": listing_digest(path for _, path in items),
        },
    )
    if (done := stamp.done()) is not None:
        return done
    recordings, _ = scan_recordings(items, num_jobs=num_jobs, desc="MSP-Podcast")

    by_part: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        utt = Path(row["FileName"]).stem
        if utt not in recordings:
            continue
        code = row["EmoClass"]
        speaker = None if row.get("SpkrID", "").lower() in _UNKNOWN else row["SpkrID"]
        cut = make_cut(
            recordings[utt],
            speaker=speaker,
            gender=normalise_gender(row.get("Gender")),
            custom={
                "emotion": EMOTIONS.get(code),
                "emotion_code": code or None,
                "activation": _rating(row, "EmoAct", labels_path),
                "valence": _rating(row, "EmoVal", labels_path),
                "dominance": _rating(row, "EmoDom", labels_path),
                "split": row["Split_Set"],
            },
        )
        by_part[_part_name(row["Split_Set"])].append(cut)

    return write_parts(stamp, dict(sorted(by_part.items(), key=lambda kv: _part_order(kv[0]))))


def _rating(row: dict[str, str], column: str, path: Path) -> float | None:
    value = row.get(column, "")
    if value.lower() in _UNKNOWN:
        return None
    try:
        return float(value)
    except ValueError:
        raise DataError(
            f"{path}:{row['_line']}: {column} should be a number, got '{value}'"
        ) from None


def _part_name(split: str) -> str:
    """``Train`` -> ``train``, ``Test1`` -> ``test1``; anything else lower-cased and cleaned."""
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_") or "unknown"


def _part_order(part: str) -> tuple[int, str]:
    order = {"train": 0, "development": 1}
    return order.get(part, 2), part
