"""What an output was made from, so that a command rerun on the same request does nothing.

Commands that take minutes (``embed``, ``train dino``) keep make's rule themselves instead of
leaving it to the stage scripts: beside the output they write a record of the request --
settings, and the identity (path, size, modification time) of every input file -- and a rerun
whose request is equal, with the output still there, only says so. Stage scripts can then call
the commands every time and show the real command lines.

The inputs are the files a command is given (lists, manifests, models), not the audio a list
names: as with make, an audio file rewritten in place under an unchanged list is not noticed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dino_speech.file_io import atomic_write_text

__all__ = ["file_id", "finished", "read_record", "request", "write_record"]


def file_id(path: str | Path | None) -> list[Any] | None:
    """A file's identity: absolute path, size and modification time (None for no path)."""
    if not path:
        return None
    p = Path(path).resolve()
    st = p.stat()
    return [str(p), st.st_size, st.st_mtime_ns]


def request(settings: Mapping[str, Any], inputs: Iterable[str | Path]) -> dict[str, Any]:
    """The comparable description of a run: its ``settings`` (JSON values) and the
    :func:`file_id` of each input, in order."""
    return json.loads(
        json.dumps({"settings": dict(settings), "inputs": [file_id(p) for p in inputs]})
    )


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing or unreadable."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def write_record(path: str | Path, made_from: Mapping[str, Any], **facts: Any) -> None:
    """Write ``{"made_from": made_from, **facts}`` to ``path`` atomically (after the output)."""
    record = {"made_from": dict(made_from), **facts}
    atomic_write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def finished(
    record_path: str | Path, made_from: Mapping[str, Any], outputs: Iterable[str | Path]
) -> dict[str, Any] | None:
    """The record in ``record_path`` when it holds this ``made_from`` and every output file
    exists (the request is done: its facts are in the record); else None."""
    record = read_record(record_path)
    if record is None or record.get("made_from") != dict(made_from):
        return None
    return record if all(Path(p).exists() for p in outputs) else None
