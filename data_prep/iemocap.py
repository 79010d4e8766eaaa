"""IEMOCAP (Busso et al., 2008): five dyadic sessions, ten actors, categorical emotion labels.

Expected layout (the official ``IEMOCAP_full_release`` folder)::

    CORPUS/Session{1..5}/sentences/wav/<dialog>/<utt>.wav
    CORPUS/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt

Each ``EmoEvaluation`` file gives, per utterance, a line
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]``:
the time span in the dialog, the utterance id, the consensus category and the mean
valence, activation and dominance (1-5).

Written parts:

* ``all``: every labelled utterance; ``custom["emotion"]`` is the original category spelled
  out (``neutral``, ``frustrated``, ``no_agreement`` for ``xxx``...).
* ``4class``: the common four-class subset (neutral, happy = happy + excited, angry, sad);
  ``custom["emotion"]`` is the four-class label. Other categories are left out of it.

Every cut also carries ``emotion_original`` (the three-letter code), ``emotion_4class`` (where
it applies), ``valence``/``activation``/``dominance``, ``session`` (``Ses01``...),
``speaker`` (session + the gender of the speaking actor, e.g. ``Ses01F``; the gender is the
first letter of the id's last field, ``F000``), ``gender``, ``dialog`` and ``method``
(``impro`` or ``script``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from data_prep.corpus import (
    Stamp,
    files_digest,
    listing_digest,
    make_cut,
    require_dir,
    scan_recordings,
    write_parts,
)
from dino_speech.errors import DataError

__all__ = ["EMOTIONS", "FOUR_CLASS", "parse_emo_evaluation", "prepare_iemocap"]

log = logging.getLogger(__name__)

CORPUS = "iemocap"
SESSIONS = tuple(range(1, 6))

# Original IEMOCAP categories -> names used in ``custom["emotion"]`` of the ``all`` part.
EMOTIONS: dict[str, str] = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "ang": "angry",
    "sad": "sad",
    "fru": "frustrated",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgusted",
    "oth": "other",
    "xxx": "no_agreement",
}

# The common four-class protocol: excited is merged into happy.
FOUR_CLASS: dict[str, str] = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "happy",
    "ang": "angry",
    "sad": "sad",
}

_LINE = re.compile(
    r"^\[\s*(?P<start>[\d.]+)\s*-\s*(?P<end>[\d.]+)\s*\]\s+(?P<utt>Ses\S+)\s+(?P<emo>\S+)\s+"
    r"\[\s*(?P<val>[\d.]+)\s*,\s*(?P<act>[\d.]+)\s*,\s*(?P<dom>[\d.]+)\s*\]"
)
_UTT = re.compile(r"^Ses(?P<session>\d{2})[FM]_(?P<dialog_rest>.+)_(?P<gender>[FM])\d+$")


@dataclass(frozen=True)
class Label:
    """One utterance's line of an ``EmoEvaluation`` file."""

    utt: str
    emotion: str
    valence: float
    activation: float
    dominance: float


def parse_emo_evaluation(path: Path) -> list[Label]:
    """The utterance lines of one ``EmoEvaluation/<dialog>.txt`` file.

    Raises:
        DataError: an utterance line (one starting with ``[``) is malformed or names an
            unknown category; the message gives the file and line number.
    """
    labels = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.startswith("["):
                continue
            match = _LINE.match(line)
            if match is None:
                raise DataError(
                    f"{path}:{lineno}: expected '[START - END]<TAB>UTT_ID<TAB>EMOTION<TAB>"
                    f"[V, A, D]', got '{line.strip()[:80]}'"
                )
            emotion = match["emo"]
            if emotion not in EMOTIONS:
                raise DataError(
                    f"{path}:{lineno}: unknown IEMOCAP category '{emotion}'; "
                    f"known: {', '.join(EMOTIONS)}"
                )
            labels.append(
                Label(
                    utt=match["utt"],
                    emotion=emotion,
                    valence=float(match["val"]),
                    activation=float(match["act"]),
                    dominance=float(match["dom"]),
                )
            )
    return labels


def prepare_iemocap(corpus_dir: str | Path, out_dir: str | Path, *, num_jobs: int = 1) -> str:
    """Prepare IEMOCAP into ``out_dir`` (parts ``all`` and ``4class``); returns a summary.

    Rerunning on the same inputs does nothing.

    Raises:
        DataError: the folder does not have the official layout, a label file is malformed,
            or no labelled utterance has audio.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    labels, wavs, label_files = _read_sessions(corpus_dir)
    stamp = Stamp(
        out_dir,
        CORPUS,
        {
            "corpus_dir": corpus_dir.resolve(),
            "labels": files_digest(label_files),
            "audio": listing_digest(wavs.values()),
        },
    )
    if (done := stamp.done()) is not None:
        return done

    missing = [lab.utt for lab in labels if lab.utt not in wavs]
    if missing:
        log.warning(
            "%d labelled utterances have no wav (e.g. %s); left out", len(missing), missing[0]
        )
    unlabelled = len(set(wavs) - {lab.utt for lab in labels})
    if unlabelled:
        log.warning("%d wavs have no EmoEvaluation label; left out", unlabelled)
    present = [lab for lab in labels if lab.utt in wavs]
    if not present:
        raise DataError(f"{corpus_dir}: none of the {len(labels)} labelled utterances has a wav")

    recordings, _ = scan_recordings(
        [(lab.utt, wavs[lab.utt]) for lab in present], num_jobs=num_jobs, desc="IEMOCAP"
    )
    cuts_all, cuts_4 = [], []
    for lab in present:
        if lab.utt not in recordings:
            continue
        parsed = _UTT.match(lab.utt)
        assert parsed is not None  # checked in _read_sessions
        session = f"Ses{parsed['session']}"
        gender = parsed["gender"]
        custom = {
            "emotion_original": lab.emotion,
            "emotion_4class": FOUR_CLASS.get(lab.emotion),
            "valence": lab.valence,
            "activation": lab.activation,
            "dominance": lab.dominance,
            "session": session,
            "dialog": lab.utt.rsplit("_", 1)[0],
            "method": "script" if "_script" in lab.utt else "impro",
        }
        gender_name = "female" if gender == "F" else "male"
        speaker = f"{session}{gender}"
        cut = make_cut(
            recordings[lab.utt],
            speaker=speaker,
            gender=gender_name,
            custom={**custom, "emotion": EMOTIONS[lab.emotion]},
        )
        cuts_all.append(cut)
        if lab.emotion in FOUR_CLASS:
            cuts_4.append(cut.with_custom("emotion", FOUR_CLASS[lab.emotion]))
    if not cuts_all:
        raise DataError(f"{corpus_dir}: no IEMOCAP utterance has readable audio")

    return write_parts(stamp, {"all": cuts_all, "4class": cuts_4})


def _read_sessions(corpus_dir: Path) -> tuple[list[Label], dict[str, Path], list[Path]]:
    """All labels of the five sessions, ``{utt: wav path}`` and the label files read."""
    require_dir(
        corpus_dir,
        "IEMOCAP folder",
        "the IEMOCAP_full_release folder holding Session1 ... Session5",
    )
    found = [s for s in SESSIONS if (corpus_dir / f"Session{s}").is_dir()]
    if not found:
        raise DataError(
            f"{corpus_dir} does not look like IEMOCAP: expected the IEMOCAP_full_release "
            "folder holding Session1 ... Session5 (each with sentences/wav/<dialog>/<utt>.wav "
            "and dialog/EmoEvaluation/<dialog>.txt)"
        )
    if len(found) < len(SESSIONS):
        log.warning("only sessions %s of IEMOCAP are present", ", ".join(map(str, found)))
    labels: list[Label] = []
    wavs: dict[str, Path] = {}
    all_label_files: list[Path] = []
    for s in found:
        session = corpus_dir / f"Session{s}"
        emo_dir = require_dir(
            session / "dialog" / "EmoEvaluation",
            f"IEMOCAP Session{s} labels",
            f"{session}/dialog/EmoEvaluation/<dialog>.txt",
        )
        wav_dir = require_dir(
            session / "sentences" / "wav",
            f"IEMOCAP Session{s} audio",
            f"{session}/sentences/wav/<dialog>/<utt>.wav",
        )
        label_files = sorted(p for p in emo_dir.glob("*.txt") if not p.name.startswith("."))
        if not label_files:
            raise DataError(f"{emo_dir}: no <dialog>.txt label files found")
        all_label_files += label_files
        for path in label_files:
            labels += parse_emo_evaluation(path)
        for wav in sorted(wav_dir.glob("*/*.wav")):
            if not wav.name.startswith("."):
                wavs[wav.stem] = wav
    for lab in labels:
        if _UTT.match(lab.utt) is None:
            raise DataError(
                f"unexpected IEMOCAP utterance id '{lab.utt}' (e.g. Ses01F_impro01_F000)"
            )
    seen: set[str] = set()
    for lab in labels:
        if lab.utt in seen:
            raise DataError(f"IEMOCAP utterance '{lab.utt}' is labelled twice")
        seen.add(lab.utt)
    return labels, wavs, all_label_files
