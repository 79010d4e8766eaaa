"""Files this toolkit writes: atomically (a reader never sees half a file) and with a format tag.

Every ``torch.save`` dictionary of the toolkit (embedder packages, training checkpoints,
margin classifiers) carries a ``"format"`` entry; :func:`load_torch_file` checks it on read.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dino_speech.errors import DataError

__all__ = ["atomic_path", "atomic_torch_save", "atomic_write_text", "load_torch_file"]


@contextmanager
def atomic_path(path: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path beside ``path`` for the block to write; renamed over ``path``
    when the block ends, removed when it raises.

    A reader never sees a half-written file, and a crash leaves the previous file intact.
    ``suffix`` ends the temporary name, for writers that choose the format by extension
    (``".jsonl.gz"`` for Lhotse manifests, ``".npz"`` for ``np.savez``). The file is created
    by the writer, so it gets the usual permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_path`, synced to disk before the rename."""
    import torch  # here, not above: scoring and list writers use this module without torch

    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())


def load_torch_file(path: str | Path, formats: Sequence[str], what: str) -> dict[str, Any]:
    """Read (on CPU, ``weights_only``) a dictionary this toolkit wrote and check its format.

    Args:
        path: the file.
        formats: accepted values of the dictionary's ``"format"`` entry.
        what: what the file should be, for the error messages (e.g. "margin classifier").

    Raises:
        DataError: the file cannot be read, or its format is not one of ``formats``.
    """
    import torch

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
    """Write ``text`` (UTF-8) through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
