"""Trial lists and score files of speaker verification.

Trial lists come in Kaldi form (``utt1 utt2 target|nontarget``) or VoxCeleb form
(``1|0 utt1 utt2``); score files hold ``utt1 utt2 score`` lines.
"""

from __future__ import annotations

import mmap
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dino_speech.errors import DataError

__all__ = [
    "Trials",
    "check_classes",
    "read_scored_trials",
    "read_scores",
    "read_trials",
    "scores_for_trials",
    "write_scores",
]

_KALDI_LABELS = {"target": True, "nontarget": False}
_VOX_LABELS = {"1": True, "0": False}
_NEWLINE = ord("\n")
_MAX_SEPARATOR = ord(" ")  # every byte <= b" " may separate fields: checked against split()
_MAX_LINE_WALK = 10_000  # lines to step over one by one to the cut of the score file


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
    fast = _trial_columns(_three_columns(_file_bytes(path, "trial list")))
    if fast is not None:
        enroll_b, test_b, fast_labels = fast
        return Trials(_decoded(enroll_b), _decoded(test_b), fast_labels)
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
    fast = _score_columns(_three_columns(_file_bytes(path, "score file")))
    if fast is not None:
        return _decoded(fast[0]), _decoded(fast[1]), fast[2]
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


def read_scored_trials(
    trials: str | Path, scores: str | Path, *, split_min_bytes: int = 8 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """The score and label of every trial: ``(scores (N,) float64, labels (N,) bool)``.

    What ``read_trials`` + ``read_scores`` + ``scores_for_trials`` give, without making text of
    the ids when the score file lists the trials in their order (the usual case): for 10^6
    trials that is most of the time of ``dino-speech eer``. When the two files hold at least
    ``split_min_bytes`` and two cores are free, a forked child reads the first half of the
    lines of both while this process reads the second half. Raises what they raise.
    """
    trials, scores = Path(trials), Path(scores)
    data_t, data_s = _file_bytes(trials, "trial list"), _file_bytes(scores, "score file")
    if len(data_t) + len(data_s) >= split_min_bytes and hasattr(os, "fork") and _free_cores() > 1:
        fast = _scored_in_order_halves(data_t, data_s)
    else:
        fast = _scored_in_order(data_t, data_s)
    if fast is not None:
        return fast
    del data_t, data_s
    trial_list = read_trials(trials)
    enroll_s, test_s, values = read_scores(scores)
    return scores_for_trials(trial_list, enroll_s, test_s, values, str(scores)), trial_list.labels


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


def _file_bytes(path: Path, what: str) -> bytes:
    """The bytes of a file, ending with a newline unless empty; DataError naming ``what`` it
    should have been if it is missing."""
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    data = path.read_bytes()
    return data + b"\n" if data and not data.endswith(b"\n") else data


def _three_columns(data: bytes) -> tuple[list[bytes], np.ndarray] | None:
    """All fields of text whose every line is three fields, each followed by one separator
    byte (how programs write trial lists and score files), with the byte offset of each
    separator; None for any other text (blank lines, comments, CRLF, runs of spaces, ...): the
    line-by-line reader takes those and names a bad line. One ``split`` of the bytes and a
    vectorised check of where the separators are."""
    if not data or b"#" in data:
        return None
    fields = data.split()
    buf = np.frombuffer(data, dtype=np.uint8)
    seps = np.flatnonzero(buf <= _MAX_SEPARATOR)
    # one separator after each field and nothing else <= b" " (else split() disagrees)
    if len(seps) != len(fields) or len(seps) % 3 or seps[0] == 0 or (np.diff(seps) < 2).any():
        return None
    newline = buf[seps] == _NEWLINE
    if not newline[2::3].all() or newline[0::3].any() or newline[1::3].any():
        return None
    return fields, seps


def _scored_in_order(data_t: bytes, data_s: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """``(scores, labels)`` when the score lines hold the trials' pairs in the trials' order
    and both texts are in the three-column layout, else None."""
    fast_trials = _trial_columns(_three_columns(data_t))
    fast_scores = _score_columns(_three_columns(data_s))
    if fast_trials is None or fast_scores is None:
        return None
    enroll, test, labels = fast_trials
    if enroll != fast_scores[0] or test != fast_scores[1]:
        return None
    return fast_scores[2], labels


def _scored_in_order_halves(data_t: bytes, data_s: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """``_scored_in_order`` of the whole texts, by a forked child for the first half of the
    lines and this process for the rest. The child writes its arrays into shared memory, so
    nothing but a status byte crosses back (sending its ids through a pipe cost more than the
    second core saved)."""
    cuts = _line_cuts(data_t, data_s)
    if cuts is None:
        return _scored_in_order(data_t, data_s)
    cut_t, cut_s, n = cuts
    shared = mmap.mmap(-1, 9 * n + 1)  # float64 scores, bool labels, status byte
    try:
        with warnings.catch_warnings():  # the child runs no threaded code (numpy only)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
    except OSError:
        return _scored_in_order(data_t, data_s)
    if pid == 0:
        try:
            first = _scored_in_order(data_t[:cut_t], data_s[:cut_s])
            if first is not None and len(first[0]) == n:
                np.frombuffer(shared, np.float64, n)[:] = first[0]
                np.frombuffer(shared, np.bool_, n, 8 * n)[:] = first[1]
                shared[9 * n] = 1
        finally:
            os._exit(0)
    try:
        second = _scored_in_order(data_t[cut_t:], data_s[cut_s:])
    finally:
        os.waitpid(pid, 0)
    if second is None or shared[9 * n] != 1:
        return None
    scores = np.concatenate([np.frombuffer(shared, np.float64, n), second[0]])
    labels = np.concatenate([np.frombuffer(shared, np.bool_, n, 8 * n), second[1]])
    return scores, labels


def _line_cuts(data_t: bytes, data_s: bytes) -> tuple[int, int, int] | None:
    """``(cut_t, cut_s, n)``: the first ``n`` lines of each text end at byte ``cut``, ``n``
    about half the trial lines; None when either text has too few lines to cut."""
    cut_t = data_t.find(b"\n", len(data_t) // 2) + 1
    if not 0 < cut_t < len(data_t):
        return None
    n = data_t.count(b"\n", 0, cut_t)
    # the score file's n-th newline, searched from where it would be if lines had one length
    cut_s = data_s.rfind(b"\n", 0, len(data_s) * cut_t // len(data_t)) + 1
    have = data_s.count(b"\n", 0, cut_s)
    if abs(have - n) > _MAX_LINE_WALK:  # very different line lengths: find it in one pass
        newlines = np.flatnonzero(np.frombuffer(data_s, dtype=np.uint8) == _NEWLINE)
        if len(newlines) <= n:
            return None
        return cut_t, int(newlines[n - 1]) + 1, n
    while have < n:
        cut_s = data_s.find(b"\n", cut_s) + 1
        if cut_s == 0:
            return None
        have += 1
    while have > n:
        cut_s = data_s.rfind(b"\n", 0, cut_s - 1) + 1
        have -= 1
    return (cut_t, cut_s, n) if cut_s < len(data_s) else None


def _free_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _trial_columns(
    columns: tuple[list[bytes], np.ndarray] | None,
) -> tuple[list[bytes], list[bytes], np.ndarray] | None:
    """``(enroll, test, labels)`` of a trial list all in one form, else None."""
    if columns is None:
        return None
    fields, seps = columns
    n = len(fields) // 3
    last = fields[2::3]
    if last.count(b"target") + last.count(b"nontarget") == n:
        # "target" is the 6-byte one
        return fields[0::3], fields[1::3], (seps[2::3] - seps[1::3]) == len(b"target") + 1
    first = fields[0::3]
    if first.count(b"1") + first.count(b"0") == n:
        return fields[1::3], last, np.array(first, dtype="S1") == b"1"
    return None


def _score_columns(
    columns: tuple[list[bytes], np.ndarray] | None,
) -> tuple[list[bytes], list[bytes], np.ndarray] | None:
    """``(enroll, test, scores float64)`` of a score file, else None."""
    if columns is None:
        return None
    fields = columns[0]
    try:
        values = np.array(fields[2::3], dtype=np.float64)
    except ValueError:
        return None
    return fields[0::3], fields[1::3], values


def _decoded(ids: list[bytes]) -> list[str]:
    return [x.decode("utf-8") for x in ids]


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
