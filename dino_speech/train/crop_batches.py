"""The trainers' side of the data pipeline: loader batches → multi-crop views on the device.

Loader workers return raw waveform crops (:mod:`dino_speech.data.multicrop`); the views are
made batched (:class:`~dino_speech.data.views.ViewMaker`: every crop gets its own augmentation
draw, then fbank; the student's copies of the crops get SpecAugment), on the training device
or, with ``data.augment_on: workers`` (the CPU default), in the loader workers themselves
(:mod:`dino_speech.data.views`). The teacher and the student see the same augmented global
waveforms. Margin fine-tuning uses the same source with one global crop and no local crop,
training on the student's (SpecAugmented) copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from dino_speech.config import DataConfig
from dino_speech.data.views import CropViews, ViewMaker, resolve_augment_on
from dino_speech.errors import ConfigError
from dino_speech.train.distributed import DistContext

if TYPE_CHECKING:
    from lhotse import CutSet

__all__ = ["CropBatchSource", "CropViews"]


class CropBatchSource:
    """Builds the loader, sampler, augmentation and fbank from a :class:`DataConfig`.

    Args:
        cfg: crops, batch size, workers, augmentation, features; the cuts are
            ``cfg.train_cuts`` (or the shards of ``cfg.train_shar``) unless ``cuts`` is given.
        seed: shuffling, crop positions and the augmentation banks derive from it.
        ctx: this process's rank, world size and device.
        gen: a CPU generator (the same draws on any device) that drives the augmentation on
            the device; the trainer saves and restores its state (in the workers, each
            batch's draws derive from its position instead).
        cuts: the training cuts, instead of ``cfg.train_cuts``.
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        seed: int,
        ctx: DistContext,
        gen: torch.Generator,
        cuts: CutSet | None = None,
    ) -> None:
        from dino_speech.data.sampling import make_crop_loader
        from dino_speech.data.shar_loader import make_shar_loader, train_source

        make_loader: Any = partial(make_crop_loader, cuts=cuts)
        if cuts is None and train_source(cfg) == "shar":
            make_loader = make_shar_loader
        self.cfg = cfg
        self.ctx = ctx
        self.gen = gen
        self.augment_on = resolve_augment_on(cfg.augment_on, ctx.device, cfg.num_workers)
        self.loader, self.sampler = make_loader(
            cfg,
            seed=seed,
            rank=ctx.rank,
            world_size=ctx.world_size,
            views_in_workers=self.augment_on == "workers",
        )
        self.views = ViewMaker(cfg, seed=seed + ctx.rank, device=ctx.device)
        self.wave_augment = self.views.wave_augment
        self.fbank = self.views.fbank

    def steps_per_epoch(self, cap: int | None, name: str = "train.steps_per_epoch") -> int:
        """Batches per epoch (the same on every process), at most ``cap`` (config key
        ``name``)."""
        steps = len(self.sampler)
        if cap is not None:
            if cap < 1:
                raise ConfigError(f"{name} must be >= 1, got {cap}")
            steps = min(steps, cap)
        return steps

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def batches(self) -> Iterator[dict[str, Any]]:
        return iter(self.loader)

    def state_dict(self, epoch: int, batches_trained: int) -> dict[str, Any]:
        """The sampler's position and the augmentation's call count.

        The position recorded is the trainer's: ``batches_trained`` batches of ``epoch`` done.
        The loader counts a batch as consumed when it hands it out, which is one batch ahead
        of the trainer while a step is in flight, and the sampler's epoch only moves when the
        next epoch starts.
        """
        sampler = {**self.sampler.state_dict(), "epoch": epoch, "batches_done": batches_trained}
        return {"sampler": sampler, "augment": self.wave_augment.state_dict()}

    def load_state_dict(self, state: dict[str, Any], *, sampler: bool = True) -> None:
        """Restore the augmentation (always) and the sampler (mid-epoch resumes)."""
        self.wave_augment.load_state_dict(dict(state["augment"]))
        if sampler:
            self.sampler.load_state_dict(copy.deepcopy(state["sampler"]))

    def prepare(self, batch: dict[str, Any], device: torch.device) -> CropViews:
        """The views of one loader batch on ``device`` (made here unless the workers did)."""
        if "views" in batch:
            return batch["views"].to(device)
        return self.views(batch, self.gen)
