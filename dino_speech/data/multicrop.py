"""The DINO multi-crop dataset: a batch of cuts → global and local waveform crops.

:class:`MultiCropDataset` is a Lhotse-style map dataset: it is indexed with the ``CutSet`` a
sampler yields and returns one batch. Loader workers only read each cut (through
:func:`dino_speech.audio.read_cut`, resampling to the training rate) and cut ``num_global``
crops of ``global_seconds`` and ``num_local`` of ``local_seconds`` at random positions, each
independently (or, with ``crops.spread``, each crop of a group in its own stratum of the
utterance: :func:`spread_crops`). An utterance shorter than a crop is tiled (repeated end to
end) from a random phase, not dropped. Augmentation and features happen later, batched, on
the training device.

Crop positions are drawn from a generator seeded by ``(seed, epoch, cut id)``, so they do not
depend on which worker reads the cut or on the order of batches: a resumed run crops exactly
as the original one did. :meth:`MultiCropDataset.set_epoch` changes them every epoch (the
sampler returned by :func:`dino_speech.data.sampling.make_crop_loader` calls it).

A cut whose audio is missing, unreadable, empty or not finite is left out of the batch and
reported in ``batch["skipped"]`` (the loader logs each such cut once) and counted in
``batch["num_skipped"]``; the epoch goes on. When every cut of a batch is bad, the batch is
empty: ``batch["cut_ids"] == []`` and the crop tensors have ``B = 0``; the trainer skips its
step (under DDP it must still take part in the collective calls, e.g. with a zero loss).

Batch layout (``B`` good cuts, ``Sg``/``Sl`` samples per global/local crop)::

    {"global": (num_global, B, Sg) float32, "local": (num_local, B, Sl) float32,
     "global_lengths": (num_global, B) int64, "local_lengths": (num_local, B) int64,
     "cut_ids": list[str] (B), "num_skipped": int, "skipped": list[tuple[str, str]]}

Every crop is full length (tiling), so the lengths equal ``Sg`` and ``Sl``; they are there so
that the consumer does not have to assume it.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from dino_speech.audio import AudioError, read_cut
from dino_speech.config import CropConfig
from dino_speech.data.noise_bank import stable_seed
from dino_speech.errors import ConfigError

if TYPE_CHECKING:
    from lhotse import CutSet
    from lhotse.cut import Cut

__all__ = ["MultiCropDataset", "crop_samples", "random_crop", "spread_crops", "trim_silence"]

log = logging.getLogger(__name__)


def crop_samples(seconds: float, sample_rate: int) -> int:
    """Samples in a crop of ``seconds``."""
    return int(round(seconds * sample_rate))


def random_crop(wave: torch.Tensor, samples: int, rng: random.Random) -> torch.Tensor:
    """A ``(samples,)`` crop of ``(T,)`` ``wave`` at a random position; tiled if ``T < samples``."""
    length = wave.shape[0]
    if length >= samples:
        start = rng.randrange(length - samples + 1)
        return wave[start : start + samples]
    start = rng.randrange(length)
    reps = -(-(start + samples) // length)
    return wave.repeat(reps)[start : start + samples]


def spread_crops(
    wave: torch.Tensor, samples: int, n: int, rng: random.Random
) -> list[torch.Tensor]:
    """``n`` crops of ``samples`` from ``(T,)`` ``wave``, spread over it: the range of start
    positions is cut into ``n`` equal strata, each crop starts at a random point of its own
    (in a random order of strata). Two global crops of a short utterance then overlap far
    less than two independent draws (2 s crops of a 3.5 s utterance: about 55% instead of
    70%), so the positive pair shares less of the words and more has to come from the voice.
    Tiled like :func:`random_crop` when ``T < samples``."""
    length = wave.shape[0]
    if length < samples or n < 2:
        return [random_crop(wave, samples, rng) for _ in range(n)]
    span = length - samples + 1
    strata = list(range(n))
    rng.shuffle(strata)
    starts = [min(span - 1, int((k + rng.random()) * span / n)) for k in strata]
    return [wave[start : start + samples] for start in starts]


def trim_silence(wave: torch.Tensor, sample_rate: int, below_peak_db: float) -> torch.Tensor:
    """``(T,)`` ``wave`` from its first to its last 20 ms frame whose energy is within
    ``below_peak_db`` dB of the loudest frame's (interior pauses are kept); the whole wave when
    it is shorter than two frames or silent."""
    frame = max(1, sample_rate // 50)
    n = wave.shape[0] // frame
    if n < 2:
        return wave
    energy = wave[: n * frame].reshape(n, frame).double().square().mean(dim=1)
    peak = float(energy.max())
    if peak <= 0.0:
        return wave
    loud = torch.nonzero(energy >= peak * 10.0 ** (-below_peak_db / 10.0)).flatten()
    first, last = int(loud[0]), int(loud[-1])
    return wave[first * frame : (last + 1) * frame]


class MultiCropDataset(Dataset):
    """Map a sampled ``CutSet`` to a batch of multi-crop waveforms (layout in the module doc).

    Args:
        crops: number and length of global and local crops.
        sample_rate: the training rate; audio at other rates is resampled on read.
        seed: with the epoch and the cut id, seeds the crop positions.
    """

    def __init__(self, crops: CropConfig, sample_rate: int = 16000, *, seed: int = 0) -> None:
        for name in ("num_global", "num_local"):
            if getattr(crops, name) < 0:
                raise ConfigError(f"crops.{name} must be >= 0, got {getattr(crops, name)}")
        if crops.num_global < 1:
            raise ConfigError("crops.num_global must be at least 1 (the teacher's input)")
        for name in ("global_seconds", "local_seconds"):
            if getattr(crops, name) <= 0:
                raise ConfigError(f"crops.{name} must be positive, got {getattr(crops, name)}")
        if crops.trim_db < 0:
            raise ConfigError(f"crops.trim_db must be >= 0 (0: off), got {crops.trim_db}")
        self.crops = crops
        self.sample_rate = sample_rate
        self.seed = seed
        self.epoch = 0
        self.global_samples = crop_samples(crops.global_seconds, sample_rate)
        self.local_samples = crop_samples(crops.local_seconds, sample_rate)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def crop_cut(self, cut: Cut, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num_global, Sg)`` and ``(num_local, Sl)`` crops of one cut's ``(T,)`` waveform."""
        rng = random.Random(stable_seed(self.seed, self.epoch, cut.id))
        c = self.crops
        if c.trim_db > 0:
            wave = trim_silence(wave, self.sample_rate, c.trim_db)
        if c.spread:
            glob = spread_crops(wave, self.global_samples, c.num_global, rng)
            loc = spread_crops(wave, self.local_samples, c.num_local, rng)
        else:
            glob = [random_crop(wave, self.global_samples, rng) for _ in range(c.num_global)]
            loc = [random_crop(wave, self.local_samples, rng) for _ in range(c.num_local)]
        return _stack(glob, self.global_samples), _stack(loc, self.local_samples)

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        globals_, locals_, ids = [], [], []
        skipped: list[tuple[str, str]] = []
        for cut in cuts:
            try:
                wave = read_cut(cut, self.sample_rate)
            except AudioError as exc:
                log.debug("skipping cut %s: %s", cut.id, exc)
                skipped.append((cut.id, str(exc)))
                continue
            g, loc = self.crop_cut(cut, wave)
            globals_.append(g)
            locals_.append(loc)
            ids.append(cut.id)
        c = self.crops
        glob = _stack_batch(globals_, c.num_global, self.global_samples)
        loc = _stack_batch(locals_, c.num_local, self.local_samples)
        return {
            "global": glob,
            "local": loc,
            "global_lengths": torch.full(glob.shape[:2], self.global_samples, dtype=torch.long),
            "local_lengths": torch.full(loc.shape[:2], self.local_samples, dtype=torch.long),
            "cut_ids": ids,
            "num_skipped": len(skipped),
            "skipped": skipped,
        }


def _stack(crops: list[torch.Tensor], samples: int) -> torch.Tensor:
    return torch.stack(crops) if crops else torch.zeros(0, samples)


def _stack_batch(per_cut: list[torch.Tensor], num: int, samples: int) -> torch.Tensor:
    """``B`` tensors ``(num, S)`` → ``(num, B, S)``."""
    if not per_cut:
        return torch.zeros(num, 0, samples)
    return torch.stack(per_cut, dim=1)
