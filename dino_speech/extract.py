"""Embedding extraction jobs: input lists, sharding over processes, shard merging.

``dino-speech embed`` reads its utterances from a Kaldi ``wav.scp`` (``utt path`` lines; a
relative path is relative to the working directory, as in Kaldi), a Lhotse cut manifest, a
list of files (id = file name without extension), or Lhotse Shar shards (:class:`SharInput`,
read one shard at a time, sequentially), and streams the embeddings into
``OUT/xvector.ark`` + ``OUT/xvector.scp``.

A large list is split into N contiguous shards (of Shar input: N contiguous blocks of whole
Shar shards). Shard ``i`` (0-based) writes
``OUT/shards/xvector.{i}-of-{N}.{ark,scp}`` (and ``skipped.{i}-of-{N}`` when bad audio was
skipped). Under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the environment) every process embeds
its shard on its own device, all wait at a barrier, and rank 0 merges the shards into
``OUT/xvector.{ark,scp}`` and removes them. With ``--shard i/N`` (e.g. a job array) each job
writes its shard only; ``dino-speech embed --merge N --out-dir OUT`` merges them afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dino_speech.data.shar import ShardInfo, list_shards, read_shard
from dino_speech.embedder import Embedder
from dino_speech.embedding_io import EmbeddingWriter, merge_shards
from dino_speech.errors import DataError

__all__ = [
    "ExtractSummary",
    "SharInput",
    "extract_embeddings",
    "extract_under_torchrun",
    "items_from_cuts",
    "items_from_files",
    "merge_shard_dir",
    "parse_shard",
    "read_wav_scp",
    "shard_name",
    "shard_items",
]

logger = logging.getLogger(__name__)


@dataclass
class ExtractSummary:
    """What one extraction (or shard) wrote."""

    scp: Path
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (utt, reason)
    skipped_file: Path | None = None  # where the skipped items are listed
    merged: bool = False


def read_wav_scp(path: str | Path) -> list[tuple[str, str]]:
    """``[(utt, audio path)]`` from a Kaldi ``wav.scp``; relative paths are taken from the
    working directory (Kaldi's rule). Pipe commands (``... |``) are not supported."""
    from dino_speech.data.manifests import read_kaldi_list

    items = []
    for utt, value in read_kaldi_list(path).items():
        if value.endswith("|") or " " in value.strip():
            raise DataError(
                f"{path}: entry '{utt}' is a command or has extra fields ('{value[:60]}'); "
                "only 'UTT PATH' lines are supported (convert piped audio to files first)"
            )
        items.append((utt, os.path.abspath(value)))
    if not items:
        raise DataError(f"{path}: the wav.scp is empty")
    return items


def items_from_files(files: Sequence[str | Path]) -> list[tuple[str, str]]:
    """``[(file name without extension, path)]``; two files with one name are an error."""
    items: list[tuple[str, str]] = []
    first: dict[str, str] = {}
    for f in files:
        utt = Path(f).stem
        if not utt or any(c.isspace() for c in utt):
            raise DataError(f"cannot use the name of '{f}' as an utterance id (empty or spaces)")
        if utt in first:
            raise DataError(
                f"'{first[utt]}' and '{f}' would both get the id '{utt}'; "
                "pass a wav.scp with unique ids instead"
            )
        first[utt] = str(f)
        items.append((utt, str(f)))
    return items


@dataclass(frozen=True)
class SharInput:
    """The Lhotse Shar shards of a directory as the input of :func:`extract_embeddings`."""

    shards: list[ShardInfo]

    @classmethod
    def from_dir(cls, shar_dir: str | Path) -> SharInput:
        return cls(list_shards(shar_dir))

    def blocks(self) -> Iterator[list[tuple[str, Any]]]:
        """``[(cut.id, cut)]`` of one shard after another (audio in memory, one shard at a
        time)."""
        for shard in self.shards:
            yield [(cut.id, cut) for cut in read_shard(shard)]


def items_from_cuts(path: str | Path) -> list[tuple[str, Any]]:
    """``[(cut.id, cut)]`` from a Lhotse cut manifest."""
    from dino_speech.data.manifests import load_cuts

    return [(cut.id, cut) for cut in load_cuts(path)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` → ``(i, N)`` with ``0 <= i < N``."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise DataError(f"shard must look like 'i/N' (e.g. 0/4), got '{text}'") from None
    if not 0 <= index < count:
        raise DataError(f"shard '{text}': need 0 <= i < N (shards are numbered from 0)")
    return index, count


def shard_items(items: Sequence[Any], index: int, count: int) -> list[Any]:
    """The ``index``-th of ``count`` contiguous, near-equal blocks of ``items``."""
    n = len(items)
    return list(items[index * n // count : (index + 1) * n // count])


def shard_name(index: int, count: int) -> str:
    return f"xvector.{index}-of-{count}"


def extract_embeddings(
    embedder: Embedder,
    items: Sequence[tuple[str, Any]] | SharInput,
    out_dir: str | Path,
    *,
    shard: tuple[int, int] | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    skip_bad: bool = False,
    progress: bool = True,
) -> ExtractSummary:
    """Embed ``items`` (or shard ``(i, N)`` of them) into Kaldi ark/scp under ``out_dir``.

    Without ``shard``: ``out_dir/xvector.{ark,scp}``. With it: ``out_dir/shards/...`` (see the
    module docstring). Skipped items are listed in ``skipped`` (``skipped.i-of-N`` for a shard).
    """
    out_dir = Path(out_dir)
    if shard is None:
        target, name, skipped_file = out_dir, "xvector", out_dir / "skipped"
    else:
        if isinstance(items, SharInput):
            items = SharInput(shard_items(items.shards, *shard))
        else:
            items = shard_items(items, *shard)
        target, name = out_dir / "shards", shard_name(*shard)
        skipped_file = target / f"skipped.{shard[0]}-of-{shard[1]}"
    if isinstance(items, SharInput):
        blocks: Iterable[Sequence[tuple[str, Any]]] = tqdm(
            items.blocks(), total=len(items.shards), desc="shar shards", disable=not progress
        )
        progress = False
    else:
        blocks = [items]
    skipped: list[tuple[str, str]] = []
    with EmbeddingWriter(target, name) as writer:
        for block in blocks:
            skipped += embedder.embed_items(
                block,
                batch_size=batch_size,
                num_workers=num_workers,
                progress=progress,
                skip_bad=skip_bad,
                sink=writer.add,
            ).skipped
    listed = _write_skipped(skipped_file, skipped)
    return ExtractSummary(writer.scp, len(writer), skipped, listed)


def merge_shard_dir(out_dir: str | Path, count: int, *, remove: bool = True) -> ExtractSummary:
    """Merge ``out_dir/shards/xvector.{0..count-1}-of-{count}.scp`` into ``out_dir/xvector.*``.

    Raises DataError naming the missing shards. The shard files are removed afterwards unless
    ``remove`` is false; skipped-item lists are concatenated into ``out_dir/skipped``.
    """
    out_dir = Path(out_dir)
    shard_dir = out_dir / "shards"
    scps = [shard_dir / f"{shard_name(i, count)}.scp" for i in range(count)]
    missing = [str(i) for i, p in enumerate(scps) if not p.is_file()]
    if missing:
        raise DataError(
            f"{shard_dir}: {len(missing)} of {count} shards are missing or unfinished "
            f"(shards {', '.join(missing[:10])})"
        )
    scp = merge_shards(scps, out_dir)
    skipped: list[tuple[str, str]] = []
    for i in range(count):
        f = shard_dir / f"skipped.{i}-of-{count}"
        if f.is_file():
            for line in f.read_text(encoding="utf-8").splitlines():
                utt, _, reason = line.partition(" ")
                skipped.append((utt, reason))
    listed = _write_skipped(out_dir / "skipped", skipped)
    with scp.open(encoding="utf-8") as f:
        written = sum(1 for line in f if line.strip())
    if remove:
        for i in range(count):
            for suffix in (".ark", ".scp"):
                (shard_dir / f"{shard_name(i, count)}{suffix}").unlink(missing_ok=True)
            (shard_dir / f"skipped.{i}-of-{count}").unlink(missing_ok=True)
        if shard_dir.is_dir() and not any(shard_dir.iterdir()):
            shard_dir.rmdir()
    return ExtractSummary(scp, written, skipped, listed, merged=True)


def _write_skipped(path: Path, skipped: Sequence[tuple[str, str]]) -> Path | None:
    """List ``utt reason`` lines in ``path`` (removed when nothing was skipped)."""
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    path.write_text("".join(f"{u} {r}\n" for u, r in skipped), encoding="utf-8")
    return path


def extract_under_torchrun(
    embedder: Embedder,
    items: Sequence[tuple[str, Any]] | SharInput,
    out_dir: str | Path,
    rank: int,
    world_size: int,
    **kwargs: Any,
) -> ExtractSummary:
    """Shard ``rank`` of ``world_size``; after a barrier rank 0 merges all shards.

    The barrier uses a gloo group with a long timeout, since shards may finish hours apart.
    """
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(days=2))
        created = True
    try:
        summary = extract_embeddings(embedder, items, out_dir, shard=(rank, world_size), **kwargs)
        dist.barrier()
        if rank == 0:
            summary = merge_shard_dir(out_dir, world_size)
        dist.barrier()
        return summary
    finally:
        if created:
            dist.destroy_process_group()
