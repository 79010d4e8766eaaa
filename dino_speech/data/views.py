"""Multi-crop waveforms → the views a training step takes: augmentation, fbank, SpecAugment.

:class:`ViewMaker` is the one implementation, batched, used in two places (``data.augment_on``):

* ``device`` — in the training process, on the training device (the GPU default): the loader
  workers only read and crop, and :class:`~dino_speech.train.crop_batches.CropBatchSource` makes the
  views of each batch on arrival, its draws from the trainer's generator.
* ``workers`` — in the loader workers (the CPU default when there are workers): on a CPU the
  training process computing features would leave the cores of idle workers unused, so each
  worker makes the views of its whole batch (:class:`WorkerViewsDataset`) and the batch
  arrives as features. Each batch's draws come from a generator seeded by ``(seed, rank,
  epoch, step)`` and the noise banks' refresh index from the step, so the features depend
  neither on which worker made them nor on how many workers there are, and a resumed run
  makes exactly the features the uninterrupted run made, with no worker state to restore.
  Every worker builds its own noise/RIR banks (a bank's content is a function of the seed
  and refresh index only, so they are the same banks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch.utils.data import Dataset

from dino_speech.config import DataConfig
from dino_speech.data.noise_bank import stable_seed
from dino_speech.errors import ConfigError

if TYPE_CHECKING:
    from lhotse import CutSet

    from dino_speech.data.multicrop import MultiCropDataset

__all__ = ["Crop", "CropViews", "ViewMaker", "WorkerViewsDataset", "resolve_augment_on"]

# One group of same-length crops: features (N, T, F) and their lengths (N,) or None;
# also what the DINO model takes (dino_speech.ssl.dino.MultiCropModel).
Crop = tuple[torch.Tensor, torch.Tensor | None]


@dataclass
class CropViews:
    """One step's inputs: the teacher's crop group and the student's groups.

    ``teacher``: global crops ``(G·B, T_g, F)``; ``student``: the global crops (SpecAugmented
    copies) and, when there are local crops, ``(L·B, T_l, F)``. Crops are crop-major: row
    ``i·B + b`` is crop ``i`` of utterance ``b``.
    """

    teacher: Crop
    student: list[Crop]
    num_global: int
    batch_size: int

    def to(self, device: torch.device) -> CropViews:
        def move(crop: Crop) -> Crop:
            feats, lengths = crop
            return (
                feats.to(device, non_blocking=True),
                None if lengths is None else lengths.to(device, non_blocking=True),
            )

        return CropViews(
            teacher=move(self.teacher),
            student=[move(c) for c in self.student],
            num_global=self.num_global,
            batch_size=self.batch_size,
        )


def resolve_augment_on(
    mode: str, device: torch.device, num_workers: int
) -> Literal["device", "workers"]:
    """``data.augment_on``: ``auto`` is ``workers`` when training on a CPU with loader workers,
    ``device`` otherwise."""
    if mode == "auto":
        return "workers" if device.type == "cpu" and num_workers > 0 else "device"
    if mode not in ("device", "workers"):
        raise ConfigError(f"data.augment_on must be auto, device or workers, got {mode!r}")
    return mode  # type: ignore[return-value]


class ViewMaker:
    """Augment, fbank and SpecAugment the crops of one loader batch (see the module doc).

    Args:
        cfg: augmentation, noise/RIR manifests and features.
        seed: seeds the noise banks' content (pass ``seed + rank`` under DDP).
        device: where the banks and the fbank live and the work is done.
    """

    def __init__(self, cfg: DataConfig, *, seed: int, device: torch.device) -> None:
        from dino_speech.data.augment import SpecAugment, WaveAugment
        from dino_speech.data.features import build_fbank

        self.wave_augment = WaveAugment(
            cfg.augment,
            cfg.features.sample_rate,
            noise_cuts=cfg.musan_cuts,
            rir_cuts=cfg.rir_cuts,
            seed=seed,
        )
        self.spec_augment = SpecAugment(cfg.augment) if cfg.augment.specaug_prob > 0 else None
        self.fbank = build_fbank(cfg.features).to(device)
        self.device = device

    @torch.no_grad()
    def __call__(
        self, batch: dict[str, Any], gen: torch.Generator, *, call: int | None = None
    ) -> CropViews:
        """The views of one batch of crops; ``call``: the noise banks' call index of its first
        crop group (default: the running count)."""
        global_waves = batch["global"].to(self.device, non_blocking=True)  # (G, B, S_g)
        num_global, batch_size, _ = global_waves.shape
        teacher = self._features(global_waves, batch.get("global_lengths"), gen, call)
        student = [self._spec(teacher, gen)]
        local = batch.get("local")
        if local is not None and local.shape[0] > 0:
            local_waves = local.to(self.device, non_blocking=True)
            lengths = batch.get("local_lengths")
            crops = self._features(local_waves, lengths, gen, None if call is None else call + 1)
            student.append(self._spec(crops, gen))
        return CropViews(
            teacher=teacher, student=student, num_global=num_global, batch_size=batch_size
        )

    def _features(
        self,
        waves: torch.Tensor,
        lengths: torch.Tensor | None,
        gen: torch.Generator,
        call: int | None,
    ) -> Crop:
        """``(N, B, S)`` crops (+ ``(N, B)`` lengths) → fbank ``(N·B, T, F)`` + frame lengths."""
        flat = waves.reshape(-1, waves.shape[-1])
        flat_lengths = None
        # Crops are normally full length (short utterances are tiled): then no masks at all.
        if lengths is not None and bool((lengths.reshape(-1) < flat.shape[-1]).any()):
            flat_lengths = lengths.reshape(-1).to(self.device)
        flat = self.wave_augment(flat, gen, call=call)
        feats, frames = self.fbank(flat, flat_lengths)
        return feats, (None if flat_lengths is None else frames)

    def _spec(self, crop: Crop, gen: torch.Generator) -> Crop:
        if self.spec_augment is None:
            return crop
        feats, lengths = crop
        return self.spec_augment(feats, gen, lengths), lengths


class WorkerViewsDataset(Dataset):
    """``data.augment_on: workers``: reads and crops a batch of cuts (``crops``) and makes its
    views in the worker. Indexed with ``(epoch, step, cuts)`` (a
    :class:`~dino_speech.data.sampling.CropSampler` with ``indexed=True``); returns the crop
    batch's bookkeeping (``cut_ids``, ``num_skipped``, ``skipped``) and ``views``
    (:class:`CropViews` on the CPU).

    Args:
        crops: the multi-crop reader of the cuts.
        cfg: augmentation, noise/RIR manifests and features.
        seed, rank: with the epoch and step, seed each batch's draws.
        steps_per_epoch: batches per epoch on this rank (the noise banks' call index counts
            steps over epochs).
    """

    def __init__(
        self,
        crops: MultiCropDataset,
        cfg: DataConfig,
        *,
        seed: int,
        rank: int,
        steps_per_epoch: int,
    ) -> None:
        self.crops = crops
        self.cfg = cfg
        self.seed = seed
        self.rank = rank
        self.steps_per_epoch = steps_per_epoch
        self.groups = 2 if cfg.crops.num_local > 0 else 1
        self._maker: ViewMaker | None = None  # built in the worker, not pickled to it

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maker": None}

    def __getitem__(self, item: tuple[int, int, CutSet]) -> dict[str, Any]:
        epoch, step, cuts = item
        self.crops.set_epoch(epoch)
        batch = self.crops[cuts]
        if self._maker is None:
            self._maker = ViewMaker(
                self.cfg, seed=self.seed + self.rank, device=torch.device("cpu")
            )
        gen = torch.Generator().manual_seed(stable_seed(self.seed, self.rank, "views", epoch, step))
        call = (epoch * self.steps_per_epoch + step) * self.groups
        views = self._maker(batch, gen, call=call)
        return {
            "views": views,
            "cut_ids": batch["cut_ids"],
            "num_skipped": batch["num_skipped"],
            "skipped": batch["skipped"],
        }
