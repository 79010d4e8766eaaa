"""The trainers' side of the data pipeline: loader batches → device-side multi-crop views.

Loader workers return raw waveform crops (:mod:`dino_speech.data.multicrop`); here, on the
training device and batched, every crop gets its own augmentation draw
(:class:`~dino_speech.data.augment.WaveAugment`), then fbank; the student's copies of the crops
get SpecAugment. The teacher and the student see the same augmented global waveforms.
Margin fine-tuning uses the same source with one global crop and no local crop, training on
the student's (SpecAugmented) copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import partial
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from dino_speech.config import DataConfig
from dino_speech.errors import ConfigError
from dino_speech.train.distributed import DistContext

if TYPE_CHECKING:
    from lhotse import CutSet

__all__ = ["DinoBatchSource", "DinoViews"]

Crop = tuple[torch.Tensor, torch.Tensor | None]


@dataclass
class DinoViews:
    """One step's inputs: the teacher's crop group and the student's groups.

    ``teacher``: global crops ``(G·B, T_g, F)``; ``student``: the global crops (SpecAugmented
    copies) and, when there are local crops, ``(L·B, T_l, F)``. Crops are crop-major: row
    ``i·B + b`` is crop ``i`` of utterance ``b``.
    """

    teacher: Crop
    student: list[Crop]
    num_global: int
    batch_size: int


class DinoBatchSource:
    """Builds the loader, sampler, augmentation and fbank from a :class:`DataConfig`.

    Args:
        cfg: crops, batch size, workers, augmentation, features; the cuts are
            ``cfg.train_cuts`` (or the shards of ``cfg.train_shar``) unless ``cuts`` is given.
        seed: shuffling, crop positions and the augmentation banks derive from it.
        ctx: this process's rank, world size and device.
        gen: a CPU generator (the same draws on any device) that drives the augmentation;
            the trainer saves and restores its state.
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
        from dino_speech.data.augment import SpecAugment, WaveAugment
        from dino_speech.data.features import build_fbank
        from dino_speech.data.sampling import make_dino_loader
        from dino_speech.data.shar_loader import make_shar_loader, train_source

        make_loader: Any = partial(make_dino_loader, cuts=cuts)
        if cuts is None and train_source(cfg) == "shar":
            make_loader = make_shar_loader
        self.cfg = cfg
        self.ctx = ctx
        self.gen = gen
        self.loader, self.sampler = make_loader(
            cfg, seed=seed, rank=ctx.rank, world_size=ctx.world_size
        )
        self.wave_augment = WaveAugment(
            cfg.augment,
            cfg.features.sample_rate,
            noise_cuts=cfg.musan_cuts,
            rir_cuts=cfg.rir_cuts,
            seed=seed + ctx.rank,
        )
        self.spec_augment = SpecAugment(cfg.augment) if cfg.augment.specaug_prob > 0 else None
        self.fbank = build_fbank(cfg.features).to(ctx.device)

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

    @torch.no_grad()
    def prepare(self, batch: dict[str, Any], device: torch.device) -> DinoViews:
        """Augment, fbank and SpecAugment one loader batch on ``device``."""
        global_waves = batch["global"].to(device, non_blocking=True)  # (G, B, S_g)
        num_global, batch_size, _ = global_waves.shape
        teacher = self._features(global_waves, batch.get("global_lengths"), device)
        student = [self._spec(teacher)]
        local = batch.get("local")
        if local is not None and local.shape[0] > 0:
            local_waves = local.to(device, non_blocking=True)
            student.append(
                self._spec(self._features(local_waves, batch.get("local_lengths"), device))
            )
        return DinoViews(
            teacher=teacher,
            student=student,
            num_global=num_global,
            batch_size=batch_size,
        )

    def _features(
        self, waves: torch.Tensor, lengths: torch.Tensor | None, device: torch.device
    ) -> Crop:
        """``(N, B, S)`` crops (+ ``(N, B)`` lengths) → fbank ``(N·B, T, F)`` + frame lengths."""
        flat = waves.reshape(-1, waves.shape[-1])
        flat_lengths = None
        # Crops are normally full length (short utterances are tiled): then no masks at all.
        if lengths is not None and bool((lengths.reshape(-1) < flat.shape[-1]).any()):
            flat_lengths = lengths.reshape(-1).to(device)
        flat = self.wave_augment(flat, self.gen)
        feats, frames = self.fbank(flat, flat_lengths)
        return feats, (None if flat_lengths is None else frames)

    def _spec(self, crop: Crop) -> Crop:
        if self.spec_augment is None:
            return crop
        feats, lengths = crop
        return self.spec_augment(feats, self.gen, lengths), lengths
