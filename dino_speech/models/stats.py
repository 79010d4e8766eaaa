"""Parameter-free statistics "encoder" and the built-in ``logmel-stats`` baseline model.

:class:`FeatureStats` maps a feature sequence to the mean and the standard deviation of each
feature over the valid frames. With 40 log-Mel bands and no mean normalisation it is the
classic log-Mel statistics baseline (``bench/baseline_logmel.py``): a speaker "embedding" that
needs no training, against which learnt embeddings are compared.

Built-in models are names that :func:`dino_speech.loading.load_embedder` (and so
``Embedder.from_pretrained`` and every ``--model`` option) accepts besides a file or an
experiment directory:

================  ===============================================================  =========
name              what                                                             dimension
================  ===============================================================  =========
``logmel-stats``  mean + std over frames of 40 log-Mel bands (Kaldi fbank defaults:   80
                  25 ms / 10 ms, 20 Hz to Nyquist, no mean normalisation)
================  ===============================================================  =========
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.errors import ConfigError

__all__ = ["BUILTIN_MODELS", "FeatureStats", "builtin_model", "list_builtin_models"]


class FeatureStats(nn.Module):
    """Mean and standard deviation of every feature over the valid frames; no parameters.

    Args:
        feat_dim: number of input features ``F``; the embedding has ``2 F`` dimensions.
        unbiased: divide the variance by ``n - 1`` (as ``torch.std``) rather than ``n``.

    Shapes:
        feats ``(B, T, F)``, lengths ``(B,)`` valid frames (``None``: all ``T``) →
        ``(B, 2 F)``: the ``F`` means, then the ``F`` standard deviations. A sequence with a
        single frame has std 0; one with no frames is all zeros.
    """

    def __init__(self, feat_dim: int = 40, unbiased: bool = True) -> None:
        super().__init__()
        if feat_dim < 1:
            raise ConfigError(f"feat_dim must be positive, got {feat_dim}")
        self.feat_dim = feat_dim
        self.unbiased = unbiased
        self.embed_dim = 2 * feat_dim

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if feats.dim() != 3 or feats.shape[2] != self.feat_dim:
            raise ValueError(
                f"FeatureStats expects feats of shape (B, T, {self.feat_dim}), "
                f"got {tuple(feats.shape)}"
            )
        batch, frames, _ = feats.shape
        feats = feats.float()
        if lengths is None:
            lengths = torch.full((batch,), frames, dtype=torch.long, device=feats.device)
        lengths = lengths.to(feats.device).long().clamp(0, frames)
        mask = (torch.arange(frames, device=feats.device)[None, :] < lengths[:, None]).unsqueeze(-1)
        count = lengths.clamp(min=1).to(feats.dtype)[:, None]
        mean = (feats * mask).sum(dim=1) / count
        centred = (feats - mean[:, None, :]) * mask
        dof = (lengths - int(self.unbiased)).clamp(min=1).to(feats.dtype)[:, None]
        std = (centred.square().sum(dim=1) / dof).sqrt()
        return torch.cat([mean, std], dim=1)


# name → (encoder config, feature config); the features follow Kaldi's fbank defaults.
BUILTIN_MODELS: dict[str, tuple[EncoderConfig, FbankConfig]] = {
    "logmel-stats": (
        EncoderConfig(name="logmel_stats"),
        FbankConfig(num_mel_bins=40, low_freq=20.0, high_freq=0.0, mean_norm="none"),
    ),
}


def list_builtin_models() -> list[str]:
    """The names of the built-in models."""
    return sorted(BUILTIN_MODELS)


def builtin_model(name: str) -> tuple[nn.Module, FbankConfig, dict[str, Any]]:
    """``(encoder in eval mode, FbankConfig, meta)`` of built-in model ``name``.

    Raises:
        ConfigError: unknown name (the message lists the built-in ones).
    """
    from dino_speech.models.registry import build_encoder

    if name not in BUILTIN_MODELS:
        raise ConfigError(
            f"unknown built-in model '{name}'; built-in models: {', '.join(list_builtin_models())}"
        )
    encoder_cfg, features = BUILTIN_MODELS[name]
    encoder = build_encoder(
        encoder_cfg.name, feat_dim=features.num_mel_bins, **encoder_cfg.kwargs
    ).eval()
    return encoder, replace(features), {"source": f"builtin:{name}", "builtin": name}
