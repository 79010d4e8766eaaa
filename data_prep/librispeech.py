"""LibriSpeech (Panayotov et al., 2015) through Lhotse's own recipe: ``prepare librispeech``.

Expected layout (the OpenSLR 12 tarballs extracted; ``--corpus-dir`` is ``LibriSpeech/`` or the
folder holding it)::

    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>-NNNN.flac
    LibriSpeech/<part>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
    LibriSpeech/SPEAKERS.TXT            optional: gender

Parts: dev-clean, dev-other, test-clean, test-other, train-clean-100, train-clean-360,
train-other-500 (and Mini LibriSpeech's dev-clean-2, train-clean-5), those present or those
asked for. Lhotse's :func:`lhotse.recipes.prepare_librispeech` reads the transcripts and audio
headers; each utterance becomes a cut with ``custom`` ``speaker``, ``session`` (the chapter)
and, with SPEAKERS.TXT, ``gender``; the transcript is the supervision text. The dev and test
parts get a speaker verification trial list, ``<part>/trials``
(:func:`data_prep.splits.make_trials`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lhotse.recipes.librispeech import LIBRISPEECH, MINI_LIBRISPEECH, prepare_librispeech

from data_prep.corpus import (
    Stamp,
    iter_files,
    listing_digest,
    make_cut,
    normalise_gender,
    require_dir,
    write_parts,
)
from data_prep.splits import make_trials, trials_note
from data_prep.voxceleb import write_kaldi_trials
from dino_speech.errors import DataError

__all__ = ["PARTS", "prepare_librispeech_corpus"]

CORPUS = "librispeech"
PARTS: tuple[str, ...] = LIBRISPEECH + MINI_LIBRISPEECH


def _root(corpus_dir: Path) -> Path:
    """``corpus_dir`` itself or its ``LibriSpeech/`` folder, whichever holds the parts."""
    require_dir(corpus_dir, "LibriSpeech folder", "LibriSpeech/ holding dev-clean/ etc.")
    if not any((corpus_dir / p).is_dir() for p in PARTS) and (corpus_dir / "LibriSpeech").is_dir():
        return corpus_dir / "LibriSpeech"
    return corpus_dir


def _genders(path: Path) -> dict[str, str]:
    """``{speaker: male|female}`` from ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | ...``)."""
    if not path.is_file():
        return {}
    genders = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if line.startswith(";") or len(fields) < 2:
            continue
        if (gender := normalise_gender(fields[1])) is not None:
            genders[fields[0]] = gender
    return genders


def prepare_librispeech_corpus(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    parts: Sequence[str] = (),
    num_jobs: int = 1,
) -> str:
    """Prepare the LibriSpeech ``parts`` (default: all present) into ``out_dir``.

    Writes ``librispeech_{recordings,supervisions,cuts}_<part>.jsonl.gz``, the Kaldi lists in
    ``out_dir/<part>/`` and ``<part>/trials`` for dev and test parts; returns a summary.
    Rerunning on the same files does nothing.

    Raises:
        DataError: an unknown or missing part, or no utterances.
    """
    root, out_dir = _root(Path(corpus_dir)), Path(out_dir)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise DataError(
            f"unknown LibriSpeech parts {', '.join(unknown)}; valid: {', '.join(PARTS)}"
        )
    wanted = list(parts) or [p for p in PARTS if (root / p).is_dir()]
    missing = [p for p in wanted if not (root / p).is_dir()]
    if not wanted or missing:
        raise DataError(
            f"{root}: no LibriSpeech part folder {', '.join(missing or PARTS)} (expected "
            "<part>/<speaker>/<chapter>/<speaker>-<chapter>-NNNN.flac and .trans.txt files)"
        )
    files = [f for p in wanted for f in iter_files(root / p, (".flac", ".txt"), desc=p)]
    stamp = Stamp(
        out_dir,
        CORPUS,
        {"corpus_dir": root.resolve(), "parts": wanted, "files": listing_digest(files)},
    )
    if (done := stamp.done()) is not None:
        return done
    manifests = prepare_librispeech(
        root.resolve(), dataset_parts=wanted, output_dir=None, num_jobs=num_jobs
    )
    genders = _genders(root / "SPEAKERS.TXT")
    cut_parts, notes, trial_files = {}, [], []
    for part in wanted:
        found = manifests.get(part)
        if not found or len(found["recordings"]) == 0:
            raise DataError(f"{root / part}: no utterances (a .flac listed in a .trans.txt)")
        supervisions = {s.recording_id: s for s in found["supervisions"]}
        cuts = []
        for recording in found["recordings"]:
            sup = supervisions[recording.id]
            speaker, chapter, _ = recording.id.split("-", 2)
            cuts.append(
                make_cut(
                    recording,
                    speaker=speaker,
                    gender=genders.get(speaker),
                    text=sup.text,
                    custom={"session": chapter},
                )
            )
        cut_parts[part] = cuts
        if part.startswith(("dev", "test")):
            trials = make_trials(cuts)
            trial_files.append(write_kaldi_trials(out_dir / part / "trials", trials))
            notes.append(trials_note(trial_files[-1], trials))
    return write_parts(stamp, cut_parts, notes=notes, extra_files=trial_files)
