"""MUSAN (Snyder et al., 2015): music, speech and noise for additive-noise augmentation.

Expected layout (the official ``musan.tar.gz``, OpenSLR 17, extracted)::

    CORPUS/music/<source>/music-<source>-NNNN.wav     with <source>/ANNOTATIONS (genres, vocals)
    CORPUS/noise/<source>/noise-<source>-NNNN.wav
    CORPUS/speech/<source>/speech-<source>-NNNN.wav

The scan is Lhotse's MUSAN recipe (``lhotse.recipes.prepare_musan``), which fits as it is: one
recording per file, with the file name (``music-fma-0000``) as id, and the music annotations as
supervisions. This module adds the checks, the category labels and the outputs.

Written (one part, ``all``)::

    OUT/musan_recordings_all.jsonl.gz, musan_supervisions_all.jsonl.gz (music only),
    OUT/musan_cuts_all.jsonl.gz     one cut per file; custom["category"] = noise | music | speech
                                    (music also has custom["vocals"] and ["genres"])
    OUT/all/wav.scp, OUT/all/utt2category

``OUT/musan_cuts_all.jsonl.gz`` is what ``data.musan_cuts`` of a training config points to: the
augmenter draws noise, music and babble (summed speech) by ``custom["category"]``, each with its
own SNR range.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lhotse import MonoCut

from data_prep.corpus import (
    Stamp,
    files_digest,
    listing_digest,
    make_cut,
    require_dir,
    write_part,
)
from dino_speech.errors import DataError

__all__ = ["CATEGORIES", "prepare_musan"]

log = logging.getLogger(__name__)

CORPUS = "musan"
CATEGORIES = ("music", "noise", "speech")


def prepare_musan(
    corpus_dir: str | Path,
    out_dir: str | Path,
    *,
    categories: tuple[str, ...] = CATEGORIES,
    use_vocals: bool = True,
) -> str:
    """Prepare MUSAN into ``out_dir`` (part ``all``); returns a summary.

    Args:
        categories: which of ``music``, ``noise``, ``speech`` to include.
        use_vocals: keep the music tracks that have vocals.

    Rerunning on the same inputs does nothing.

    Raises:
        DataError: an unknown category, the folder lacks a category folder with wavs, or a
            wav cannot be read (the message names it).
    """
    from lhotse.audio.utils import AudioLoadingError
    from lhotse.recipes import prepare_musan as lhotse_prepare_musan

    # Absolute, so that the manifests work from any working directory (lhotse keeps paths
    # as it finds them).
    corpus_dir, out_dir = Path(corpus_dir).resolve(), Path(out_dir)
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown or not categories:
        raise DataError(
            f"unknown MUSAN categories {', '.join(unknown) or '(none given)'}; "
            f"valid: {', '.join(CATEGORIES)}"
        )
    categories = tuple(c for c in CATEGORIES if c in categories)
    expected = "music/, noise/ and speech/ folders of <source>/<id>.wav files"
    require_dir(corpus_dir, "MUSAN folder", f"the musan folder holding {expected}")
    wavs: list[Path] = []
    for category in categories:
        folder = corpus_dir / category
        found = sorted(folder.rglob("*.wav")) if folder.is_dir() else []
        if not found:
            raise DataError(
                f"{corpus_dir} does not look like MUSAN: no wavs in {folder} (expected {expected})"
            )
        wavs += found
    annotations = (
        sorted((corpus_dir / "music").rglob("ANNOTATIONS")) if "music" in categories else []
    )
    stamp = Stamp(
        out_dir,
        CORPUS,
        {
            "corpus_dir": corpus_dir,
            "categories": categories,
            "vocals": use_vocals,
            "audio": listing_digest(wavs),
            "annotations": files_digest(annotations),
        },
    )
    if (done := stamp.done()) is not None:
        return done

    log.info("scanning MUSAN (%s) with lhotse's recipe", ", ".join(categories))
    try:
        manifests = lhotse_prepare_musan(corpus_dir, parts=categories, use_vocals=True)
    except AudioLoadingError as exc:
        reason = str(exc).splitlines()[0].removesuffix(" Details:")
        raise DataError(f"MUSAN: {reason} (replace or remove the file, then rerun)") from None

    cuts: list[MonoCut] = []
    counts: dict[str, Any] = {}
    for category in categories:
        recordings = manifests[category]["recordings"]
        supervisions = manifests[category].get("supervisions")
        by_rec = {s.recording_id: s for s in supervisions} if supervisions is not None else {}
        kept = 0
        for recording in recordings:
            custom: dict[str, Any] = {"category": category}
            sup = by_rec.get(recording.id)
            if category == "music":
                vocals = bool(sup.custom.get("vocals")) if sup is not None else None
                if vocals and not use_vocals:
                    continue
                custom["vocals"] = vocals
                custom["genres"] = sup.custom.get("genres") if sup is not None else None
            cut = make_cut(recording, custom=custom)
            if category == "music" and sup is not None:
                cut.supervisions = [sup]
            elif category != "music":
                cut.supervisions = []  # noise and speech files carry no annotation
            cuts.append(cut)
            kept += 1
        hours = sum(c.duration for c in cuts if c.custom["category"] == category) / 3600
        counts[category] = (kept, hours)
    if not cuts:
        raise DataError(f"{corpus_dir}: no MUSAN files left to write")

    written = write_part(out_dir, CORPUS, "all", cuts, keys=("category",))
    lines = [f"Prepared {CORPUS} in {out_dir} (part 'all', {len(cuts)} files):"]
    lines += [f"  {c:<7} {n:>6} files  {h:7.2f} h" for c, (n, h) in counts.items()]
    manifest = (out_dir / "musan_cuts_all.jsonl.gz").resolve()
    lines.append(f"  training configs: data.musan_cuts={manifest}")
    summary = "\n".join(lines)
    stamp.write(written, summary)
    return summary
