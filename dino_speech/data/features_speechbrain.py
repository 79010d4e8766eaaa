"""Speechbrain's filterbank front end (``speechbrain.lobes.features.Fbank`` + sentence mean
normalisation) for a zero-padded batch, the ``frontend: speechbrain`` choice of
:func:`dino_speech.data.features.build_fbank`; speechbrain ECAPA model folders
(:mod:`dino_speech.models.speechbrain_ecapa`) bring it.
"""

from __future__ import annotations

import torch
from torch import nn

from dino_speech.config import FbankConfig
from dino_speech.data.wave_batch import batch_lengths, length_mask
from dino_speech.errors import ConfigError

__all__ = ["SpeechbrainFbank", "relative_lengths"]


class SpeechbrainFbank(nn.Module):
    """Speechbrain's ``Fbank`` + sentence mean normalisation for a padded batch of waveforms.

    Built from an :class:`FbankConfig` with ``frontend: speechbrain``: ``num_mel_bins`` →
    ``n_mels``, ``frame_length_ms``/``frame_shift_ms`` → ``win_length``/``hop_length`` (and
    ``n_fft`` = the window in samples), ``low_freq``/``high_freq`` → ``f_min``/``f_max``
    (``high_freq <= 0`` counts back from Nyquist), ``mean_norm``: ``"utterance"`` is
    ``InputNormalization(norm_type="sentence", std_norm=False)``, ``"none"`` none.

    Shapes:
        waves ``(B, S)``, lengths ``(B,)`` samples (``None``: all ``S``) → feats
        ``(B, 1 + S // hop, n_mels)`` (zero past each item's frames), frame_lengths
        ``(B,)`` = ``1 + lengths // hop``.
    """

    def __init__(self, cfg: FbankConfig) -> None:
        super().__init__()
        from speechbrain.lobes.features import Fbank as SbFbank
        from speechbrain.processing.features import InputNormalization

        if cfg.frontend != "speechbrain":
            raise ConfigError(f"SpeechbrainFbank needs frontend 'speechbrain', got {cfg.frontend}")
        if cfg.mean_norm not in ("utterance", "none"):
            raise ConfigError(
                f"the speechbrain front end takes mean_norm 'utterance' or 'none', not "
                f"'{cfg.mean_norm}'"
            )
        self.cfg = cfg
        self.frame_length = int(round(cfg.sample_rate * cfg.frame_length_ms / 1000.0))
        self.frame_shift = int(round(cfg.sample_rate * cfg.frame_shift_ms / 1000.0))
        if self.frame_length < 2 or self.frame_shift < 1:
            raise ConfigError(
                f"fbank frame length {cfg.frame_length_ms} ms / shift {cfg.frame_shift_ms} ms "
                f"is too short at {cfg.sample_rate} Hz"
            )
        high = cfg.high_freq if cfg.high_freq > 0 else cfg.sample_rate / 2 + cfg.high_freq
        self.fbank = SbFbank(
            sample_rate=cfg.sample_rate,
            n_fft=self.frame_length,
            n_mels=cfg.num_mel_bins,
            f_min=cfg.low_freq,
            f_max=high,
            win_length=cfg.frame_length_ms,
            hop_length=cfg.frame_shift_ms,
        )
        self.norm = (
            InputNormalization(norm_type="sentence", std_norm=False)
            if cfg.mean_norm == "utterance"
            else None
        )

    @property
    def feat_dim(self) -> int:
        return self.cfg.num_mel_bins

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """``(B,)`` sample lengths → frames of a centred STFT of each alone."""
        n_fft = self.frame_length
        padded = lengths.long() + 2 * (n_fft // 2) - n_fft
        return torch.div(padded, self.frame_shift, rounding_mode="floor") + 1

    def forward(
        self, waves: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from speechbrain.processing.features import spectral_magnitude

        lengths, samples = batch_lengths(waves, lengths, "SpeechbrainFbank")
        frame_lengths = self.frame_lengths(lengths)
        sb = self.fbank
        with torch.autocast(device_type=waves.device.type, enabled=False):
            # whatever lies past a row's length is zero, as the centred STFT pads it alone
            waves = waves.float() * (length_mask(lengths, samples) * self.cfg.wave_scale)
            spec = spectral_magnitude(sb.compute_STFT(waves))
            mask = length_mask(frame_lengths, spec.shape[1]).unsqueeze(-1)  # (B, T, 1)
            # Padded frames (partly over the item's tail) would raise its top_db floor.
            feats = sb.compute_fbanks(spec * mask)
            if self.norm is not None:
                feats = self.norm(feats, relative_lengths(frame_lengths, feats.shape[1]))
            feats = feats * mask
        return feats, frame_lengths


def relative_lengths(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Speechbrain's relative lengths for ``lengths`` valid frames of ``frames``: its masks
    keep ``t < rel * frames``; half a frame below the length keeps that exact in float."""
    return (lengths.to(torch.float32) - 0.5) / frames
