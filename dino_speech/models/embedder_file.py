"""The embedder package: one file with a trained encoder and the features it expects.

``save_embedder`` writes (atomically: a temporary file, then ``os.replace``) a ``torch.save``
dictionary::

    {
        "format": "dino_speech/embedder-v1",
        "encoder": {"name": str, "kwargs": dict, "feat_dim": int},
        "features": {...FbankConfig fields...},
        "state_dict": {parameter name: tensor},   # the encoder's, on CPU
        "meta": {...},                            # free-form: source, step, epoch, config, ...
    }

It holds only plain Python types and tensors, so it loads with ``torch.load(weights_only=True)``.
:func:`dino_speech.loading.load_embedder` reads it (and every other kind of model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from dino_speech.config import EncoderConfig, FbankConfig, to_dict
from dino_speech.file_io import atomic_torch_save

__all__ = ["EMBEDDER_FORMAT", "save_embedder"]

EMBEDDER_FORMAT = "dino_speech/embedder-v1"


def save_embedder(
    path: str | Path,
    encoder: nn.Module,
    encoder_cfg: EncoderConfig,
    features: FbankConfig,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``encoder`` (built from ``encoder_cfg`` for ``features``) as an embedder package."""
    state = {k: v.detach().to("cpu", copy=True) for k, v in encoder.state_dict().items()}
    package = {
        "format": EMBEDDER_FORMAT,
        "encoder": {
            "name": encoder_cfg.name,
            "kwargs": to_dict(encoder_cfg.kwargs),
            "feat_dim": features.num_mel_bins,
        },
        "features": to_dict(features),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    atomic_torch_save(package, path)
