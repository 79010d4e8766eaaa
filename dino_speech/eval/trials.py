"""Trial lists and score files of speaker verification.

Trial lists come in Kaldi form (``utt1 utt2 target|nontarget``) or VoxCeleb form
(``1|0 utt1 utt2``); score files hold ``utt1 utt2 score`` lines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dino_speech.errors import DataError

__all__ = [
    "Trials",
    "check_classes",
    "read_scores",
    "read_trials",
    "scores_for_trials",
    "write_scores",
]

_KALDI_LABELS = {"target": True, "nontarget": False}
_VOX_LABELS = {"1": True, "0": False}


@dataclass
class Trials:
    """A trial list: ``enroll[i]`` against ``test[i]``, ``labels[i]`` True for a target trial."""

    enroll: list[str]
    test: list[str]
    labels: np.ndarray  # (N,) bool

    def __len__(self) -> int:
        return len(self.enroll)

    @property
    def num_targets(self) -> int:
        return int(self.labels.sum())

    @property
    def num_nontargets(self) -> int:
        return len(self) - self.num_targets

    def check_both_classes(self, where: str = "trial list") -> None:
        """Raise DataError unless there are target and non-target trials."""
        check_classes(self.labels, where)


def read_trials(path: str | Path) -> Trials:
    """Read a trial list in Kaldi form (``utt1 utt2 target|nontarget``) or VoxCeleb form
    (``1|0 utt1 utt2``); the form is detected per line, blank lines and ``#`` comments skipped.

    Raises:
        DataError: missing file, malformed line (named with its number), or no trials.
    """
    path = Path(path)
    enroll: list[str] = []
    test: list[str] = []
    labels: list[bool] = []
    for lineno, fields, line in _records(path, "trial list"):
        if len(fields) == 3 and fields[2] in _KALDI_LABELS:
            enroll.append(fields[0])
            test.append(fields[1])
            labels.append(_KALDI_LABELS[fields[2]])
        elif len(fields) == 3 and fields[0] in _VOX_LABELS:
            enroll.append(fields[1])
            test.append(fields[2])
            labels.append(_VOX_LABELS[fields[0]])
        else:
            raise DataError(
                f"{path}:{lineno}: expected 'UTT1 UTT2 target|nontarget' (Kaldi) or "
                f"'1|0 UTT1 UTT2' (VoxCeleb), got '{line[:80]}'"
            )
    if not enroll:
        raise DataError(f"{path}: the trial list is empty")
    return Trials(enroll, test, np.asarray(labels, dtype=bool))


def read_scores(path: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    """Read a score file of ``utt1 utt2 score`` lines → ``(enroll, test, scores float64)``."""
    path = Path(path)
    enroll: list[str] = []
    test: list[str] = []
    scores: list[float] = []
    for lineno, fields, line in _records(path, "score file"):
        try:
            if len(fields) != 3:
                raise ValueError
            value = float(fields[2])
        except ValueError:
            raise DataError(
                f"{path}:{lineno}: expected 'UTT1 UTT2 SCORE', got '{line[:80]}'"
            ) from None
        enroll.append(fields[0])
        test.append(fields[1])
        scores.append(value)
    if not scores:
        raise DataError(f"{path}: the score file is empty")
    return enroll, test, np.asarray(scores, dtype=np.float64)


def write_scores(path: str | Path, trials: Trials, scores: np.ndarray) -> Path:
    """Write ``utt1 utt2 score`` lines, one per trial, in trial order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.writelines(
            f"{e} {t} {s:.6f}\n"
            for e, t, s in zip(trials.enroll, trials.test, scores.tolist(), strict=True)
        )
    return path


def scores_for_trials(
    trials: Trials, enroll: Sequence[str], test: Sequence[str], scores: np.ndarray, where: str
) -> np.ndarray:
    """Pick the score of every trial from a score list (any order, extra pairs ignored).

    Raises:
        DataError: trials without a score (count and the first few), or a pair scored twice
            with different values.
    """
    if list(enroll) == trials.enroll and list(test) == trials.test:
        return np.asarray(scores, dtype=np.float64)
    lookup: dict[tuple[str, str], float] = {}
    for e, t, s in zip(enroll, test, np.asarray(scores).tolist(), strict=True):
        if lookup.setdefault((e, t), s) != s:
            raise DataError(f"{where}: pair '{e} {t}' is scored twice with different values")
    out = np.empty(len(trials), dtype=np.float64)
    missing: list[str] = []
    for i, pair in enumerate(zip(trials.enroll, trials.test, strict=True)):
        s = lookup.get(pair)
        if s is None:
            missing.append(" ".join(pair))
            continue
        out[i] = s
    if missing:
        raise DataError(
            f"{where}: {len(missing)} of {len(trials)} trials have no score "
            f"(first: {'; '.join(missing[:3])})"
        )
    return out


def check_classes(labels: np.ndarray, where: str) -> None:
    """Raise DataError if ``labels`` is empty or holds only one class."""
    if labels.size == 0:
        raise DataError(f"the {where} is empty")
    n_tar = int(labels.sum())
    if n_tar == 0 or n_tar == labels.size:
        kind = "target" if n_tar else "non-target"
        raise DataError(
            f"the {where} holds only {kind} trials ({labels.size}); EER and minDCF need both"
        )


def _records(path: Path, what: str) -> Iterator[tuple[int, list[str], str]]:
    """``(line number, fields, stripped line)`` of each line that is not blank or a ``#``
    comment; a missing file is a DataError naming ``what`` it should have been."""
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if fields and not fields[0].startswith("#"):
                yield lineno, fields, line.strip()
