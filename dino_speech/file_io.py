"""Files this toolkit writes: atomically (a reader never sees half a file) and with a format tag.

Every ``torch.save`` dictionary of the toolkit (embedder packages, training checkpoints,
margin classifiers) carries a ``"format"`` entry; :func:`load_torch_file` checks it on read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dino_speech.errors import DataError

__all__ = ["atomic_torch_save", "atomic_write_text", "load_torch_file"]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader never sees a half-written file, and a crash leaves the previous file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_torch_file(path: str | Path, formats: Sequence[str], what: str) -> dict[str, Any]:
    """Read (on CPU, ``weights_only``) a dictionary this toolkit wrote and check its format.

    Args:
        path: the file.
        formats: accepted values of the dictionary's ``"format"`` entry.
        what: what the file should be, for the error messages (e.g. "margin classifier").

    Raises:
        DataError: the file cannot be read, or its format is not one of ``formats``.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt not in formats:
        expected = " or ".join(repr(f) for f in formats)
        raise DataError(f"{path}: not a {what} (format {fmt!r}; expected {expected})")
    return blob


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
