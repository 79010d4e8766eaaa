"""What margin-softmax fine-tuning trains: the init encoder, its pseudo-speaker classes, the
encoder + classifier module, the optimiser, and the classifier file passed between stages.

``classifier.pt`` (written atomically, loads with ``weights_only=True``)::

    {"format": "dino_speech/margin-classifier-v1", "state_dict": {"weight": (C*K, D)},
     "classes": [pseudo-speaker label of class 0, ...], "embed_dim": D, "sub_centers": K}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lhotse import CutSet
from torch import nn

from dino_speech.config import EncoderConfig, FbankConfig, PseudoLabelConfig
from dino_speech.errors import DataError
from dino_speech.file_io import atomic_torch_save, load_torch_file
from dino_speech.loading import load_embedder_spec, resolve_model_path
from dino_speech.models.pooled import embedding_layer
from dino_speech.pseudo_label.margin import AAMSoftmax
from dino_speech.train.optim import make_optimizer, param_groups

__all__ = [
    "CLASSIFIER_FORMAT",
    "InitModel",
    "MarginModel",
    "build_optimizer",
    "embedding_layer",
    "load_classifier",
    "load_init_model",
    "pseudo_labels",
    "save_classifier",
]

CLASSIFIER_FORMAT = "dino_speech/margin-classifier-v1"


@dataclass
class InitModel:
    """An encoder loaded from an embedder package or DINO checkpoint, with its spec."""

    encoder: nn.Module
    encoder_cfg: EncoderConfig
    features: FbankConfig
    meta: dict[str, Any]
    path: Path


def load_init_model(path: str | Path) -> InitModel:
    """Load ``EXP/embedder.pt``, an embedder file, a DINO checkpoint (its teacher) or a
    speechbrain ECAPA model folder (its network and front end) on CPU."""
    encoder, features, meta, encoder_cfg = load_embedder_spec(path)
    return InitModel(encoder, encoder_cfg, features, meta, resolve_model_path(path))


def pseudo_labels(cuts: CutSet, key: str) -> tuple[dict[str, int], list[int]]:
    """``({cut id: class index}, classes)``: the cuts' ``custom[key]`` integers mapped to
    ``0..C-1`` in sorted order (``classes[i]`` is the label of class ``i``)."""
    raw: dict[str, int] = {}
    for cut in cuts:
        value = (getattr(cut, "custom", None) or {}).get(key)
        if value is None:
            raise DataError(
                f"cut '{cut.id}' has no '{key}' label; fine-tuning needs pseudo-labelled cuts "
                "(cuts left out by the clustering must be dropped first)"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"cut '{cut.id}': '{key}' must be an integer >= 0, got {value!r}")
        raw[cut.id] = value
    classes = sorted(set(raw.values()))
    if len(classes) < 2:
        raise DataError(
            f"{len(raw)} cuts carry {len(classes)} distinct '{key}' label(s); a classifier "
            "needs at least 2 classes"
        )
    index = {c: i for i, c in enumerate(classes)}
    return {cut_id: index[c] for cut_id, c in raw.items()}, classes


class MarginModel(nn.Module):
    """Encoder + margin classifier as one module (what DDP wraps)."""

    def __init__(self, encoder: nn.Module, classifier: AAMSoftmax) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier

    def forward(
        self, feats: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``feats (B, T, F)``, ``labels (B,)``, ``lengths (B,)`` frames or None →
        ``(loss, cosine (B, C))``."""
        return self.classifier(self.encoder(feats, lengths), labels)


def save_classifier(path: Path, classifier: AAMSoftmax, classes: list[int]) -> None:
    """Write ``classifier`` (trained on pseudo-labels ``classes``) as ``path``."""
    blob = {
        "format": CLASSIFIER_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in classifier.state_dict().items()},
        "classes": list(classes),
        "embed_dim": classifier.embed_dim,
        "sub_centers": classifier.sub_centers,
    }
    atomic_torch_save(blob, path)


def load_classifier(path: str | Path, classifier: AAMSoftmax, classes: list[int]) -> None:
    """Load ``path`` into ``classifier``; DataError unless it was trained on ``classes``."""
    blob = load_torch_file(path, (CLASSIFIER_FORMAT,), "dino_speech margin classifier")
    if list(blob["classes"]) != list(classes):
        raise DataError(f"{path}: the classifier was trained on other pseudo-labels")
    try:
        classifier.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise DataError(f"{path}: classifier does not fit ({exc})") from None


def build_optimizer(net: nn.Module, cfg: PseudoLabelConfig) -> torch.optim.Optimizer:
    """``finetune.optimizer`` over the trainable parameters of ``net``; weight decay on weight
    matrices only (see :func:`~dino_speech.train.optim.param_groups`)."""
    ft = cfg.finetune
    groups = param_groups(net, ft.weight_decay)
    return make_optimizer(ft.optimizer, groups, lr=ft.frozen_lr, momentum=ft.momentum)
