"""DINO training batches read sequentially from Lhotse Shar shards, resumable to the batch.

``data.train_shar: DIR`` (shards written by ``dino-speech shar``) replaces
``data.train_cuts``. Each epoch ``e`` the shards are shuffled with ``seed + e`` (Lhotse's
``from_shar(shuffle_shards=True)`` order, the same on every rank); rank ``r`` of ``W`` takes
``order[r::W]`` and its loader worker ``k`` of ``S`` (``S = max(1, num_workers)``) reads
``order[r::W][k::S]`` (Lhotse's ``split_for_dataloading`` slicing), so every shard is read by
exactly one worker of one rank, front to back. A worker's cuts (those of at least
``min_duration``) pass through a shuffle buffer of ``shar_shuffle_buffer`` cuts that starts
afresh in every shard (seeded by ``seed``, ``e`` and the shard) and are cut into batches of
``batch_size`` consecutive cuts; with ``drop_last`` a worker's last partial batch is dropped.

The plan (:class:`SharPlan`) is computed in advance from the shards' small cut manifests:
which worker makes the epoch's ``i``-th batch (round robin over the workers that still have
batches, as PyTorch interleaves workers), and how many batches an epoch has: one number for
every rank and epoch (a lower bound from the smallest shards, so that DDP ranks step together),
so a rank's last few batches of an epoch may go unused. Batches carry their index ``i`` and
:class:`SharLoader` hands them out in that order, whatever order the workers finish in.

Exact resume. The state is ``{"epoch", "batches_done"}``, as for
:class:`~dino_speech.data.sampling.CropSampler`. From the plan, ``batches_done`` says how many
batches each worker had made; a resumed worker skips the shards it had finished without
opening them and, in its current shard, the cuts it had consumed (read through, not decoded),
so the remaining batches are exactly those of the uninterrupted run (crop positions depend on
``(seed, epoch, cut id)`` only). Resuming with another number of workers or ranks changes
the plan: the run then restarts the epoch's shards from the batch count's share (approximate,
with a warning).
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from collections.abc import Iterator
from itertools import islice
from typing import Any

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.utils import streaming_shuffle
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from dino_speech.config import DataConfig
from dino_speech.data.multicrop import MultiCropDataset
from dino_speech.data.noise_bank import stable_seed
from dino_speech.data.sampling import CropSampler, seed_worker
from dino_speech.data.shar import (
    ShardInfo,
    epoch_shard_order,
    list_shards,
    read_shard,
    split_shards,
)
from dino_speech.errors import ConfigError, DataError

__all__ = ["SharBatches", "SharLoader", "SharPlan", "make_shar_loader", "train_source"]

log = logging.getLogger(__name__)


class SharPlan:
    """Which worker reads which shards and makes which batch, per epoch (see the module doc).

    ``len()`` is the number of batches per epoch, the same on every rank.
    """

    def __init__(
        self,
        shards: list[ShardInfo],
        *,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_streams: int = 1,
        min_duration: float = 0.0,
        drop_last: bool = True,
        shuffle_buffer: int = 1000,
        dataset: MultiCropDataset | None = None,
    ) -> None:
        if batch_size < 1 or num_streams < 1 or shuffle_buffer < 1:
            raise ConfigError(
                f"need batch_size, workers and data.shar_shuffle_buffer >= 1, got {batch_size}, "
                f"{num_streams}, {shuffle_buffer}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.shards = shards
        self.kept = {s.name: s.kept(min_duration) for s in shards}
        self.num_cuts = sum(self.kept.values())
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_streams = num_streams
        self.min_duration = min_duration
        self.drop_last = drop_last
        self.shuffle_buffer = shuffle_buffer
        self.dataset = dataset
        self.epoch = 0
        self.batches_done = 0
        self._skip = 0
        self._len = self._batches_per_epoch()

    def _batches_per_epoch(self) -> int:
        """A lower bound of any rank's batches in any epoch: its fewest shards (the smallest
        ones) and, with ``drop_last``, up to ``batch_size - 1`` cuts lost per worker."""
        fewest = len(self.shards) // self.world_size
        cuts = sum(sorted(self.kept.values())[:fewest])
        if not self.drop_last:
            return math.ceil(cuts / self.batch_size)
        streams = min(self.num_streams, math.ceil(len(self.shards) / self.world_size))
        return max(0, math.ceil((cuts - streams * (self.batch_size - 1)) / self.batch_size))

    def __len__(self) -> int:
        return self._len

    def streams(self, epoch: int) -> list[list[ShardInfo]]:
        """The shards each worker of this rank reads in ``epoch``, in reading order."""
        order = epoch_shard_order(self.shards, self.seed, epoch)
        return [
            split_shards(order, self.rank, self.world_size, k, self.num_streams)
            for k in range(self.num_streams)
        ]

    def schedule(self, epoch: int) -> list[int]:
        """The worker that makes each of the epoch's ``len()`` batches, in loader order."""
        rounding = math.floor if self.drop_last else math.ceil
        counts = [
            int(rounding(sum(self.kept[s.name] for s in stream) / self.batch_size))
            for stream in self.streams(epoch)
        ]
        order = [k for r in range(max(counts, default=0)) for k, n in enumerate(counts) if r < n]
        return order[: len(self)]

    # The epoch position (epoch, batches_done, _skip, dataset) works as the file sampler's.
    set_epoch = CropSampler.set_epoch
    note_consumed = CropSampler.note_consumed

    def start(self) -> int:
        """Called when an epoch's iteration begins: the index of its first batch."""
        skip, self._skip = self._skip, 0
        self.batches_done = skip
        return skip

    def stream_cuts(self, epoch: int, stream: int, skip: int) -> Iterator[Cut]:
        """Worker ``stream``'s cuts of ``epoch`` after its first ``skip``: finished shards
        are not opened, the current one is read through to the position."""
        for shard in self.streams(epoch)[stream]:
            if skip >= self.kept[shard.name]:
                skip -= self.kept[shard.name]
                continue
            cuts = (c for c in _checked(shard) if c.duration >= self.min_duration)
            rng = random.Random(stable_seed(self.seed, epoch, "shar", shard.name))
            cuts = streaming_shuffle(cuts, bufsize=self.shuffle_buffer, rng=rng)
            yield from islice(cuts, skip, None)
            skip = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "seed": self.seed,
            "world_size": self.world_size,
            "num_streams": self.num_streams,
            "batch_size": self.batch_size,
            "num_cuts": self.num_cuts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration resumes after its last consumed batch."""
        for key in ("seed", "batch_size", "num_cuts", "world_size", "num_streams"):
            if state.get(key) != getattr(self, key):
                warnings.warn(
                    f"shar loader state has {key}={state.get(key)}, this loader "
                    f"{getattr(self, key)}: the resumed epoch will not see exactly the same "
                    "batches",
                    stacklevel=2,
                )
        self.epoch = int(state["epoch"])
        self.batches_done = self._skip = min(int(state["batches_done"]), len(self))
        if self.dataset is not None:
            self.dataset.set_epoch(self.epoch)


def _checked(shard: ShardInfo) -> Iterator[Cut]:
    """:func:`read_shard`, its failures (a truncated tar, tar and manifest out of step) as
    :class:`DataError` naming the shard."""
    try:
        yield from read_shard(shard)
    except Exception as exc:  # tarfile, gzip and lhotse's asserts raise many types
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"shard {shard.fields['recording']}: unreadable ({reason})") from None


class SharBatches(IterableDataset):
    """The batches of one epoch of a :class:`SharPlan`, from ``plan.start()`` on.

    In a loader worker ``k`` it makes the batches the plan gives worker ``k``; each is
    ``served[cuts]`` (or ``served[(epoch, i, cuts)]`` when ``indexed``) plus ``"plan_index": i``.
    """

    def __init__(self, plan: SharPlan, served: Dataset, *, indexed: bool = False) -> None:
        self.plan = plan
        self.served = served
        self.indexed = indexed
        self.first = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        stream = 0 if info is None else info.id
        plan, epoch = self.plan, self.plan.epoch
        schedule = plan.schedule(epoch)
        mine = [i for i in range(self.first, len(schedule)) if schedule[i] == stream]
        done = sum(1 for k in schedule[: self.first] if k == stream)
        cuts = plan.stream_cuts(epoch, stream, done * plan.batch_size)
        for index in mine:
            batch = CutSet.from_cuts(islice(cuts, plan.batch_size))
            if len(batch) == 0:
                return
            item = (epoch, index, batch) if self.indexed else batch
            yield {**self.served[item], "plan_index": index}


class SharLoader:
    """Iterating gives one epoch's batches in plan order (workers' batches are reordered) and
    reports each to the plan; each unreadable cut is logged once."""

    def __init__(self, batches: SharBatches, **loader_kwargs: Any) -> None:
        self.batches = batches
        self.plan = batches.plan
        self.loader_kwargs = loader_kwargs
        self.warned_cuts: set[str] = set()

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.batches.first = expected = self.plan.start()
        loader = DataLoader(self.batches, batch_size=None, **self.loader_kwargs)
        pending: dict[int, dict[str, Any]] = {}
        for batch in loader:
            pending[batch.pop("plan_index")] = batch
            while expected in pending:
                ready = pending.pop(expected)
                expected += 1
                self.plan.note_consumed()
                for cut_id, reason in ready.get("skipped", ()):
                    if cut_id not in self.warned_cuts:
                        self.warned_cuts.add(cut_id)
                        log.warning("skipping cut %s: %s", cut_id, reason)
                yield ready


def train_source(cfg: DataConfig) -> str:
    """``"cuts"`` (``data.train_cuts``) or ``"shar"`` (``data.train_shar``): exactly one is set.

    Raises:
        ConfigError: neither or both are set.
    """
    if cfg.train_cuts and cfg.train_shar:
        raise ConfigError(
            "set data.train_cuts or data.train_shar, not both (empty the other one, e.g. "
            "data.train_cuts=)"
        )
    if not (cfg.train_cuts or cfg.train_shar):
        raise ConfigError(
            "data.train_cuts is empty: set it to a cuts manifest (jsonl.gz), or data.train_shar "
            "to a folder of shards"
        )
    return "shar" if cfg.train_shar else "cuts"


def make_shar_loader(
    cfg: DataConfig,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    views_in_workers: bool = False,
) -> tuple[SharLoader, SharPlan]:
    """The training loader over the shards of ``cfg.train_shar`` and its plan (module doc)."""
    if cfg.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {cfg.num_workers}")
    shards = list_shards(cfg.train_shar)
    dataset = MultiCropDataset(cfg.crops, cfg.features.sample_rate, seed=seed)
    plan = SharPlan(
        shards,
        batch_size=cfg.batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        num_streams=max(1, cfg.num_workers),
        min_duration=cfg.min_duration,
        drop_last=cfg.drop_last,
        shuffle_buffer=cfg.shar_shuffle_buffer,
        dataset=dataset,
    )
    if len(plan) == 0:
        raise DataError(
            f"{cfg.train_shar}: {len(shards)} shards of {plan.num_cuts} cuts (of at least "
            f"{cfg.min_duration} s) make no full batch of {cfg.batch_size} per worker of each of "
            f"{world_size} ranks; write more or smaller shards, or lower data.batch_size"
        )
    served: Dataset = dataset
    if views_in_workers:
        from dino_speech.data.views import WorkerViewsDataset

        served = WorkerViewsDataset(dataset, cfg, seed=seed, rank=rank, steps_per_epoch=len(plan))
    workers = cfg.num_workers
    loader = SharLoader(
        SharBatches(plan, served, indexed=views_in_workers),
        num_workers=workers,
        worker_init_fn=seed_worker if workers else None,
        generator=torch.Generator().manual_seed(stable_seed(seed, rank, "loader") % 2**63),
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=cfg.prefetch_factor if workers else None,
        persistent_workers=False,
    )
    return loader, plan
