"""Waveform and spectrogram augmentation, batched on the training device.

:class:`WaveAugment` takes a batch of crops ``(N, S)`` on any device and gives every crop its own
independent draw of, in this order:

1. **reverberation** (``reverb_prob``): FFT convolution with a room impulse response whose
   direct path is at index 0 (so the crop is not shifted), keeping the crop's power;
2. **additive noise** (``noise_prob``): one MUSAN category drawn uniformly from those present,
   mixed at an SNR drawn uniformly from that category's range: ``noise`` (``noise_snr``, default
   0-18 dB), ``music`` (``music_snr``, 3-18 dB) or ``babble``: 3-7 (``babble_speakers``) speech
   segments, each at unit power, summed and mixed at ``babble_snr`` (13-20 dB);
3. **gain** (``gain_prob``): a factor of ``gain_db`` decibels.

How the noise reaches the device: reading noise files per crop (the usual way) costs one to
seven reads per crop in the loader workers. Instead the noise and RIRs come from a
:class:`~dino_speech.data.noise_bank.NoiseBank` held on the same device as the crops: per MUSAN
category a ``(bank_size, bank_seconds)`` tensor of segments of random files, and a tensor of
aligned, unit-energy RIRs, from the MUSAN / RIR manifests or generated when none are given. A
crop takes a random window of a random slot (babble: 3-7 of them), so mixing is one gather.
Every ``bank_refresh_every`` calls, ``bank_refresh_size`` slots per category are re-read from
new random files (a few short reads in the training process); the RIR spectra for each crop
length are computed once per refresh.

Every random number is drawn from the ``generator`` passed in (a CPU ``torch.Generator`` is
best: the draws are then identical on CPU and GPU) in one ``(N, C)`` matrix, so crop ``i``'s
augmentation depends only on the generator state and ``i``, and the bank content only on the
number of calls: the same seed gives the same output, and :meth:`WaveAugment.state_dict` (the
call count) with the generator state is all a resumed run needs.

:class:`SpecAugment` masks time and frequency stripes of features; the trainer applies it to the
student's crops only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dino_speech.config import AugmentConfig
from dino_speech.data.noise_bank import NoiseBank
from dino_speech.errors import ConfigError

if TYPE_CHECKING:
    from lhotse.cut import Cut

__all__ = [
    "SpecAugment",
    "WaveDraws",
    "WaveAugment",
    "add_noise_at_snr",
    "convolve_spectra",
    "fft_size",
    "noise_scale",
    "reverberate",
    "windows",
]

_EPS = 1e-10
_CPU_CHUNK_SAMPLES = 1 << 20  # samples per chunk of crops augmented together on a CPU


def fft_size(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n`` (fast for every FFT library)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def power(waves: torch.Tensor) -> torch.Tensor:
    """Mean square of each row: ``(N, S)`` → ``(N,)``."""
    return torch.linalg.vector_norm(waves, dim=-1).square() / waves.shape[-1]


def add_noise_at_snr(
    waves: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor
) -> torch.Tensor:
    """``waves + a * noise`` with ``a`` such that ``10 log10(P(waves) / P(a noise)) = snr_db``.

    Shapes: waves, noise ``(N, S)``; snr_db ``(N,)``. A silent noise row adds nothing.
    """
    return waves + noise_scale(power(waves), noise, snr_db)[:, None] * noise


def noise_scale(
    signal_power: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor
) -> torch.Tensor:
    """``(N,)`` factors for the ``(N, S)`` noise rows to sit ``snr_db`` below ``signal_power``
    (0 for a silent noise row)."""
    noise_power = power(noise)
    scale = torch.sqrt(signal_power / (noise_power.clamp(min=_EPS) * 10.0 ** (snr_db / 10.0)))
    return torch.where(noise_power > _EPS, scale, torch.zeros_like(scale))


def reverberate(waves: torch.Tensor, rirs: torch.Tensor) -> torch.Tensor:
    """Convolve each ``(N, S)`` row with its ``(N, L)`` RIR, keep the first ``S`` samples and
    rescale to the dry row's power. With the direct path at index 0 nothing is shifted; a unit
    impulse returns the input."""
    n = fft_size(waves.shape[-1] + rirs.shape[-1] - 1)
    return convolve_spectra(waves, torch.fft.rfft(rirs, n=n), n)


def convolve_spectra(waves: torch.Tensor, rir_spectra: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`reverberate` with the RIRs given as ``(N, n // 2 + 1)`` spectra of ``n`` points
    (``n >= S + L - 1``)."""
    samples = waves.shape[-1]
    wet = torch.fft.irfft(torch.fft.rfft(waves, n=n) * rir_spectra, n=n)[..., :samples]
    wet_power = power(wet)
    scale = torch.sqrt(power(waves) / wet_power.clamp(min=_EPS))
    return wet.mul_(torch.where(wet_power > _EPS, scale, torch.zeros_like(scale))[:, None])


def windows(
    rows: torch.Tensor, slot: torch.Tensor, where: torch.Tensor, samples: int
) -> torch.Tensor:
    """``samples``-long windows of ``rows[slot[i]]`` starting at fraction ``where[i]`` of the
    possible start positions (rows are tiled first if shorter than ``samples``).

    Shapes: rows ``(K, L)``; slot ``(M,)`` int; where ``(M,)`` in [0, 1); returns ``(M, samples)``.
    """
    length = rows.shape[1]
    if length < samples:
        rows = rows.repeat(1, -(-samples // length))
        length = rows.shape[1]
    start = _index(where, length - samples + 1)
    return rows.unfold(1, samples, 1)[slot, start]


@dataclass(frozen=True)
class WaveDraws:
    """The random draws of :class:`WaveAugment` for ``N`` crops, each uniform in [0, 1).

    One ``torch.rand`` of ``(N, 8 + 2 K)`` (``K``: the most babble talkers) makes them all,
    column by column in the order of the fields, so a generator state gives the same
    augmentation however the crops are later chunked. ``(N,)`` unless said.
    """

    reverb: torch.Tensor  # below reverb_prob: reverberate
    rir: torch.Tensor  # which RIR of the bank
    noise: torch.Tensor  # below noise_prob: add noise
    category: torch.Tensor  # which noise category (noise, music, speech)
    snr: torch.Tensor  # where in the category's SNR range
    talkers: torch.Tensor  # babble: how many talkers
    gain: torch.Tensor  # below gain_prob: change the gain
    gain_db: torch.Tensor  # where in the gain_db range
    slots: torch.Tensor  # (N, K): which noise rows, one per babble talker
    starts: torch.Tensor  # (N, K): where in each row the window starts

    @classmethod
    def draw(
        cls, num: int, talkers: int, generator: torch.Generator | None, device: torch.device
    ) -> WaveDraws:
        u = torch.rand(num, 8 + 2 * talkers, generator=generator, device=device)
        return cls(*u[:, :8].T, u[:, 8 : 8 + talkers], u[:, 8 + talkers :])

    def to(self, device: torch.device) -> WaveDraws:
        return WaveDraws(*(getattr(self, f.name).to(device) for f in fields(self)))

    def rows(self, index: slice) -> WaveDraws:
        return WaveDraws(*(getattr(self, f.name)[index] for f in fields(self)))


class WaveAugment:
    """Reverb, noise and gain for ``(N, S)`` crops on their device; one draw per crop.

    Args:
        cfg: probabilities, SNR ranges and bank settings.
        sample_rate: the rate of the crops.
        noise_cuts: MUSAN cuts (a CutSet / iterable of cuts, or a manifest path); None generates
            noise.
        rir_cuts: RIR cuts or a manifest path; None generates RIRs.
        seed: seeds the bank content (pass ``seed + rank`` under DDP).
    """

    def __init__(
        self,
        cfg: AugmentConfig,
        sample_rate: int,
        noise_cuts: Iterable[Cut] | str | Path | None = None,
        rir_cuts: Iterable[Cut] | str | Path | None = None,
        *,
        seed: int = 0,
    ) -> None:
        _validate(cfg)
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.bank = NoiseBank(cfg, sample_rate, _cuts(noise_cuts), _cuts(rir_cuts), seed=seed)
        self.calls = 0
        self._spectra: dict[tuple[int, int, str], torch.Tensor] = {}
        self.max_babble = max(1, int(cfg.babble_speakers[1]))

    @property
    def active(self) -> bool:
        """Whether any augmentation can happen at all."""
        c = self.cfg
        return c.noise_prob > 0 or c.reverb_prob > 0 or c.gain_prob > 0

    def _rir_spectra(
        self, version: int, samples: int, device: torch.device
    ) -> tuple[torch.Tensor, int]:
        """FFTs of the whole RIR bank for crops of ``samples``, cached per bank version."""
        rirs = self.bank.rir_rows(version, device)
        n = fft_size(samples + rirs.shape[1] - 1)
        key = (version, n, str(device))
        if key not in self._spectra:
            self._spectra = {k: v for k, v in self._spectra.items() if k[0] == version}
            self._spectra[key] = torch.fft.rfft(rirs, n=n)
        return self._spectra[key], n

    def state_dict(self) -> dict[str, int]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.calls = int(state["calls"])

    def __call__(
        self,
        waves: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        call: int | None = None,
    ) -> torch.Tensor:
        """Augment ``(N, S)`` waveforms; returns a new ``(N, S)`` tensor on the same device.

        ``call``: the index of this call, which sets the banks' refresh; by default the running
        count of calls (a caller that derives its draws per batch passes it)."""
        if waves.dim() != 2:
            raise ValueError(f"WaveAugment expects waves of shape (N, S), got {tuple(waves.shape)}")
        if call is None:
            call = self.calls
            self.calls += 1
        version = call // max(1, self.cfg.bank_refresh_every)
        num, samples = waves.shape
        if num == 0 or samples == 0 or not self.active:
            return waves.clone()
        kmax = self.max_babble
        device = waves.device
        draw_device = generator.device if generator is not None else device
        draws = WaveDraws.draw(num, kmax, generator, draw_device).to(device)
        # On a CPU, a few crops at a time keep the FFT buffers in cache (the draws are made
        # above for all crops, so the output does not depend on the chunking).
        rows = max(1, _CPU_CHUNK_SAMPLES // samples) if device.type == "cpu" else num
        if rows >= num:
            return self._apply(waves.float().clone(), draws, version).to(waves.dtype)
        out = torch.empty_like(waves)
        for first in range(0, num, rows):
            part = slice(first, first + rows)
            out[part] = self._apply(waves[part].float().clone(), draws.rows(part), version)
        return out

    def _apply(self, out: torch.Tensor, d: WaveDraws, version: int) -> torch.Tensor:
        """Augment the ``(N, S)`` float crops ``out`` in place with their draws ``d``."""
        cfg, kmax = self.cfg, self.max_babble
        num, samples = out.shape
        device = out.device
        chosen = (d.reverb < cfg.reverb_prob).nonzero().squeeze(1)
        if len(chosen):
            spectra, n = self._rir_spectra(version, samples, device)
            slot = _index(d.rir[chosen], spectra.shape[0])
            out[chosen] = convolve_spectra(out[chosen], spectra[slot], n)

        categories = self.bank.categories
        noisy = d.noise < cfg.noise_prob
        which = _index(d.category, len(categories))
        # Noise is added in place (index_add_), so the crops are not gathered and scattered back.
        signal_power = power(out) if bool(noisy.any()) else None
        for c, category in enumerate(categories):
            chosen = (noisy & (which == c)).nonzero().squeeze(1)
            if len(chosen) == 0:
                continue
            rows = self.bank.noise_rows(category, version, device)
            slots = _index(d.slots[chosen], rows.shape[0])
            starts = d.starts[chosen]
            if category == "speech":
                low, high = cfg.babble_speakers
                talkers = low + _index(d.talkers[chosen], high - low + 1)
                crop, talker = (torch.arange(kmax, device=device) < talkers[:, None]).nonzero().T
                segs = windows(rows, slots[crop, talker], starts[crop, talker], samples)
                # each talker at unit power, then summed per crop
                segs = segs / power(segs).clamp(min=_EPS).sqrt()[:, None]
                noise = segs.new_zeros(len(chosen), samples).index_add_(0, crop, segs)
                snr_range = cfg.babble_snr
            else:
                noise = windows(rows, slots[:, 0], starts[:, 0], samples)
                snr_range = cfg.noise_snr if category == "noise" else cfg.music_snr
            snr = snr_range[0] + (snr_range[1] - snr_range[0]) * d.snr[chosen]
            scale = noise_scale(signal_power[chosen], noise, snr)
            out.index_add_(0, chosen, noise.mul_(scale[:, None]))

        gained = d.gain < cfg.gain_prob
        if bool(gained.any()):
            low, high = cfg.gain_db
            gain = 10.0 ** ((low + (high - low) * d.gain_db) / 20.0)
            out.mul_(torch.where(gained, gain, torch.ones_like(gain))[:, None])
        return out


class SpecAugment:
    """Time and frequency masking of ``(N, T, F)`` features, each crop with ``specaug_prob``.

    A masked crop gets ``time_masks`` stripes of 0 to ``time_mask_max`` frames and
    ``freq_masks`` stripes of 0 to ``freq_mask_max`` bins, set to zero (the mean of
    mean-normalised features). Time masks stay inside ``lengths`` when given.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(
        self,
        feats: torch.Tensor,
        generator: torch.Generator | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Returns a new ``(N, T, F)`` tensor; ``lengths`` ``(N,)`` are valid frames."""
        cfg = self.cfg
        num, frames, bins = feats.shape
        if num == 0 or cfg.specaug_prob <= 0:
            return feats.clone()
        device = feats.device
        draw_device = generator.device if generator is not None else device
        masks = cfg.time_masks + cfg.freq_masks
        u = torch.rand(num, 1 + 2 * masks, generator=generator, device=draw_device).to(device)
        if lengths is None:
            lengths = torch.full((num,), frames, device=device)
        span_t = lengths.to(device).clamp(max=frames)[:, None]
        t_width = _index(u[:, 1 : 1 + cfg.time_masks], cfg.time_mask_max + 1)
        t_width = torch.minimum(t_width, span_t)
        t_start = _index(u[:, 1 + masks : 1 + masks + cfg.time_masks], span_t - t_width + 1)
        f_width = _index(u[:, 1 + cfg.time_masks : 1 + masks], cfg.freq_mask_max + 1).clamp(
            max=bins
        )
        f_start = _index(u[:, 1 + masks + cfg.time_masks :], bins - f_width + 1)
        t = torch.arange(frames, device=device)[None, None, :]
        f = torch.arange(bins, device=device)[None, None, :]
        in_time = ((t >= t_start[..., None]) & (t < (t_start + t_width)[..., None])).any(dim=1)
        in_freq = ((f >= f_start[..., None]) & (f < (f_start + f_width)[..., None])).any(dim=1)
        applied = (u[:, 0] < cfg.specaug_prob)[:, None]
        # two broadcast fills: no (N, T, F) mask is built
        out = feats.masked_fill((applied & in_time)[:, :, None], 0.0)
        return out.masked_fill_((applied & in_freq)[:, None, :], 0.0)


def _validate(cfg: AugmentConfig) -> None:
    """Raise ConfigError (naming the ``data.augment`` key) for values that make no sense."""
    for name in ("noise_prob", "reverb_prob", "gain_prob", "specaug_prob"):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ConfigError(f"augment.{name} must be in [0, 1], got {getattr(cfg, name)}")
    for name in ("noise_snr", "music_snr", "babble_snr", "gain_db", "synthetic_rt60"):
        low, high = getattr(cfg, name)
        if low > high:
            raise ConfigError(
                f"augment.{name} must be (low, high) with low <= high, got {low, high}"
            )
    low, high = cfg.babble_speakers
    if not 1 <= low <= high:
        raise ConfigError(
            f"augment.babble_speakers must be (low, high) with 1 <= low <= high, got {low, high}"
        )
    for name in ("bank_size", "synthetic_bank_size", "bank_refresh_every", "bank_refresh_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"augment.{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("bank_seconds", "rir_max_seconds"):
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"augment.{name} must be positive, got {getattr(cfg, name)}")
    if cfg.synthetic_rt60[0] <= 0:
        raise ConfigError(f"augment.synthetic_rt60 must be positive, got {cfg.synthetic_rt60}")


def _index(u: torch.Tensor, count: int | torch.Tensor) -> torch.Tensor:
    """Uniform integers in ``[0, count)`` from uniforms in ``[0, 1)`` (``count`` broadcasts)."""
    index = (u * count).long()
    return torch.minimum(index, torch.as_tensor(count, device=u.device) - 1).clamp(min=0)


def _cuts(source: Iterable[Cut] | str | Path | None) -> Iterable[Cut] | None:
    if source is None or (isinstance(source, str) and not source):
        return None
    if isinstance(source, (str, Path)):
        from dino_speech.data.manifests import load_cuts

        return load_cuts(source)
    return source
