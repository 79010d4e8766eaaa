"""Encoder registry: a name and keyword arguments → an ``nn.Module``.

Every encoder has an ``embed_dim`` attribute and
``forward(feats (B, T, F), lengths (B,) frames | None = None) -> (B, embed_dim)``.

=============  =========================================================  ==========  ======
name           network                                                    embedding   params
=============  =========================================================  ==========  ======
ecapa_c512     ECAPA-TDNN, 512 channels (speechbrain)                     192         ~6.2 M
ecapa_c1024    ECAPA-TDNN, 1024 channels (speechbrain)                    192         ~20.8 M
resnet34       ResNet34, 32 base channels, statistics pooling             256         ~6.6 M
lresnet34      Light ResNet34, 16 base channels (Cho et al. 2022)         256         ~2.0 M
ecapa_tiny     ECAPA-TDNN, 64 channels, for CPU runs and tests            128         ~0.18 M
resnet_tiny    ResNet with 8 base channels and one block per stage        128         ~0.24 M
logmel_stats   no network: mean + std of each feature over frames         2 x F       0
=============  =========================================================  ==========  ======

``speechbrain_ecapa`` is speechbrain's ``ECAPA_TDNN`` with the arguments a speechbrain model
folder's ``hyperparams.yaml`` gives it (no preset; see
:mod:`dino_speech.models.speechbrain_ecapa`).

(Parameter counts for 80 mel bins.) Keyword arguments override a preset's defaults, e.g.
``build_encoder("ecapa_c512", embed_dim=256)``.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

from dino_speech.errors import ConfigError

__all__ = ["ENCODERS", "build_encoder", "list_encoders"]

_ECAPA = "dino_speech.models.ecapa:EcapaEncoder"
_RESNET = "dino_speech.models.resnet:ResNetEncoder"

# name → ("module:class", preset keyword arguments); classes are imported on first use, so
# building a ResNet never imports speechbrain.
ENCODERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ecapa_c512": (_ECAPA, {"channels": 512, "embed_dim": 192}),
    "ecapa_c1024": (_ECAPA, {"channels": 1024, "embed_dim": 192}),
    "resnet34": (_RESNET, {"base_channels": 32, "blocks": (3, 4, 6, 3), "embed_dim": 256}),
    "lresnet34": (_RESNET, {"base_channels": 16, "blocks": (3, 4, 6, 3), "embed_dim": 256}),
    "ecapa_tiny": (
        _ECAPA,
        {
            "channels": 64,
            "embed_dim": 128,
            "attention_channels": 32,
            "se_channels": 32,
            "res2net_scale": 4,
        },
    ),
    "resnet_tiny": (_RESNET, {"base_channels": 8, "blocks": (1, 1, 1, 1), "embed_dim": 128}),
    # a speechbrain ECAPA model folder's network (dino_speech.models.speechbrain_ecapa);
    # its ECAPA_TDNN arguments are the kwargs, no preset
    "speechbrain_ecapa": ("dino_speech.models.speechbrain_ecapa:SpeechbrainEcapa", {}),
    # parameter-free baseline (the built-in model "logmel-stats" is it on 40 log-Mel bands)
    "logmel_stats": ("dino_speech.models.stats:FeatureStats", {}),
}


def list_encoders() -> list[str]:
    """The registered encoder names."""
    return sorted(ENCODERS)


def build_encoder(name: str, feat_dim: int = 80, **kwargs: Any) -> nn.Module:
    """Build encoder ``name`` for ``feat_dim``-dimensional features.

    Raises:
        ConfigError: unknown name (the message lists the valid ones) or an argument the
            encoder does not take.
    """
    if name not in ENCODERS:
        raise ConfigError(f"unknown encoder '{name}'; valid encoders: {', '.join(list_encoders())}")
    target, preset = ENCODERS[name]
    module, attr = target.split(":")
    cls = getattr(importlib.import_module(module), attr)
    params = inspect.signature(cls).parameters
    unknown = sorted(k for k in kwargs if k not in params or k == "feat_dim")
    if unknown:
        valid = ", ".join(k for k in params if k != "feat_dim")
        raise ConfigError(
            f"encoder '{name}' does not take {', '.join(unknown)}; valid arguments: {valid}"
        )
    try:
        return cls(feat_dim=feat_dim, **{**preset, **kwargs})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"encoder '{name}': {exc}") from None
