"""Batches of cuts for DINO training: a resumable, DDP-aware sampler and the loader around it.

:func:`make_crop_loader` drops cuts shorter than ``min_duration``, wraps Lhotse's
``SimpleCutSampler`` (``max_cuts = batch_size``, shuffled with ``seed + epoch``, the same
order on every rank; rank ``r`` of ``world_size`` takes every ``world_size``-th batch, so every
rank gets the same number of batches) in a :class:`CropSampler`, and returns a
:class:`CropLoader` whose workers run :class:`~dino_speech.data.multicrop.MultiCropDataset`.
Rank and world size are passed explicitly; ``torch.distributed`` need not be initialised.

Exact resume. A ``DataLoader`` with workers asks its sampler for batches ahead of the training
loop, so a sampler's own position is ahead of what was trained on. :class:`CropLoader` instead
counts the batches it has handed to the loop and tells the sampler, whose ``state_dict()`` is
``{"epoch", "batches_done", ...}``. After ``load_state_dict`` the next iteration regenerates
that epoch's order and skips ``batches_done`` batches without reading audio; as crop positions
depend only on ``(seed, epoch, cut id)``, the remaining batches are exactly those the original
run would have produced. Call ``sampler.set_epoch(e)`` before each epoch (calling it with the
restored epoch keeps the restored position).
"""

from __future__ import annotations

import logging
import math
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from torch.utils.data import DataLoader, Dataset

from dino_speech.config import DataConfig
from dino_speech.data.multicrop import MultiCropDataset
from dino_speech.data.noise_bank import stable_seed
from dino_speech.errors import ConfigError, DataError

__all__ = ["CropLoader", "CropSampler", "make_crop_loader", "seed_worker"]

log = logging.getLogger(__name__)


class CropSampler:
    """Shuffled batches of ``batch_size`` cuts for one rank, resumable to the exact batch.

    Iterating yields ``CutSet`` batches of the current epoch (``(epoch, step, cuts)`` with
    ``indexed``, for datasets whose draws derive from the batch's position). ``len()`` is the
    number of batches per epoch on this rank.
    """

    def __init__(
        self,
        cuts: CutSet,
        *,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
        dataset: MultiCropDataset | None = None,
        indexed: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}"
            )
        self.num_cuts = len(cuts)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.dataset = dataset
        self.indexed = indexed
        self.epoch = 0
        self.batches_done = 0
        self._skip = 0
        self._inner = SimpleCutSampler(
            cuts,
            max_cuts=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            world_size=world_size,
            rank=rank,
            seed=seed,
        )

    def __len__(self) -> int:
        total = self.num_cuts // self.batch_size
        if not self.drop_last:
            total = math.ceil(self.num_cuts / self.batch_size)
            return math.ceil(total / self.world_size)
        return total // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (reshuffled) at its first batch, unless it is the restored epoch."""
        if epoch != self.epoch:
            self._skip = 0
            self.batches_done = 0
        self.epoch = int(epoch)
        if self.dataset is not None:
            self.dataset.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[CutSet]:
        skip, self._skip = self._skip, 0
        self.batches_done = skip
        self._inner.set_epoch(self.epoch)
        self._inner.allow_iter_to_reset_state()
        inner = iter(self._inner)
        # Lhotse samplers are their own iterators and iter() restarts the epoch, so they are
        # advanced with next() only.
        for _ in range(skip):
            if next(inner, None) is None:
                return
        step = skip
        while (batch := next(inner, None)) is not None:
            yield (self.epoch, step, batch) if self.indexed else batch
            step += 1

    def note_consumed(self) -> None:
        """Called by the loader for every batch it hands to the training loop."""
        self.batches_done += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "seed": self.seed,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "num_cuts": self.num_cuts,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next iteration resumes after its last consumed batch."""
        done = int(state["batches_done"])
        for key in ("seed", "batch_size", "num_cuts"):
            if state.get(key) != getattr(self, key):
                warnings.warn(
                    f"sampler state has {key}={state.get(key)}, this sampler {getattr(self, key)}: "
                    "the resumed epoch will not see exactly the same batches",
                    stacklevel=2,
                )
        if state.get("world_size") != self.world_size:
            # The same number of cuts consumed overall, spread over the new number of ranks.
            done = math.ceil(done * int(state["world_size"]) / self.world_size)
            warnings.warn(
                f"resuming with world_size {self.world_size} instead of {state['world_size']}: "
                "batches are redistributed approximately",
                stacklevel=2,
            )
        self.epoch = int(state["epoch"])
        self.batches_done = self._skip = done
        if self.dataset is not None:
            self.dataset.set_epoch(self.epoch)


class CropLoader(DataLoader):
    """A ``DataLoader`` over :class:`CropSampler` that reports consumed batches to it and logs
    each skipped (unreadable) cut once."""

    def __init__(self, dataset: Dataset, sampler: CropSampler, **kwargs: Any) -> None:
        super().__init__(dataset, sampler=sampler, batch_size=None, **kwargs)
        self.dino_sampler = sampler
        self.warned_cuts: set[str] = set()

    def __iter__(self) -> Iterator[dict[str, Any]]:  # type: ignore[override]
        for batch in super().__iter__():
            self.dino_sampler.note_consumed()
            for cut_id, reason in batch.get("skipped", ()):
                if cut_id not in self.warned_cuts:
                    self.warned_cuts.add(cut_id)
                    log.warning("skipping cut %s: %s", cut_id, reason)
            yield batch


def seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs in a loader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_crop_loader(
    cfg: DataConfig,
    cuts: CutSet | str | Path | None = None,
    *,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    views_in_workers: bool = False,
) -> tuple[CropLoader, CropSampler]:
    """The training loader of multi-crop batches and its sampler (see the module doc).

    Args:
        cfg: batch size, workers, crops, minimum duration, sample rate (``cfg.features``).
        cuts: the training cuts, a manifest path, or None for ``cfg.train_cuts``.
        seed: shuffling, crop positions and worker seeds derive from it.
        rank, world_size: this process's place in data-parallel training.
        views_in_workers: the workers also augment and compute features
            (:class:`~dino_speech.data.views.WorkerViewsDataset`; ``data.augment_on``).
    """
    from dino_speech.data.manifests import filter_min_duration, load_cuts

    if cuts is None:
        if not cfg.train_cuts:
            raise ConfigError("no training cuts: set data.train_cuts")
        cuts = cfg.train_cuts
    if isinstance(cuts, (str, Path)):
        cuts = load_cuts(cuts)
    if cfg.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {cfg.num_workers}")
    total = len(cuts)
    cuts = filter_min_duration(cuts, cfg.min_duration).to_eager()
    if len(cuts) < total:
        log.info(
            "dropped %d of %d cuts shorter than %.2f s", total - len(cuts), total, cfg.min_duration
        )
    if len(cuts) == 0:
        raise DataError(f"no training cuts left: all {total} are shorter than {cfg.min_duration} s")
    dataset = MultiCropDataset(cfg.crops, cfg.features.sample_rate, seed=seed)
    sampler = CropSampler(
        cuts,
        batch_size=cfg.batch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=cfg.drop_last,
        dataset=dataset,
        indexed=views_in_workers,
    )
    if len(sampler) == 0:
        raise DataError(
            f"{len(cuts)} cuts make no full batch of {cfg.batch_size} per rank "
            f"(world size {world_size}); lower data.batch_size or set data.drop_last=false"
        )
    workers = cfg.num_workers
    served: Dataset = dataset
    if views_in_workers:
        from dino_speech.data.views import WorkerViewsDataset

        served = WorkerViewsDataset(
            dataset, cfg, seed=seed, rank=rank, steps_per_epoch=len(sampler)
        )
    loader = CropLoader(
        served,
        sampler,
        num_workers=workers,
        worker_init_fn=seed_worker if workers else None,
        generator=torch.Generator().manual_seed(stable_seed(seed, rank, "loader") % 2**63),
        pin_memory=torch.cuda.is_available(),
        prefetch_factor=cfg.prefetch_factor if workers else None,
        # Views in the workers: kept alive across epochs, so their noise banks are built
        # once (the batch carries its epoch); otherwise restarted for the dataset's new epoch.
        persistent_workers=views_in_workers and workers > 0,
    )
    return loader, sampler
