"""Noise and RIR banks on the training device, refreshed a few slots at a time.

Augmenting every crop on the device needs its noise there too. Reading a noise file per crop
(the usual per-sample way) costs one to seven file reads per crop; instead :class:`NoiseBank`
keeps, per MUSAN category (``noise``, ``music``, ``speech``), a ``(bank_size, bank_seconds *
sample_rate)`` tensor of noise segments on the device, and a ``(bank_size, rir_max_seconds *
sample_rate)`` tensor of room impulse responses. A crop takes a random window of a random slot,
so a bank of 128 six-second segments gives a fresh-looking noise for every crop.

Every ``bank_refresh_every`` calls the bank replaces ``bank_refresh_size`` slots per category
(in a rolling order) with new random segments of random files, read in the training process
(only that many short reads, so the cost is spread thin) or generated when no manifest is
given (:mod:`dino_speech.data.synthetic_noise`). A slot's content is a pure function of
``(seed, category, refresh index, slot)``, so the bank after ``n`` calls is the same in a fresh
process: resuming rebuilds it exactly from the call count alone.

MUSAN categories come from ``cut.custom["category"]`` (written by ``dino-speech prepare
musan``); for other manifests they are inferred from the recording id or path (lhotse's MUSAN
ids start with ``noise-``, ``music-`` or ``speech-``). A noise or RIR file that cannot be read
is logged once and another file is drawn for the slot.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dino_speech.audio import AudioError, read_cut
from dino_speech.config import AugmentConfig
from dino_speech.data import synthetic_noise
from dino_speech.errors import DataError

if TYPE_CHECKING:
    from lhotse.cut import Cut

__all__ = ["CATEGORIES", "NoiseBank", "SlotBank", "musan_category", "prepare_rir", "stable_seed"]

log = logging.getLogger(__name__)

CATEGORIES = ("noise", "music", "speech")
_MAX_READ_TRIES = 10


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` that is the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def musan_category(cut: Cut) -> str | None:
    """``noise``, ``music`` or ``speech`` for a MUSAN cut, or None if it cannot be told."""
    custom = getattr(cut, "custom", None) or {}
    if custom.get("category") in CATEGORIES:
        return str(custom["category"])
    recording_id = str(getattr(cut, "recording_id", "") or getattr(cut, "id", ""))
    head = recording_id.split("-", 1)[0].split("_", 1)[0]
    if head in CATEGORIES:
        return head
    recording = getattr(cut, "recording", None)
    if recording is not None and recording.sources:
        parts = Path(recording.sources[0].source).parts
        found = [c for c in CATEGORIES if c in parts]
        if len(found) == 1:
            return found[0]
    return None


def prepare_rir(rir: torch.Tensor, max_samples: int) -> torch.Tensor | None:
    """Align a ``(L,)`` RIR on its direct path (the peak), cut it to ``max_samples``, unit energy.

    Returns None for a RIR without energy. Convolving with the result does not shift the crop.
    """
    rir = rir[int(rir.abs().argmax()) :][:max_samples].float()
    energy = rir.square().sum()
    if not torch.isfinite(energy) or energy <= 0:
        return None
    return rir / energy.sqrt()


class SlotBank:
    """``(num_slots, length)`` rows on a device; row ``j`` at refresh ``r`` is ``fill(j, v)``.

    ``v`` is the last refresh index that rewrote slot ``j`` (0 for the initial fill); refresh
    ``r >= 1`` rewrites slots ``(r - 1) * per_refresh + i`` (mod ``num_slots``) for
    ``i < per_refresh``.
    """

    def __init__(
        self,
        num_slots: int,
        length: int,
        fill: Callable[[int, int], torch.Tensor],
        per_refresh: int,
    ) -> None:
        self.num_slots = num_slots
        self.length = length
        self.fill = fill
        self.per_refresh = max(1, min(per_refresh, num_slots))
        self.version: int | None = None
        self.rows: torch.Tensor | None = None

    def _slot_versions(self, version: int) -> list[int]:
        versions = [0] * self.num_slots
        cycle = -(-self.num_slots // self.per_refresh)  # refreshes that rewrite every slot
        for r in range(max(1, version - cycle), version + 1):
            for i in range(self.per_refresh):
                versions[((r - 1) * self.per_refresh + i) % self.num_slots] = r
        return versions

    def sync(self, version: int, device: torch.device) -> torch.Tensor:
        """The rows at refresh index ``version`` on ``device`` (refilling only what changed)."""
        old = self.version
        if self.rows is None or old is None or version < old or version - old > 1:
            slots = list(range(self.num_slots))
            self.rows = self._filled(slots, self._slot_versions(version)).to(device)
        elif version == old + 1:
            slots = [
                ((version - 1) * self.per_refresh + i) % self.num_slots
                for i in range(self.per_refresh)
            ]
            fresh = self._filled(slots, [version] * len(slots)).to(self.rows.device)
            self.rows[torch.tensor(slots, device=self.rows.device)] = fresh
        self.version = version
        if self.rows.device != device:
            self.rows = self.rows.to(device)
        return self.rows

    def _filled(self, slots: list[int], versions: list[int]) -> torch.Tensor:
        """``(len(slots), length)``: ``fill(slot, version)`` of each, cut or zero-padded."""
        out = torch.zeros(len(slots), self.length)
        for i, (slot, version) in enumerate(zip(slots, versions, strict=True)):
            row = self.fill(slot, version)[: self.length]
            out[i, : row.numel()] = row
        return out


def _tile(wave: torch.Tensor, length: int) -> torch.Tensor:
    reps = -(-length // max(1, wave.numel()))
    return wave.repeat(reps)[:length]


class NoiseBank:
    """Per-category noise segments and RIRs for :class:`~dino_speech.data.augment.WaveAugment`.

    Args:
        cfg: bank sizes, segment length, refresh period, RIR length, synthetic RT60 range.
        sample_rate: the rate of the training audio.
        noise_cuts: MUSAN cuts (any iterable of cuts), or None to generate noise.
        rir_cuts: RIR cuts, or None to generate RIRs.
        seed: seeds the slots' content (use a different seed per DDP rank).
    """

    def __init__(
        self,
        cfg: AugmentConfig,
        sample_rate: int,
        noise_cuts: Iterable[Cut] | None = None,
        rir_cuts: Iterable[Cut] | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.seed = seed
        self._warned: set[str] = set()
        seg_len = max(1, int(round(cfg.bank_seconds * sample_rate)))
        rir_len = max(1, int(round(cfg.rir_max_seconds * sample_rate)))
        self.synthetic_noise = noise_cuts is None
        self.synthetic_rirs = rir_cuts is None
        self.noise: dict[str, SlotBank] = {}
        if noise_cuts is None:
            size = cfg.synthetic_bank_size
            for category in CATEGORIES:
                fill = self._synthetic_filler(category, seg_len)
                self.noise[category] = SlotBank(size, seg_len, fill, cfg.bank_refresh_size)
        else:
            by_category = self._split_musan(noise_cuts)
            for category, cuts in by_category.items():
                fill = self._cut_filler(category, cuts, seg_len, segment=True)
                self.noise[category] = SlotBank(cfg.bank_size, seg_len, fill, cfg.bank_refresh_size)
        if rir_cuts is None:
            size = cfg.synthetic_bank_size
            fill = self._synthetic_filler("rir", rir_len)
        else:
            cuts = list(rir_cuts)
            if not cuts:
                raise DataError("the RIR manifest holds no cuts")
            size = cfg.bank_size
            fill = self._cut_filler("rir", cuts, rir_len, segment=False)
        self.rirs = SlotBank(size, rir_len, fill, cfg.bank_refresh_size)

    @property
    def categories(self) -> list[str]:
        """The noise categories present, in :data:`CATEGORIES` order."""
        return [c for c in CATEGORIES if c in self.noise]

    def noise_rows(self, category: str, version: int, device: torch.device) -> torch.Tensor:
        """``(K, L)`` segments of ``category`` at refresh index ``version`` on ``device``."""
        return self.noise[category].sync(version, device)

    def rir_rows(self, version: int, device: torch.device) -> torch.Tensor:
        """``(R, Lr)`` unit-energy RIRs with the direct path at index 0, on ``device``."""
        return self.rirs.sync(version, device)

    @staticmethod
    def _split_musan(cuts: Iterable[Cut]) -> dict[str, list[Cut]]:
        by_category: dict[str, list[Cut]] = {}
        unknown = []
        for cut in cuts:
            category = musan_category(cut)
            if category is None:
                unknown.append(cut.id)
            else:
                by_category.setdefault(category, []).append(cut)
        if unknown:
            raise DataError(
                f"{len(unknown)} noise cuts have no MUSAN category (custom['category'] should be "
                f"one of {', '.join(CATEGORIES)}), e.g. '{unknown[0]}'; "
                "prepare MUSAN with `dino-speech prepare musan`"
            )
        if not by_category:
            raise DataError("the MUSAN manifest holds no cuts")
        return by_category

    def _synthetic_filler(self, kind: str, length: int) -> Callable[[int, int], torch.Tensor]:
        sr = self.sample_rate

        def fill(slot: int, version: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(
                stable_seed(self.seed, "synthetic", kind, version, slot)
            )
            if kind == "rir":
                cfg = self.cfg
                return synthetic_noise.synthetic_rirs(
                    1, sr, cfg.synthetic_rt60, cfg.rir_max_seconds, g
                )[0]
            make = {
                "noise": synthetic_noise.coloured_noise,
                "music": synthetic_noise.music_like,
                "speech": synthetic_noise.speech_like,
            }[kind]
            return make(1, length, sr, g)[0]

        return fill

    def _cut_filler(
        self, kind: str, cuts: list[Cut], length: int, *, segment: bool
    ) -> Callable[[int, int], torch.Tensor]:
        seconds = length / self.sample_rate

        def fill(slot: int, version: int) -> torch.Tensor:
            rng = random.Random(stable_seed(self.seed, kind, version, slot))
            for _ in range(_MAX_READ_TRIES):
                cut = cuts[rng.randrange(len(cuts))]
                try:
                    if segment:
                        offset = rng.uniform(0.0, max(0.0, cut.duration - seconds))
                        piece = cut.truncate(offset=offset, duration=min(seconds, cut.duration))
                        return _tile(read_cut(piece, self.sample_rate), length)
                    rir = prepare_rir(read_cut(cut, self.sample_rate), length)
                    if rir is not None:
                        return rir
                    self._warn(cut.id, f"{kind} cut '{cut.id}' has no energy; not used")
                except AudioError as exc:
                    self._warn(cut.id, f"{kind} cut '{cut.id}' skipped: {exc}")
            log.warning(
                "no readable %s audio after %d tries; slot %d is %s",
                kind,
                _MAX_READ_TRIES,
                slot,
                "silence" if segment else "a unit impulse (no reverb)",
            )
            empty = torch.zeros(length)
            if not segment:
                empty[0] = 1.0
            return empty

        return fill

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)
