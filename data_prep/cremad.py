"""CREMA-D (Cao et al., 2014): 7,442 clips of 91 actors saying 12 sentences in 6 emotions.

Expected layout (the official repository, with the Git LFS files fetched)::

    CORPUS/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav   (e.g. 1001_DFA_ANG_XX.wav)
    CORPUS/VideoDemographics.csv      optional; columns ActorID,Age,Sex,Race,Ethnicity

The label is the emotion the actor was asked to portray, read from the file name: ANG, DIS,
FEA, HAP, NEU, SAD; the level is LO, MD, HI or XX (unspecified). One part, ``all``; each cut has
``custom`` ``speaker`` (the actor id, e.g. ``1001``), ``emotion`` (angry, disgusted, fearful,
happy, neutral, sad), ``sentence`` (the code; its text is the supervision text), ``level``
(low, medium, high, unspecified) and, when the demographics file is present, ``gender``,
``age``, ``race`` and ``ethnicity``. Files that cannot be read or are empty (the official
release has one, ``1076_MTI_SAD_XX.wav``) are skipped with a warning.
"""

from __future__ import annotations

import csv
import logging
import re
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

__all__ = ["EMOTIONS", "LEVELS", "SENTENCES", "prepare_cremad"]

log = logging.getLogger(__name__)

CORPUS = "cremad"

EMOTIONS = {
    "ANG": "angry",
    "DIS": "disgusted",
    "FEA": "fearful",
    "HAP": "happy",
    "NEU": "neutral",
    "SAD": "sad",
}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}

_NAME = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$"
)


def prepare_cremad(corpus_dir: str | Path, out_dir: str | Path, *, num_jobs: int = 1) -> str:
    """Prepare CREMA-D into ``out_dir`` (part ``all``); returns a summary.

    Rerunning on the same inputs does nothing.

    Raises:
        DataError: no ``AudioWAV`` folder with CREMA-D file names, or a malformed demographics
            file.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    require_dir(corpus_dir, "CREMA-D folder", "the CREMA-D folder holding AudioWAV/")
    audio_dir = corpus_dir / "AudioWAV"
    if not audio_dir.is_dir():
        raise DataError(
            f"{corpus_dir} does not look like CREMA-D: expected {audio_dir}/ holding "
            "<actor>_<sentence>_<emotion>_<level>.wav files (e.g. 1001_DFA_ANG_XX.wav)"
        )
    files: dict[str, Path] = {}
    unparsed = []
    for path in sorted(audio_dir.glob("*.wav")):
        if path.name.startswith("."):
            continue
        match = _NAME.match(path.stem)
        if match and match["emotion"] in EMOTIONS and match["level"] in LEVELS:
            files[path.stem] = path
        else:
            unparsed.append(path.name)
    if unparsed:
        log.warning(
            "%d wavs in %s do not follow <actor>_<sentence>_<emotion>_<level>.wav and are "
            "left out, e.g. %s",
            len(unparsed),
            audio_dir,
            unparsed[0],
        )
    if not files:
        raise DataError(
            f"{audio_dir}: no CREMA-D wavs named <actor>_<sentence>_<emotion>_<level>.wav "
            "(e.g. 1001_DFA_ANG_XX.wav)"
        )
    demographics_path = corpus_dir / "VideoDemographics.csv"
    stamp = Stamp(
        out_dir,
        CORPUS,
        {
            "corpus_dir": corpus_dir.resolve(),
            "audio": listing_digest(files.values()),
            "demographics": files_digest(p for p in [demographics_path] if p.is_file()),
        },
    )
    if (done := stamp.done()) is not None:
        return done
    demographics = _read_demographics(demographics_path)

    recordings, _ = scan_recordings(sorted(files.items()), num_jobs=num_jobs, desc="CREMA-D")
    cuts = []
    for utt, recording in recordings.items():
        match = _NAME.match(utt)
        assert match is not None
        actor = match["actor"]
        person = demographics.get(actor, {})
        cuts.append(
            make_cut(
                recording,
                speaker=actor,
                gender=person.get("gender"),
                text=SENTENCES.get(match["sentence"]),
                custom={
                    "emotion": EMOTIONS[match["emotion"]],
                    "sentence": match["sentence"],
                    "level": LEVELS[match["level"]],
                    "age": person.get("age"),
                    "race": person.get("race"),
                    "ethnicity": person.get("ethnicity"),
                },
            )
        )
    if not cuts:
        raise DataError(
            f"{audio_dir}: none of the {len(files)} CREMA-D wavs could be read (Git LFS "
            "pointers instead of audio? run 'git lfs pull' in the CREMA-D repository)"
        )
    return write_parts(stamp, {"all": cuts})


def _read_demographics(path: Path) -> dict[str, dict[str, Any]]:
    """``{actor: {"gender", "age", "race", "ethnicity"}}`` from ``VideoDemographics.csv``
    (empty if the file is absent)."""
    if not path.is_file():
        log.info("%s not found; preparing CREMA-D without demographics", path)
        return {}
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = {c.strip() for c in reader.fieldnames or []}
        if "ActorID" not in columns:
            raise DataError(
                f"{path}: expected a CSV header with ActorID,Age,Sex,Race,Ethnicity, "
                f"got {', '.join(sorted(columns)) or 'nothing'}"
            )
        people = {}
        for lineno, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            actor = row["ActorID"]
            if not actor:
                raise DataError(f"{path}:{lineno}: empty ActorID")
            age = row.get("Age", "")
            people[actor] = {
                "gender": normalise_gender(row.get("Sex")),
                "age": int(age) if age.isdigit() else None,
                "race": row.get("Race") or None,
                "ethnicity": row.get("Ethnicity") or None,
            }
    return people
