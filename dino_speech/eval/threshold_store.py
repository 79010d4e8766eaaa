"""Where a model's decision threshold lives: ``threshold.json`` beside the model.

``dino-speech verify`` needs a threshold to turn a cosine score into a same/different decision.
The natural one is the EER threshold of the model's last scoring run (``dino-speech score``
prints it: ``EER: 2.345% (threshold 0.4321)``). It is stored as one small JSON object::

    {"threshold": 0.4321,            # accept "same speaker" when score >= threshold
     "eer": 2.345,                   # percent, on the trials below (null if unknown)
     "trials": "data/test/trials",   # the trial list it was measured on (null if unknown)
     "source": "...",                # where the number came from
     "model": "embedder.pt"}         # the model file it belongs to, relative to the folder

The file sits in the experiment directory when the model is given as a directory, else beside
the model file: ``exp/dino`` and ``exp/dino/embedder.pt`` share ``exp/dino/threshold.json``.
A threshold belongs to one set of weights: :func:`load_threshold` refuses one recorded for a
different model file of the same folder (e.g. an older checkpoint). Built-in models have no
folder and so no stored threshold.

:func:`threshold_from_file` reads a threshold from a ``threshold.json``, from the file of
``dino-speech score --json-out`` (a recipe's ``score.json``: ``eer_threshold``) or from the
saved standard output of ``dino-speech score``. The ``--json`` line of ``score`` holds no
threshold and is refused with a message saying so.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from dino_speech.errors import DataError
from dino_speech.file_io import atomic_write_text

__all__ = [
    "THRESHOLD_FILE",
    "StoredThreshold",
    "load_threshold",
    "save_threshold",
    "threshold_from_file",
    "threshold_path",
]

THRESHOLD_FILE = "threshold.json"

# the lines of `dino-speech score` output that carry the EER, its threshold and the trial list
_EER_LINE = re.compile(r"^EER: (?P<eer>[-+0-9.eE]+|nan)% \(threshold (?P<thr>[-+0-9.eEinf]+)\)")
_TRIALS_LINE = re.compile(r"^trials: (?P<trials>.*) \(\d+ target, \d+ non-target\)$")


@dataclass(frozen=True)
class StoredThreshold:
    """A decision threshold with where it came from (the fields of ``threshold.json``)."""

    threshold: float
    eer: float | None = None  # percent
    trials: str | None = None
    source: str = "unknown"
    model: str | None = None


def _model_location(model_path: str | Path) -> tuple[Path, str | None] | None:
    """``(folder, model file relative to it or None)``; None for a built-in model."""
    path = Path(model_path)
    if path.is_dir():
        from dino_speech.loading import resolve_model_path

        try:
            resolved = resolve_model_path(path)
        except DataError:
            return path, None
        return path, resolved.relative_to(path).as_posix()
    if path.is_file():
        return path.parent, path.name
    return None


def threshold_path(model_path: str | Path) -> Path | None:
    """``threshold.json`` of the model at ``model_path``; None for a built-in (or absent) one."""
    location = _model_location(model_path)
    return None if location is None else location[0] / THRESHOLD_FILE


def save_threshold(
    model_path: str | Path,
    threshold: float,
    eer: float | None,
    trials: str | Path | None,
    source: str = "dino-speech score",
) -> Path:
    """Store ``threshold`` (EER ``eer`` percent on ``trials``) beside the model; returns the file.

    Raises:
        DataError: a built-in or missing model (no folder), or a non-finite threshold.
    """
    location = _model_location(model_path)
    if location is None:
        raise DataError(f"{model_path}: not a model file or directory, so no threshold.json")
    if not math.isfinite(threshold):
        raise DataError(f"cannot store threshold {threshold}: it must be a finite number")
    folder, model = location
    record = StoredThreshold(
        float(threshold),
        None if eer is None else float(eer),
        None if trials is None else str(trials),
        source,
        model,
    )
    out = folder / THRESHOLD_FILE
    atomic_write_text(out, json.dumps(asdict(record), indent=1) + "\n")
    return out


def load_threshold(model_path: str | Path) -> StoredThreshold | None:
    """The stored threshold of the model at ``model_path``, or None when there is none.

    Raises:
        DataError: ``threshold.json`` is malformed, or records another model file of the
            same folder.
    """
    location = _model_location(model_path)
    if location is None or not (location[0] / THRESHOLD_FILE).is_file():
        return None
    path = location[0] / THRESHOLD_FILE
    record = _read_record(path)
    if record.model is not None and location[1] is not None and record.model != location[1]:
        raise DataError(
            f"{path} is the threshold of {record.model}, not of {location[1]}; "
            f"rescore this model, or give --threshold"
        )
    return record


def threshold_from_file(path: str | Path) -> StoredThreshold:
    """A threshold from a ``threshold.json`` or the saved output of ``dino-speech score``.

    Raises:
        DataError: missing or unreadable file, a ``score --json`` result (no threshold in it),
            or neither format.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    if text.lstrip().startswith("{"):
        try:
            blob = json.loads(text)
        except json.JSONDecodeError:
            blob = None
        if isinstance(blob, dict) and isinstance(blob.get("eer_threshold"), (int, float)):
            return _from_score_record(path, blob)
        if isinstance(blob, dict) and "threshold" not in blob and "eer" in blob:
            raise DataError(
                f"{path}: a 'dino-speech score --json' result holds no threshold; give the "
                f"file of 'dino-speech score --json-out', its saved output (the 'EER: ... "
                f"(threshold T)' line) or a {THRESHOLD_FILE}"
            )
        return _read_record(path)
    eer_match = trials = None
    for line in text.splitlines():
        trials_match = _TRIALS_LINE.match(line.strip())
        if trials_match:
            trials = trials_match["trials"]
        eer_match = eer_match or _EER_LINE.match(line.strip())
    if eer_match is None:
        raise DataError(
            f"{path}: neither a {THRESHOLD_FILE} nor the output of 'dino-speech score' "
            f"(no 'EER: ...% (threshold T)' line)"
        )
    threshold = float(eer_match["thr"])
    if not math.isfinite(threshold):
        raise DataError(f"{path}: the EER threshold is {threshold}, not a usable number")
    return StoredThreshold(
        threshold, float(eer_match["eer"]), trials, f"dino-speech score output {path}"
    )


def _from_score_record(path: Path, blob: dict) -> StoredThreshold:
    threshold = float(blob["eer_threshold"])
    if not math.isfinite(threshold):
        raise DataError(f"{path}: the EER threshold is {threshold}, not a usable number")
    eer = blob.get("eer")
    trials = blob.get("trials") if isinstance(blob.get("trials"), str) else None
    return StoredThreshold(
        threshold, float(eer) if eer is not None else None, trials, f"score --json-out {path}"
    )


def _read_record(path: Path) -> StoredThreshold:
    try:
        blob = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable {THRESHOLD_FILE}: {exc}") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("threshold"), (int, float)):
        raise DataError(f'{path}: not a {THRESHOLD_FILE} (needs a number under "threshold")')
    threshold = float(blob["threshold"])
    if not math.isfinite(threshold):
        raise DataError(f"{path}: threshold {threshold} is not a finite number")
    eer = blob.get("eer")
    trials = blob.get("trials")
    model = blob.get("model")
    return StoredThreshold(
        threshold,
        float(eer) if isinstance(eer, (int, float)) else None,
        str(trials) if trials is not None else None,
        str(blob.get("source", path)),
        str(model) if model is not None else None,
    )
