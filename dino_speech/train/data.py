"""The trainer's side of the data pipeline: loader batches → device-side multi-crop views.

Loader workers return raw waveform crops (:mod:`dino_speech.data.multicrop`); here, on the
training device and batched, every crop gets its own augmentation draw
(:class:`~dino_speech.data.augment.WaveAugment`), then fbank; the student's copies of the crops
get SpecAugment. The teacher and the student see the same augmented global waveforms.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from dino_speech.config import DataConfig
from dino_speech.errors import ConfigError
from dino_speech.train.distributed import DistContext

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
    num_skipped: int


class DinoBatchSource:
    """Builds the loader, sampler, augmentation and fbank from a :class:`DataConfig`.

    ``gen`` (a CPU generator, so that draws are the same on any device) drives the
    augmentation; the trainer saves and restores its state.
    """

    def __init__(
        self, cfg: DataConfig, *, seed: int, ctx: DistContext, gen: torch.Generator
    ) -> None:
        from dino_speech.data.augment import SpecAugment, WaveAugment
        from dino_speech.data.features import Fbank
        from dino_speech.data.sampling import make_dino_loader

        if not cfg.train_cuts:
            raise ConfigError("data.train_cuts is empty: set it to a cuts manifest (jsonl.gz)")
        if cfg.crops.num_global + cfg.crops.num_local < 2:
            raise ConfigError("DINO needs at least two crops per utterance")
        self.cfg = cfg
        self.ctx = ctx
        self.gen = gen
        self.loader, self.sampler = make_dino_loader(
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
        self.fbank = Fbank(cfg.features).to(ctx.device)

    def steps_per_epoch(self, cap: int | None) -> int:
        """Batches per epoch (the same on every process), at most ``cap``."""
        steps = len(self.sampler)
        if cap is not None:
            if cap < 1:
                raise ConfigError(f"train.steps_per_epoch must be >= 1, got {cap}")
            steps = min(steps, cap)
        return steps

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def batches(self) -> Iterator[dict[str, Any]]:
        return iter(self.loader)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's position and the augmentation's call count."""
        return {"sampler": self.sampler.state_dict(), "augment": self.wave_augment.state_dict()}

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
            num_skipped=int(batch.get("num_skipped", 0)),
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
