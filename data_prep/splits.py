"""Shared by the preparers of folders of any layout (``prepare audio``, ``kaldi``, ``librispeech``).

A folder of one's own audio holds surprises a curated corpus does not: files that are not
audio, empty or truncated files, NaN samples, clips too short to embed. :func:`check_audio`
reads every file once (in parallel, with a progress bar) and says which are usable; the others
are listed in ``OUT/skipped`` (:func:`write_skipped`) instead of stopping the run.

:class:`Split` holds the options that hold out whole speakers for a development part
(:meth:`Split.parts`) and draw its trial list (:func:`make_trials`): all target pairs plus a
seeded sample of non-target pairs. :func:`write_prepared` is the common last step: skipped
list, parts, trials, stamp and summary.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lhotse import MonoCut, Recording
from lhotse.audio import AudioSource
from tqdm.auto import tqdm

from data_prep.corpus import Stamp, write_parts
from data_prep.voxceleb import write_kaldi_trials
from dino_speech.audio import AudioError, audio_info, read_audio
from dino_speech.data.manifests import cut_label
from dino_speech.errors import DataError
from dino_speech.file_io import atomic_write_text

__all__ = [
    "Split",
    "check_audio",
    "make_trials",
    "too_short",
    "trials_note",
    "write_prepared",
    "write_skipped",
]

Trial = tuple[str, str, bool]


def _probe(path: str) -> tuple[int, int, int] | str:
    """``(sample_rate, frames, channels)`` of a usable file, else why it is unusable.

    The samples are read (that is the only way to find NaN or infinite ones); the frame count
    is what was read, so a truncated file counts as long as it really is.
    """
    try:
        sample_rate, _, channels = audio_info(path)
        frames = read_audio(path, sample_rate=None).shape[0]
    except AudioError as exc:
        return exc.reason
    return sample_rate, frames, channels


def check_audio(
    items: Sequence[tuple[str, Path]], *, num_jobs: int = 1, desc: str = "Checking audio"
) -> tuple[dict[str, Recording], dict[str, str]]:
    """Read every file of ``items`` (``(recording id, path)``) once, ``num_jobs`` in parallel.

    Returns:
        ``({id: Recording}, {id: reason})``: a recording (absolute path) for each usable file,
        and the reason for each file that cannot be read, is empty or holds NaN/Inf samples.
    """
    paths = [str(Path(p).absolute()) for _, p in items]
    if num_jobs > 1 and len(paths) > 1:
        chunk = max(1, min(64, len(paths) // (4 * num_jobs)))
        with ProcessPoolExecutor(num_jobs) as pool:
            results = pool.map(_probe, paths, chunksize=chunk)
            found = list(tqdm(results, total=len(paths), desc=desc, unit=" files", disable=None))
    else:
        found = [_probe(p) for p in tqdm(paths, desc=desc, unit=" files", disable=None)]
    recordings: dict[str, Recording] = {}
    failures: dict[str, str] = {}
    for (rec_id, _), path, info in zip(items, paths, found, strict=True):
        if isinstance(info, str):
            failures[rec_id] = info
            continue
        sample_rate, frames, channels = info
        recordings[rec_id] = Recording(
            id=rec_id,
            sources=[AudioSource(type="file", channels=list(range(channels)), source=path)],
            sampling_rate=sample_rate,
            num_samples=frames,
            duration=frames / sample_rate,
        )
    return recordings, failures


def too_short(duration: float, min_duration: float) -> str | None:
    """The skip reason for audio shorter than ``--min-duration``, or ``None``."""
    if duration >= min_duration:
        return None
    return f"{duration:.3f} s long, shorter than --min-duration {min_duration:g} s"


def write_skipped(path: Path, skipped: Iterable[tuple[str, str]]) -> Path:
    """Write ``name<TAB>reason`` lines (sorted; the file is empty when nothing was skipped)."""
    lines = sorted(f"{name}\t{' '.join(reason.split())}\n" for name, reason in skipped)
    atomic_write_text(path, "".join(lines))
    return path


@dataclass(frozen=True)
class Split:
    """How to hold out a development part: whole speakers, by a seeded shuffle.

    ``dev_speakers`` (a count) and ``dev_fraction`` (of the speakers) are mutually exclusive;
    with neither, there is one part, ``all``. ``nontarget_ratio`` sets how many non-target
    trials the dev trial list gets per target trial.
    """

    dev_speakers: int | None = None
    dev_fraction: float | None = None
    seed: int = 0
    nontarget_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.dev_speakers is not None and self.dev_fraction is not None:
            raise DataError("--dev-speakers and --dev-fraction are mutually exclusive; give one")
        if self.dev_speakers is not None and self.dev_speakers < 2:
            raise DataError(f"--dev-speakers must be at least 2, got {self.dev_speakers}")
        if self.dev_fraction is not None and not 0 < self.dev_fraction < 1:
            raise DataError(f"--dev-fraction must be between 0 and 1, got {self.dev_fraction}")
        if self.nontarget_ratio <= 0:
            raise DataError(f"--nontarget-ratio must be positive, got {self.nontarget_ratio}")

    @property
    def enabled(self) -> bool:
        """Whether a dev part is held out."""
        return self.dev_speakers is not None or self.dev_fraction is not None

    def options(self) -> dict[str, Any]:
        """The fields, for :class:`~data_prep.corpus.Stamp` options."""
        return asdict(self)

    def dev_set(self, speakers: Iterable[str]) -> set[str]:
        """The held-out speakers: the first ones of the sorted list shuffled with ``seed``."""
        pool = sorted(set(speakers))
        count = self.dev_speakers
        if count is None:
            count = round(float(self.dev_fraction or 0) * len(pool))
        if count < 2:
            raise DataError(
                f"--dev-fraction {self.dev_fraction} of {len(pool)} speakers holds out {count}; "
                "the dev trials need at least 2 speakers"
            )
        if count >= len(pool):
            raise DataError(
                f"cannot hold out {count} dev speakers: there are only {len(pool)} speakers, "
                "and at least one must be left for training"
            )
        random.Random(f"split-{self.seed}").shuffle(pool)
        return set(pool[:count])

    def parts(self, cuts: Sequence[MonoCut], no_speakers_hint: str) -> dict[str, list[MonoCut]]:
        """``{"all": cuts}``, or ``{"train": ..., "dev": ...}`` split by whole speakers (cuts
        without a speaker go to train).

        Raises:
            DataError: a split is asked for but no cut has a speaker (``no_speakers_hint`` says
                how to give them), or it would leave too few speakers on either side.
        """
        if not self.enabled:
            return {"all": list(cuts)}
        speakers = {c.id: cut_label(c, "speaker") for c in cuts}
        known = {s for s in speakers.values() if s is not None}
        if not known:
            raise DataError(
                f"--dev-speakers/--dev-fraction hold out whole speakers, but no utterance has a "
                f"speaker; {no_speakers_hint}"
            )
        dev = self.dev_set(known)
        return {
            "train": [c for c in cuts if speakers[c.id] not in dev],
            "dev": [c for c in cuts if speakers[c.id] in dev],
        }


def make_trials(cuts: Sequence[MonoCut], *, seed: int = 0, ratio: float = 1.0) -> list[Trial]:
    """All target pairs of ``cuts`` plus ``ratio`` times as many non-target pairs (capped at
    the number there are), drawn with ``seed`` without repetition.

    Pairs are ``(utt1, utt2, is_target)`` with ``utt1 < utt2``, sorted. Cuts without a speaker
    take no part.

    Raises:
        DataError: fewer than two speakers, or no speaker with two utterances.
    """
    utt2spk = {c.id: s for c in cuts if (s := cut_label(c, "speaker")) is not None}
    utts = sorted(utt2spk)
    by_spk: dict[str, list[str]] = defaultdict(list)
    for utt in utts:
        by_spk[utt2spk[utt]].append(utt)
    if len(by_spk) < 2:
        raise DataError(f"trials need at least two speakers, the dev part has {len(by_spk)}")
    targets = [
        (a, b, True) for us in by_spk.values() for i, a in enumerate(us) for b in us[i + 1 :]
    ]
    if not targets:
        raise DataError("trials need target pairs, but no dev speaker has two utterances")
    total = (len(utts) ** 2 - sum(len(us) ** 2 for us in by_spk.values())) // 2
    wanted = min(round(ratio * len(targets)), total)
    rng = random.Random(f"trials-{seed}")
    if 2 * wanted >= total:  # dense: draw from the full list
        pairs = [
            (a, b) for i, a in enumerate(utts) for b in utts[i + 1 :] if utt2spk[a] != utt2spk[b]
        ]
        chosen = set(rng.sample(pairs, wanted))
    else:  # sparse: rejection sampling, never lists the n^2 pairs
        chosen = set()
        while len(chosen) < wanted:
            i, j = sorted(rng.sample(range(len(utts)), 2))
            if utt2spk[utts[i]] != utt2spk[utts[j]]:
                chosen.add((utts[i], utts[j]))
    return sorted(targets + [(a, b, False) for a, b in chosen])


def trials_note(path: Path, trials: Sequence[Trial]) -> str:
    """The summary line of a trial list."""
    targets = sum(t for _, _, t in trials)
    return (
        f"  trials: {len(trials)} ({targets} target, {len(trials) - targets} non-target) in {path}"
    )


def write_prepared(
    stamp: Stamp,
    cuts: Sequence[MonoCut],
    skipped: Mapping[str, str],
    split: Split,
    *,
    source: str,
    no_speakers_hint: str,
    notes: Sequence[str] = (),
) -> str:
    """The last step of ``prepare audio`` and ``prepare kaldi``: write ``OUT/skipped``, the
    parts (``all``, or ``train`` and ``dev`` with ``dev/trials``) and the stamp.

    Returns:
        The summary: parts, skipped count (and ``notes``), trials.

    Raises:
        DataError: nothing usable is left (``OUT/skipped`` says why), or the split or the
            trials cannot be made.
    """
    skipped_path = write_skipped(stamp.out_dir / "skipped", skipped.items())
    if not cuts:
        example = "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items())[:2])
        raise DataError(
            f"{source}: no usable audio; all {len(skipped)} files were skipped (listed in "
            f"{skipped_path}), e.g. {example or 'none found'}"
        )
    parts = split.parts(cuts, no_speakers_hint)
    lines = [f"  skipped: {len(skipped)} (listed in {skipped_path})", *notes]
    extra = [skipped_path]
    if "dev" in parts:
        trials = make_trials(parts["dev"], seed=split.seed, ratio=split.nontarget_ratio)
        extra.append(write_kaldi_trials(stamp.out_dir / "dev" / "trials", trials))
        lines.append(trials_note(extra[-1], trials))
    return write_parts(stamp, parts, notes=lines, extra_files=extra)
