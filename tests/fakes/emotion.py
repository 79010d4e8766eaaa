"""Fake emotion corpora (IEMOCAP, CREMA-D, MSP-Podcast) in the official layouts.

Two plans per corpus. The default, a *fixed tree* for the preparer tests: the utterances of
:data:`IEMOCAP_UTTS`, :data:`CREMAD_FILES` or :data:`MSP_ROWS` (every label the preparer must
handle, including the ones it leaves out), as noise clips. ``learnable=True``, for the recipe
tests: a larger balanced list whose every clip is a 0.6 s :func:`~tests.fakes.audio.tone` at its
emotion's pitch, so that a probe on log-Mel statistics learns the emotions -- a recipe that
mixes up labels, folds or splits shows up as chance-level accuracy.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tests.fakes.audio import emotion_tone, wav

# ------------------------------------------------------------------------------------ IEMOCAP

# (session, dialog, utterance suffix, category, [V, A, D])
IEMOCAP_UTTS = [
    (1, "Ses01F_impro01", "F000", "neu", (2.5, 2.5, 2.5)),
    (1, "Ses01F_impro01", "M000", "fru", (2.0, 3.5, 3.5)),
    (1, "Ses01F_script01_1", "F001", "exc", (4.0, 4.0, 3.0)),
    (2, "Ses02M_impro02", "M003", "ang", (1.5, 4.0, 4.0)),
    (2, "Ses02M_impro02", "F004", "xxx", (3.0, 3.0, 3.0)),
    (3, "Ses03F_impro03", "F000", "hap", (4.5, 3.0, 3.0)),
    (4, "Ses04M_script02_2", "M010", "sad", (1.5, 1.5, 2.0)),
    (5, "Ses05F_impro04", "M001", "sur", (3.5, 4.0, 3.0)),
]
IEMOCAP_4CLASS = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}


def iemocap_learnable_utts(utts_per_emotion: int = 2) -> list[tuple]:
    """:data:`IEMOCAP_UTTS`-style rows of five sessions, a female and a male speaker each:
    ``utts_per_emotion`` of every 4-class code (hap and exc both count as happy) plus a
    frustrated utterance per speaker that the 4-class part drops."""
    codes = [c for c in IEMOCAP_4CLASS for _ in range(utts_per_emotion)] + ["fru"]
    return [
        (session, f"Ses{session:02d}F_impro01", f"{gender}{i:03d}", code, (2.5, 2.5, 2.5))
        for session in range(1, 6)
        for gender in "FM"
        for i, code in enumerate(codes)
    ]


def make_iemocap(root: Path, *, learnable: bool = False, utts_per_emotion: int = 2) -> Path:
    """``root/Session{1..5}/sentences/wav/<dialog>/<utt>.wav`` and
    ``root/Session*/dialog/EmoEvaluation/<dialog>.txt`` in the official format, plus the
    distractions real copies have (a macOS ``._`` file, an ``Attribute`` sub-folder).

    The utterances: :data:`IEMOCAP_UTTS`, or ``iemocap_learnable_utts(utts_per_emotion)`` as
    tones with ``learnable``.
    """
    utts = iemocap_learnable_utts(utts_per_emotion) if learnable else IEMOCAP_UTTS
    by_dialog: dict[tuple[int, str], list[str]] = {}
    for i, (session, dialog, suffix, emo, (v, a, d)) in enumerate(utts):
        utt = f"{dialog}_{suffix}"
        path = root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav"
        if learnable:
            emotion_tone(path, IEMOCAP_4CLASS.get(emo), seed=i)
        else:
            wav(path, seconds=0.2 + 0.05 * i, seed=i)
        by_dialog.setdefault((session, dialog), []).append(
            f"[{1.5 * i:.4f} - {1.5 * i + 1.2:.4f}]\t{utt}\t{emo}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n"
            "C-E1:\tNeutral state;\t()\nC-E2:\tAnger;\t()\n"
            "A-E1:\tval 3; act 2; dom  2;\t()\n\n"
        )
    for (session, dialog), blocks in by_dialog.items():
        emo_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        emo_dir.mkdir(parents=True, exist_ok=True)
        header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        (emo_dir / f"{dialog}.txt").write_text(header + "".join(blocks))
        (emo_dir / "Attribute").mkdir(exist_ok=True)
        (emo_dir / "Attribute" / f"{dialog}_atr.txt").write_text("not a label file\n")
        (emo_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (
        root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "._Ses01F_impro01_F000.wav"
    ).write_bytes(b"\x00\x05\x16\x07")
    return root


# ------------------------------------------------------------------------------------ CREMA-D

CREMAD_FILES = [
    "1001_DFA_ANG_XX",
    "1001_IEO_HAP_HI",
    "1002_TIE_SAD_LO",
    "1002_IOM_NEU_XX",
    "1091_WSI_FEA_MD",
    "1091_ITS_DIS_XX",
]
CREMAD_4CLASS = {"NEU": "neutral", "HAP": "happy", "ANG": "angry", "SAD": "sad"}


def cremad_learnable_files(actors: int = 6) -> list[str]:
    """:data:`CREMAD_FILES`-style names: actors 1001, 1002 ... each say two sentences (IEO,
    TIE) in every 4-class emotion."""
    return [
        f"{1001 + a}_{sentence}_{code}_XX"
        for a in range(actors)
        for sentence in ("IEO", "TIE")
        for code in CREMAD_4CLASS
    ]


def make_cremad(
    root: Path, *, demographics: bool | None = None, learnable: bool = False, actors: int = 6
) -> Path:
    """``root/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` and optionally
    ``VideoDemographics.csv`` (actors 1001, 1002 and 1091).

    The files: :data:`CREMAD_FILES`, or ``cremad_learnable_files(actors)`` as tones with
    ``learnable``. ``demographics`` defaults to the fixed tree only, whose actors it lists.
    """
    demographics = not learnable if demographics is None else demographics
    names = cremad_learnable_files(actors) if learnable else CREMAD_FILES
    for i, name in enumerate(names):
        path = root / "AudioWAV" / f"{name}.wav"
        if learnable:
            emotion_tone(path, CREMAD_4CLASS.get(name.split("_")[2]), seed=100 + i)
        else:
            wav(path, seconds=0.2 + 0.02 * i, seed=200 + i)
    if demographics:
        (root / "VideoDemographics.csv").write_text(
            "ActorID,Age,Sex,Race,Ethnicity\n"
            "1001,51,Male,Caucasian,Not Hispanic\n"
            "1002,21,Female,Caucasian,Not Hispanic\n"
            "1091,29,Female,Asian,Not Hispanic\n"
        )
    return root


# -------------------------------------------------------------------------------- MSP-Podcast

MSP_HEADER = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
MSP_ROWS = [
    ("MSP-PODCAST_0001_0008.wav", "N", "4.2", "4.0", "4.4", "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0019.wav", "H", "5.0", "5.6", "4.8", "127", "Female", "Train"),
    ("MSP-PODCAST_0002_0033.wav", "X", "3.0", "3.4", "3.2", "Unknown", "Unknown", "Train"),
    ("MSP-PODCAST_0003_0001.wav", "A", "5.8", "2.0", "5.5", "310", "Male", "Development"),
    ("MSP-PODCAST_0004_0002.wav", "S", "2.2", "2.4", "2.8", "411", "Male", "Test1"),
    ("MSP-PODCAST_0005_0003.wav", "C", "4.0", "3.0", "5.0", "512", "Female", "Test2"),
]
MSP_4CLASS = {"N": "neutral", "H": "happy", "A": "angry", "S": "sad"}


def msp_learnable_rows() -> list[tuple[str, ...]]:
    """:data:`MSP_ROWS`-style rows: Train (6 per class, 4 speakers), Development (1 per class)
    and Test1 (3 per class, 2 speakers), each with an 'X' (no agreement) and an 'O' (other)
    row that the recipe leaves out."""
    rows = []
    for split, per_class, speakers in (("Train", 6, 4), ("Development", 1, 1), ("Test1", 3, 2)):
        for letter in MSP_4CLASS:
            for k in range(per_class):
                name = f"MSP-PODCAST_{200 + len(rows):04d}_{k:04d}.wav"
                spk = f"{split[:2].lower()}{k % speakers}"
                rows.append((name, letter, "4.0", "4.0", "4.0", spk, "Female", split))
        for letter in "XO":
            name = f"MSP-PODCAST_{200 + len(rows):04d}_0000.wav"
            rows.append((name, letter, "4.0", "4.0", "4.0", "Unknown", "Unknown", split))
    return rows


def make_msp_podcast(
    root: Path, *, labels_name: str = "labels_consensus.csv", learnable: bool = False
) -> Path:
    """``root/Audios/*.wav`` and ``root/Labels/<labels_name>`` (official columns).

    The rows: :data:`MSP_ROWS`, or :func:`msp_learnable_rows` as tones with ``learnable``.
    """
    rows = msp_learnable_rows() if learnable else MSP_ROWS
    for i, row in enumerate(rows):
        if learnable:
            emotion_tone(root / "Audios" / row[0], MSP_4CLASS.get(row[1]), seed=200 + i)
        else:
            wav(root / "Audios" / row[0], seconds=0.2 + 0.02 * i, seed=300 + i)
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    with (root / "Labels" / labels_name).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MSP_HEADER)
        writer.writerows(rows)
    return root
