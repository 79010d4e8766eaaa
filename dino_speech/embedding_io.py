"""Embeddings on disk: Kaldi ``xvector.ark``/``xvector.scp`` (via kaldiio) and ``.npz``.

One utterance id maps to one float32 vector. :func:`write_embeddings` writes a Kaldi archive
of float vectors plus its index, exactly as Kaldi's ``copy-vector ark:- ark,scp:D/xvector.ark,
D/xvector.scp`` would: the scp lists ``utt D/xvector.ark:OFFSET`` with the archive path as it
was given (Kaldi convention, relative paths are relative to the working directory).
:func:`read_embeddings` reads ``.scp``, ``.ark`` and ``.npz`` into ``(ids, X)``. A relative
archive path in an scp that does not exist from the working directory (or an absolute one that
does not exist any more) is looked up next to the scp as well, so a moved experiment directory
still reads.

``.npz`` files hold two arrays: ``ids`` (strings) and ``vectors`` (N, D) float32.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import kaldiio
import numpy as np

from dino_speech.errors import DataError
from dino_speech.file_io import atomic_path

__all__ = [
    "as_table",
    "EmbeddingWriter",
    "embeddings_to_dict",
    "merge_shards",
    "read_embeddings",
    "save_npz",
    "write_embeddings",
]

SCP_NAME = "xvector.scp"


class EmbeddingWriter:
    """Stream ``(utt, vector)`` pairs into ``out_dir/{name}.ark`` and ``out_dir/{name}.scp``.

    Both files are written under temporary names and renamed on :meth:`close`, so an
    interrupted run never leaves a truncated archive behind a valid-looking index. Used as a
    context manager, an exception discards the temporary files.
    """

    def __init__(self, out_dir: str | Path, name: str = "xvector") -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ark = self.out_dir / f"{name}.ark"
        self.scp = self.out_dir / f"{name}.scp"
        self._tmp_ark = self.out_dir / f".{name}.ark.tmp"
        self._tmp_scp = self.out_dir / f".{name}.scp.tmp"
        self._fa: BinaryIO | None = open(self._tmp_ark, "wb")  # noqa: SIM115 - closed in close()
        self._fs: Any = open(self._tmp_scp, "w", encoding="utf-8")  # noqa: SIM115
        self._seen: set[str] = set()
        self.dim: int | None = None

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, utt: str, vector: np.ndarray) -> None:
        """Append one ``(D,)`` vector (stored as float32)."""
        if self._fa is None:
            raise RuntimeError("EmbeddingWriter is closed")
        vec = np.asarray(vector, dtype=np.float32)
        if vec.ndim == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if vec.ndim != 1:
            raise DataError(f"embedding of '{utt}' has shape {vec.shape}, not a vector")
        if self.dim is None:
            self.dim = vec.shape[0]
        elif vec.shape[0] != self.dim:
            raise DataError(f"embedding of '{utt}' has dimension {vec.shape[0]}, not {self.dim}")
        _check_ids([utt])
        if utt in self._seen:
            raise DataError(f"duplicate utterance id '{utt}'")
        self._seen.add(utt)
        self._fa.write(f"{utt} ".encode())
        offset = self._fa.tell()
        kaldiio.save_mat(self._fa, vec)
        # the archive path as given: Kaldi convention (see the module docstring)
        self._fs.write(f"{utt} {self.ark}:{offset}\n")

    def close(self) -> Path:
        """Finish both files and move them into place; returns the scp path."""
        if self._fa is not None:
            self._fa.close()
            self._fs.close()
            self._fa = None
            os.replace(self._tmp_ark, self.ark)
            os.replace(self._tmp_scp, self.scp)
        return self.scp

    def discard(self) -> None:
        """Drop everything written so far."""
        if self._fa is not None:
            self._fa.close()
            self._fs.close()
            self._fa = None
        self._tmp_ark.unlink(missing_ok=True)
        self._tmp_scp.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def write_embeddings(
    out_dir: str | Path,
    ids: Sequence[str],
    vectors: np.ndarray | Sequence[np.ndarray],
    *,
    name: str = "xvector",
) -> Path:
    """Write ``out_dir/{name}.ark`` and ``out_dir/{name}.scp``; return the scp path.

    Args:
        out_dir: created if needed.
        ids: N utterance ids (unique, no whitespace).
        vectors: ``(N, D)`` array (or N vectors of one dimension D), stored as float32.
    """
    ids = list(ids)
    X = _as_matrix(vectors, len(ids), "vectors")
    _check_ids(ids)
    with EmbeddingWriter(out_dir, name) as writer:
        for utt, row in zip(ids, X, strict=True):
            writer.add(utt, row)
    return writer.scp


def save_npz(path: str | Path, ids: Sequence[str], vectors: np.ndarray) -> Path:
    """Write ``ids`` and ``(N, D)`` ``vectors`` to ``path`` (``.npz``)."""
    ids = list(ids)
    X = _as_matrix(vectors, len(ids), "vectors")
    _check_ids(ids)
    path = Path(path)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, ids=np.asarray(ids, dtype=str), vectors=X)
    return path


def read_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Read embeddings from a Kaldi ``.scp`` or ``.ark`` file or an ``.npz`` file.

    A directory is read as ``DIR/xvector.scp``. Each Kaldi entry may be a vector or a 1-row
    matrix.

    Returns:
        ``(ids, X)``: N unique ids in file order and a ``(N, D)`` float32 array.

    Raises:
        DataError: missing/unreadable file, duplicate ids, entries of mixed dimension, an
            empty file, or non-finite values.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SCP_NAME
    if not path.is_file():
        raise DataError(f"embeddings file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        ids, rows = _read_npz(path)
    elif suffix == ".ark":
        ids, rows = _read_ark(path)
    else:  # .scp or any Kaldi index
        ids, rows = _read_scp(path)
    if not ids:
        raise DataError(f"{path}: holds no embeddings")
    _check_ids(ids, where=str(path))
    X = _stack(rows, ids, path)
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        first = ", ".join(np.asarray(ids)[bad][:3])
        raise DataError(f"{path}: {int(bad.sum())} embeddings hold NaN/Inf values (first: {first})")
    return ids, X


def embeddings_to_dict(ids: Sequence[str], X: np.ndarray) -> dict[str, np.ndarray]:
    """``{id: vector}`` view of ``(ids, X)`` (rows are views, not copies)."""
    return {utt: X[i] for i, utt in enumerate(ids)}


def merge_shards(scps: Iterable[str | Path], out_dir: str | Path, name: str = "xvector") -> Path:
    """Copy the embeddings of several scp files (e.g. one per shard) into one archive.

    Writes ``out_dir/{name}.ark`` and ``out_dir/{name}.scp`` in the order of ``scps`` and of
    their lines; returns the scp path. Duplicate ids or mixed dimensions raise DataError.
    """
    scps = [Path(p) for p in scps]
    for scp in scps:
        if not scp.is_file():
            raise DataError(f"shard index not found: {scp}")
    with EmbeddingWriter(out_dir, name) as writer:
        for scp in scps:
            for lineno, utt, vec in _iter_scp(scp):
                try:
                    writer.add(utt, vec)
                except DataError as exc:
                    raise DataError(f"{scp}:{lineno}: {exc}") from None
    return writer.scp


# --------------------------------------------------------------------------- internals


def _as_matrix(vectors: Any, n: int, what: str) -> np.ndarray:
    if isinstance(vectors, np.ndarray):
        X = vectors
    else:
        vectors = list(vectors)
        dims = {np.asarray(v).shape for v in vectors}
        if len(dims) > 1:
            raise DataError(f"{what} have mixed shapes: {sorted(dims)[:4]}")
        X = np.stack([np.asarray(v) for v in vectors]) if vectors else np.zeros((0, 0))
    if hasattr(X, "detach"):  # a torch tensor slipped through
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise DataError(f"{what} must be a (N, D) matrix, got shape {X.shape}")
    if X.shape[0] != n:
        raise DataError(f"{n} ids but {X.shape[0]} {what}")
    return np.ascontiguousarray(X)


def _check_ids(ids: Sequence[str], where: str = "ids") -> None:
    seen: set[str] = set()
    for utt in ids:
        if not utt or any(c.isspace() for c in utt):
            raise DataError(f"{where}: utterance id {utt!r} is empty or contains whitespace")
        if utt in seen:
            raise DataError(f"{where}: duplicate utterance id '{utt}'")
        seen.add(utt)


def _scp_entries(scp: Path) -> Iterator[tuple[int, str, str]]:
    """``(line number, utt, "ARK:OFFSET")`` of each line of ``scp``.

    (Not ``data.manifests.read_kaldi_list``: that module imports Lhotse and torch, which would
    add a second and a half to every ``score`` and ``eval-emotion`` start.)
    """
    with scp.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or ":" not in parts[1]:
                raise DataError(f"{scp}:{lineno}: expected 'UTT ARK:OFFSET', got '{line[:80]}'")
            yield lineno, parts[0], parts[1].strip()


def _resolve_ark(ark: str, scp: Path) -> str:
    """The archive path as written if it exists, else relative to (or next to) the scp."""
    if os.path.exists(ark):
        return ark
    candidates = [scp.parent / Path(ark).name]
    if not os.path.isabs(ark):
        candidates.insert(0, scp.parent / ark)
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    return ark


def _iter_scp(scp: Path) -> Iterator[tuple[int, str, np.ndarray]]:
    fds: dict[str, Any] = {}
    resolved: dict[str, str] = {}
    try:
        for lineno, utt, spec in _scp_entries(scp):
            ark, sep, rest = spec.rpartition(":")
            if ark not in resolved:
                resolved[ark] = _resolve_ark(ark, scp)
                if not os.path.exists(resolved[ark]):
                    raise DataError(f"{scp}:{lineno}: archive '{ark}' not found")
            try:
                mat = kaldiio.load_mat(f"{resolved[ark]}{sep}{rest}", fd_dict=fds)
            except Exception as exc:
                raise DataError(f"{scp}:{lineno}: cannot read '{utt}' from {spec}: {exc}") from None
            yield lineno, utt, mat
    finally:
        for fd in fds.values():
            fd.close()


def _read_scp(scp: Path) -> tuple[list[str], list[np.ndarray]]:
    ids: list[str] = []
    rows: list[np.ndarray] = []
    for _, utt, mat in _iter_scp(scp):
        ids.append(utt)
        rows.append(mat)
    return ids, rows


def _read_ark(ark: Path) -> tuple[list[str], list[np.ndarray]]:
    ids: list[str] = []
    rows: list[np.ndarray] = []
    try:
        for utt, mat in kaldiio.load_ark(str(ark)):
            ids.append(utt)
            rows.append(mat)
    except Exception as exc:
        raise DataError(f"{ark}: not a readable Kaldi archive ({exc})") from None
    return ids, rows


def _read_npz(path: Path) -> tuple[list[str], list[np.ndarray] | np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "ids" not in data or "vectors" not in data:
                raise DataError(
                    f"{path}: an embeddings .npz needs arrays 'ids' and 'vectors', "
                    f"found {', '.join(data.files) or 'none'}"
                )
            ids = [str(u) for u in data["ids"]]
            X = np.asarray(data["vectors"])
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    if X.ndim != 2 or X.shape[0] != len(ids):
        raise DataError(f"{path}: 'vectors' has shape {X.shape} for {len(ids)} ids")
    return ids, X


def _stack(rows: list[np.ndarray] | np.ndarray, ids: list[str], path: Path) -> np.ndarray:
    if isinstance(rows, np.ndarray):
        return np.ascontiguousarray(rows, dtype=np.float32)
    flat = []
    for utt, row in zip(ids, rows, strict=True):
        row = np.asarray(row)
        if row.ndim == 2 and row.shape[0] == 1:
            row = row[0]
        if row.ndim != 1:
            raise DataError(f"{path}: entry '{utt}' is a {row.shape} matrix, not a vector")
        flat.append(row)
    dims: dict[int, str] = {}
    for utt, row in zip(ids, flat, strict=True):
        dims.setdefault(row.shape[0], utt)
    if len(dims) > 1:
        detail = ", ".join(f"{d} (e.g. '{u}')" for d, u in sorted(dims.items()))
        raise DataError(f"{path}: embeddings of mixed dimension: {detail}")
    return np.stack(flat).astype(np.float32, copy=False)


def as_table(
    embeddings: Mapping[str, np.ndarray] | tuple[Sequence[str], np.ndarray],
) -> tuple[list[str], np.ndarray]:
    """Normalise ``{id: vector}`` or ``(ids, X)`` to ``(ids, X (N, D) float32)``."""
    if isinstance(embeddings, Mapping):
        ids = list(embeddings)
        return ids, _as_matrix([embeddings[u] for u in ids], len(ids), "embeddings")
    ids, X = embeddings
    ids = list(ids)
    return ids, _as_matrix(X, len(ids), "embeddings")
