"""Batched log-Mel filterbank features with mean normalisation, on any device.

:class:`Fbank` computes the same numbers as ``torchaudio.compliance.kaldi.fbank`` with Kaldi's
defaults (snip edges, DC removal, pre-emphasis 0.97, Povey window, FFT padded to a power of two,
power spectrum, triangular Mel filters on Kaldi's ``1127 ln(1 + f / 700)`` scale, natural log
floored at float32 epsilon, no dither, no energy term), but for a whole padded batch at once: the
frames of every waveform are one strided view, one real FFT and one matrix product. It then
subtracts a mean per :attr:`FbankConfig.mean_norm`:

* ``"utterance"``: the mean over the valid frames of each waveform;
* ``"sliding"``: the mean over a window of ``mean_norm_window`` frames centred on each frame,
  shifted inwards at the edges so that it keeps its full size when the waveform is long enough
  (Kaldi's ``apply-cmvn-sliding --center=true --norm-vars=false``; the paper's short-time mean
  normalisation over 150 frames);
* ``"none"``.

Frames past each waveform's length (padding) are zero in the output.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dino_speech.config import FbankConfig
from dino_speech.data.features_speechbrain import SpeechbrainFbank
from dino_speech.data.wave_batch import batch_lengths, length_mask
from dino_speech.errors import ConfigError

__all__ = [
    "Fbank",
    "build_fbank",
    "kaldi_mel_banks",
    "num_frames",
    "sliding_mean_norm",
    "utterance_mean_norm",
]

_PREEMPHASIS = 0.97
_CPU_CHUNK_FRAMES = 512
_CPU_MEL_BLOCK = 16  # filters per band; 16 suits the CPU matmul kernels best (measured)
_GPU_CHUNK_FRAMES = 1 << 17
_POVEY_POWER = 0.85


def num_frames(lengths: torch.Tensor, frame_length: int, frame_shift: int) -> torch.Tensor:
    """Frames of each waveform with Kaldi's ``snip_edges=True``: ``1 + (len - win) // shift``."""
    frames = torch.div(lengths - frame_length, frame_shift, rounding_mode="floor") + 1
    return frames.clamp(min=0)


def _mel(freq: torch.Tensor | float) -> torch.Tensor:
    return 1127.0 * torch.log1p(torch.as_tensor(freq, dtype=torch.float64) / 700.0)


def kaldi_mel_banks(
    num_bins: int, padded_window: int, sample_rate: float, low_freq: float, high_freq: float
) -> torch.Tensor:
    """Kaldi's triangular Mel filters as a ``(padded_window // 2 + 1, num_bins)`` matrix.

    Filter ``m`` rises linearly on the Mel scale from the edge ``m`` to its centre ``m + 1`` and
    falls to edge ``m + 2``, the ``num_bins + 2`` edges evenly spaced in Mel between
    ``low_freq`` and ``high_freq`` (``high_freq <= 0`` counts back from Nyquist). The Nyquist
    row is zero, as in Kaldi.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ConfigError(
            f"fbank needs 0 <= low_freq < high_freq <= {nyquist:g} Hz (Nyquist), "
            f"got low_freq={low_freq:g}, high_freq={high_freq:g}"
        )
    num_fft_bins = padded_window // 2
    mel_low, mel_high = _mel(low_freq), _mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + delta * torch.arange(num_bins + 2, dtype=torch.float64)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    mel = _mel(torch.arange(num_fft_bins, dtype=torch.float64) * (sample_rate / padded_window))
    mel = mel[:, None]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    weights = torch.minimum(up, down).clamp(min=0.0)
    nyquist_row = torch.zeros(1, num_bins, dtype=torch.float64)
    return torch.cat([weights, nyquist_row]).to(torch.float32)


def utterance_mean_norm(feats: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
    """Subtract from each ``(B, T, F)`` sequence the mean of its first ``frame_lengths`` frames."""
    if _all_full(feats, frame_lengths):
        return feats - feats.mean(dim=1, keepdim=True)
    mask = length_mask(frame_lengths, feats.shape[1]).unsqueeze(-1)
    count = frame_lengths.clamp(min=1).to(feats.dtype)[:, None, None]
    mean = (feats * mask).sum(dim=1, keepdim=True) / count
    return (feats - mean) * mask


def sliding_mean_norm(
    feats: torch.Tensor, frame_lengths: torch.Tensor, window: int
) -> torch.Tensor:
    """Centred sliding-window mean subtraction (Kaldi ``apply-cmvn-sliding --center=true``).

    Frame ``t`` of a sequence of ``n`` valid frames loses the mean of frames
    ``[t - window // 2, t - window // 2 + window)``; a window running off either end is shifted
    back inside (and clipped to ``[0, n)`` when ``n < window``).

    Args:
        feats: ``(B, T, F)``.
        frame_lengths: ``(B,)`` valid frames per sequence.
        window: window size in frames.

    Returns:
        ``(B, T, F)``; frames at or past ``frame_lengths`` are zero.
    """
    if window < 1:
        raise ConfigError(f"mean_norm_window must be a positive number of frames, got {window}")
    batch, frames, bins = feats.shape
    # Graphs for export and autograd (cumsum's out= has none) take the plain path.
    exporting = torch.jit.is_tracing() or torch.compiler.is_compiling() or feats.requires_grad
    # Centre each sequence before the cumulative sum so float32 keeps its precision.
    centred = utterance_mean_norm(feats, frame_lengths)
    if exporting:
        csum = torch.nn.functional.pad(centred.cumsum(dim=1), (0, 0, 1, 0))  # (B, T + 1, F)
    else:
        # The batch tensors are megabytes; fewer temporaries and in-place steps halve the time.
        csum = centred.new_empty(batch, frames + 1, bins)
        csum[:, 0] = 0.0
        torch.cumsum(centred, dim=1, out=csum[:, 1:])

    t = torch.arange(frames, device=feats.device)[None, :]
    n = frame_lengths.to(feats.device)[:, None]
    start = t - window // 2
    end = start + window
    end = torch.where(start < 0, end - start, end)
    start = start.clamp(min=0)
    over = (end - n).clamp(min=0)
    start = (start - over).clamp(min=0)
    end = torch.minimum(end, n).clamp(min=1)
    start = torch.minimum(start, end - 1)
    count = (end - start).to(feats.dtype).unsqueeze(-1)
    if not exporting and batch and bool((frame_lengths == frame_lengths[0]).all()):
        # one length for the whole batch (fixed-size crops): one index for every row
        window_sum = csum.index_select(1, end[0]).sub_(csum.index_select(1, start[0]))
    else:
        index_end = end.unsqueeze(-1).expand(-1, -1, bins)
        index_start = start.unsqueeze(-1).expand(-1, -1, bins)
        window_sum = csum.gather(1, index_end) - csum.gather(1, index_start)
    if exporting:
        return (centred - window_sum / count) * length_mask(frame_lengths, frames).unsqueeze(-1)
    centred.sub_(window_sum.div_(count))
    if not _all_full(feats, frame_lengths):
        centred.masked_fill_(~length_mask(frame_lengths, frames).unsqueeze(-1), 0.0)
    return centred


def _all_full(feats: torch.Tensor, frame_lengths: torch.Tensor) -> bool:
    """Whether every sequence fills all ``T`` frames (no padding to mask); never when exporting
    (a data-dependent branch: graphs for export take the general path)."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling() or feats.shape[0] == 0:
        return False
    return bool((frame_lengths >= feats.shape[1]).all())


def _mel_bands(banks: torch.Tensor, block: int) -> list[tuple[int, int, int, int]]:
    """``(j0, j1, lo, hi)``: filters ``[j0, j1)`` are zero outside FFT bins ``[lo, hi)``."""
    bands = []
    for j0 in range(0, banks.shape[1], block):
        j1 = min(j0 + block, banks.shape[1])
        rows = (banks[:, j0:j1] != 0).any(dim=1).nonzero().squeeze(1)
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 1)
        bands.append((j0, j1, lo, hi))
    return bands


class Fbank(nn.Module):
    """Log-Mel filterbank + mean normalisation for a padded batch of waveforms.

    Waveforms are expected in [-1, 1]; they are multiplied by :attr:`FbankConfig.wave_scale`
    (Kaldi's 16-bit sample range by default) before framing, which only matters where the
    log floor is hit. The computation always runs in float32, also under autocast.

    Shapes:
        waves ``(B, S)`` float, lengths ``(B,)`` int samples (``None``: all ``S``) →
        feats ``(B, T, num_mel_bins)`` with ``T = 1 + (S - win) // shift`` (0 if ``S < win``),
        frame_lengths ``(B,)`` int64.
    """

    def __init__(self, cfg: FbankConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FbankConfig()
        if cfg.frontend != "kaldi":
            raise ConfigError(
                f"Fbank computes the 'kaldi' front end, not '{cfg.frontend}'; use build_fbank"
            )
        if cfg.mean_norm not in ("sliding", "utterance", "none"):
            raise ConfigError(
                f"unknown mean_norm '{cfg.mean_norm}'; valid: sliding, utterance, none"
            )
        if cfg.mean_norm == "sliding" and cfg.mean_norm_window < 1:
            raise ConfigError(
                f"mean_norm_window must be a positive number of frames, got {cfg.mean_norm_window}"
            )
        self.frame_length = int(cfg.sample_rate * cfg.frame_length_ms * 0.001)
        self.frame_shift = int(cfg.sample_rate * cfg.frame_shift_ms * 0.001)
        if self.frame_length < 2 or self.frame_shift < 1:
            raise ConfigError(
                f"fbank frame length {cfg.frame_length_ms} ms / shift {cfg.frame_shift_ms} ms "
                f"is too short at {cfg.sample_rate} Hz"
            )
        self.padded_window = 1 << math.ceil(math.log2(self.frame_length))
        window = torch.hann_window(self.frame_length, periodic=False, dtype=torch.float64)
        # wave_scale applied with the window (the steps before it are linear), which saves
        # scaling a copy of the whole batch; the same bits for a power-of-two scale
        window = window.pow(_POVEY_POWER).to(torch.float32) * cfg.wave_scale
        self.register_buffer("scaled_window", window, persistent=False)
        banks = kaldi_mel_banks(
            cfg.num_mel_bins, self.padded_window, cfg.sample_rate, cfg.low_freq, cfg.high_freq
        )
        self.register_buffer("mel_banks", banks, persistent=False)
        self._mel_bands = _mel_bands(banks, _CPU_MEL_BLOCK)
        for i, (j0, j1, lo, hi) in enumerate(self._mel_bands):
            band = banks[lo:hi, j0:j1].contiguous()
            self.register_buffer(f"mel_band_{i}", band, persistent=False)

    @property
    def feat_dim(self) -> int:
        return self.cfg.num_mel_bins

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """``(B,)`` sample lengths → ``(B,)`` frame counts."""
        return num_frames(lengths.long(), self.frame_length, self.frame_shift)

    def forward(
        self, waves: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths, _ = batch_lengths(waves, lengths, "Fbank")
        frame_lengths = self.frame_lengths(lengths)
        with torch.autocast(device_type=waves.device.type, enabled=False):
            feats = self._log_mel(waves.float())
            if self.cfg.mean_norm == "utterance":
                feats = utterance_mean_norm(feats, frame_lengths)
            elif self.cfg.mean_norm == "sliding":
                feats = sliding_mean_norm(feats, frame_lengths, self.cfg.mean_norm_window)
            else:
                feats = feats * length_mask(frame_lengths, feats.shape[1]).unsqueeze(-1)
        return feats, frame_lengths

    def _log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        batch, samples = waves.shape
        if samples < self.frame_length:
            return waves.new_zeros(batch, 0, self.cfg.num_mel_bins)
        frames = waves.unfold(1, self.frame_length, self.frame_shift)
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            # one shape-independent graph for export (TorchScript / ONNX): no chunking
            return self._log_mel_frames(frames)
        out = waves.new_empty(batch, frames.shape[1], self.cfg.num_mel_bins)
        # Big intermediates thrash the CPU caches: there, a few hundred frames at a time is
        # several times faster than the whole batch. GPUs want the whole batch.
        budget = _CPU_CHUNK_FRAMES if waves.device.type == "cpu" else _GPU_CHUNK_FRAMES
        rows = max(1, budget // frames.shape[1])
        for first in range(0, batch, rows):
            part = slice(first, first + rows)
            self._log_mel_frames(frames[part], out=out[part])
        return out

    def _log_mel_frames(
        self, frames: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(R, T, frame_length)`` raw frames → ``(R, T, num_mel_bins)`` log-Mel energies,
        into ``out`` (eager chunks); without it (export graphs), with ops that ONNX exports."""
        win = self.frame_length
        exporting = out is None
        if exporting:
            buf = frames.new_zeros(*frames.shape[:2], self.padded_window)
        else:
            buf = frames.new_empty(*frames.shape[:2], self.padded_window)
            buf[..., win:] = 0.0
        # DC removal then pre-emphasis with Kaldi's replicated first sample, fused:
        # y[j] = x[j] - a x[j-1] - (1 - a) mean,  y[0] = (1 - a) (x[0] - mean).
        torch.sub(frames[..., 1:], frames[..., :-1], alpha=_PREEMPHASIS, out=buf[..., 1:win])
        buf[..., 0] = (1.0 - _PREEMPHASIS) * frames[..., 0]
        mean = frames.mean(dim=-1, keepdim=True)
        buf[..., :win].sub_((1.0 - _PREEMPHASIS) * mean).mul_(self.scaled_window)
        spectrum = torch.fft.rfft(buf)
        if exporting:
            power = spectrum.real.square() + spectrum.imag.square()  # |X|^2, contiguous
        else:
            parts = torch.view_as_real(spectrum).square_()  # the same |X|^2, one pass fewer
            power = parts[..., 0] + parts[..., 1]
        mel = self._mel(power).clamp_(min=torch.finfo(torch.float32).eps)
        return mel.log_() if exporting else torch.log(mel, out=out)

    def _mel(self, power: torch.Tensor) -> torch.Tensor:
        """``(..., padded_window // 2 + 1)`` power → ``(..., num_mel_bins)`` Mel energies.

        Each FFT bin feeds at most two filters, so the filter matrix is 97% zeros. On a CPU the
        product is cheaper band by band: filters ``[j0, j1)`` times only the bins they cover
        (about 3x faster than the dense product, which is kept for GPUs and export graphs).
        """
        if power.device.type != "cpu" or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return torch.matmul(power, self.mel_banks)
        parts = [
            torch.matmul(power[..., lo:hi], getattr(self, f"mel_band_{i}"))
            for i, (_, _, lo, hi) in enumerate(self._mel_bands)
        ]
        return torch.cat(parts, dim=-1)


def build_fbank(cfg: FbankConfig | None = None) -> nn.Module:
    """The feature front end ``cfg`` describes: :class:`Fbank` (``frontend: kaldi``) or
    speechbrain's (``frontend: speechbrain``,
    :class:`~dino_speech.data.features_speechbrain.SpeechbrainFbank`). Both map
    ``waves (B, S), lengths (B,) | None`` to ``feats (B, T, F), frame_lengths (B,)`` and have
    ``cfg``, ``feat_dim``, ``frame_length`` and ``frame_shift`` (samples)."""
    cfg = cfg or FbankConfig()
    if cfg.frontend == "speechbrain":
        return SpeechbrainFbank(cfg)
    return Fbank(cfg)
