"""Lhotse Shar shards: a cut manifest with its audio packed into sequentially read tar files.

:func:`write_shar` packs the cuts of a manifest (shuffled first, so every shard is a random
sample of the corpus) with Lhotse's own :class:`~lhotse.shar.SharWriter`: ``D/cuts.NNNNNN.jsonl.gz``
holds the cuts (ids, durations and the ``custom`` labels: speaker, session, pseudo labels)
and ``D/recording.NNNNNN.tar`` their audio (each cut's own segment, in ``audio_format``).
``CutSet.from_shar(in_dir=D)`` reads the directory as Lhotse does.

:func:`list_shards` finds the shards of a directory (Lhotse's discovery) and counts each
one's cuts from its small manifest, without opening the tar files; :func:`read_shard` streams
one shard's cuts with their audio attached in memory (``cut.load_audio()`` and
:func:`dino_speech.audio.read_cut` decode it). :func:`epoch_shard_order` and
:func:`split_shards` say which shards a rank and a loader worker read in an epoch: the
shuffle of Lhotse's ``from_shar(shuffle_shards=True, seed=seed)`` in its epoch ``e`` and
Lhotse's ``split_for_dataloading`` slicing (``shards[rank::world_size][worker::num_workers]``),
with the rank and worker given explicitly.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.lazy import LazyManifestIterator
from lhotse.shar import LazySharIterator, SharWriter
from tqdm import tqdm

from dino_speech.errors import DataError

__all__ = [
    "AUDIO_FORMATS",
    "ShardInfo",
    "epoch_shard_order",
    "list_shards",
    "read_shard",
    "split_shards",
    "write_shar",
]

AUDIO_FORMATS = ("flac", "wav")


@dataclass(frozen=True)
class ShardInfo:
    """One shard: its files (``{"cuts": path, "recording": path, ...}``), its name
    (``"000003"``) and the durations of its cuts in file order."""

    name: str
    fields: dict[str, str]
    durations: tuple[float, ...]

    def kept(self, min_duration: float) -> int:
        """Cuts of at least ``min_duration`` seconds."""
        return sum(d >= min_duration for d in self.durations)


def write_shar(
    cuts: CutSet,
    out_dir: str | Path,
    *,
    shard_size: int = 1000,
    audio_format: str = "flac",
    shuffle: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> list[ShardInfo]:
    """Write ``cuts`` and their audio as Lhotse Shar shards of ``shard_size`` cuts in
    ``out_dir`` (a new or empty directory; written beside it, then renamed into place).

    Raises:
        DataError: ``out_dir`` holds files, a cut has no audio, or its audio cannot be read.
    """
    if shard_size < 1:
        raise DataError(f"shard size must be >= 1, got {shard_size}")
    if audio_format not in AUDIO_FORMATS:
        raise DataError(f"audio format '{audio_format}' is not one of {', '.join(AUDIO_FORMATS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataError(f"{out_dir} exists and is not empty; remove it or choose another")
    cut_list = list(cuts)
    if shuffle:
        random.Random(seed).shuffle(cut_list)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with SharWriter(tmp, fields={"recording": audio_format}, shard_size=shard_size) as w:
            for cut in tqdm(cut_list, desc="shar", unit="cut", disable=not progress):
                if not cut.has_recording:
                    raise DataError(f"cut '{cut.id}' has no recording to pack")
                try:
                    w.write(cut)
                except Exception as exc:  # lhotse's audio backends raise many types
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise DataError(f"cut '{cut.id}': cannot read its audio ({reason})") from None
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return list_shards(out_dir)


def list_shards(shar_dir: str | Path) -> list[ShardInfo]:
    """The shards of ``shar_dir`` in name order, with their cut durations.

    Raises:
        DataError: no such directory, no shards in it, or a shard without its audio tar.
    """
    shar_dir = Path(shar_dir)
    if not shar_dir.is_dir():
        raise DataError(f"shar directory not found: {shar_dir}")
    if not list(shar_dir.glob("cuts.*.jsonl*")):
        raise DataError(f"{shar_dir}: no Lhotse Shar shards (cuts.NNNNNN.jsonl.gz) in it")
    try:
        reader = LazySharIterator(in_dir=shar_dir)
    except AssertionError as exc:  # lhotse checks the layout with asserts
        raise DataError(f"{shar_dir}: not a complete Lhotse Shar directory ({exc})") from None
    if "recording" not in reader.fields:
        raise DataError(f"{shar_dir}: the shards hold no audio (no recording.NNNNNN.tar)")
    shards = []
    for files in reader.shards:
        cuts_path = Path(files["cuts"])
        name = cuts_path.name.split(".")[1]
        try:
            durations = tuple(float(c.duration) for c in LazyManifestIterator(cuts_path))
        except Exception as exc:  # lhotse raises many types for malformed files
            raise DataError(f"{cuts_path}: not a valid cut manifest ({exc})") from None
        shards.append(ShardInfo(name, {k: str(v) for k, v in files.items()}, durations))
    return shards


def read_shard(shard: ShardInfo) -> Iterator[Cut]:
    """Stream the cuts of ``shard`` in file order, their audio attached (read sequentially)."""
    fields = {field: [path] for field, path in shard.fields.items()}
    yield from LazySharIterator(fields=fields)


def epoch_shard_order(
    shards: Sequence[ShardInfo], seed: int, epoch: int, shuffle: bool = True
) -> list[ShardInfo]:
    """The shards in epoch ``epoch``'s order: shuffled with ``Random(seed + epoch)``, as
    Lhotse's ``from_shar(shuffle_shards=True, seed=seed)`` orders its ``epoch``-th pass."""
    order = list(shards)
    if shuffle:
        random.Random(seed + epoch).shuffle(order)
    return order


def split_shards(
    shards: Sequence[ShardInfo], rank: int, world_size: int, worker: int = 0, num_workers: int = 1
) -> list[ShardInfo]:
    """The shards of ``rank`` and, on it, of loader ``worker``: Lhotse's
    ``split_by_worker(split_by_node(shards))`` with the places given explicitly."""
    return list(shards)[rank::world_size][worker::num_workers]
