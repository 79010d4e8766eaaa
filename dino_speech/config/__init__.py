"""Typed experiment configs: nested dataclasses, strict YAML load/save, dotted overrides.

* :mod:`~dino_speech.config.loader` — the loader: :func:`load_config`, :func:`apply_overrides`,
  :func:`save_config`, :func:`from_dict`, :func:`to_dict` (strict, typed, "did you mean"
  suggestions, field help in the errors).
* :mod:`~dino_speech.config.sections` — sections several experiments share: fbank features,
  the encoder, augmentation, the audio ``data`` keys and the ``train`` run keys.
* :mod:`~dino_speech.config.dino`, :mod:`~dino_speech.config.pseudo_label`,
  :mod:`~dino_speech.config.image` — one schema per experiment.

Every public name is importable from ``dino_speech.config``.
"""

from __future__ import annotations

from dino_speech.config.dino import (
    CropConfig,
    DataConfig,
    DinoConfig,
    DinoExperimentConfig,
    OptimConfig,
    TrainConfig,
)
from dino_speech.config.image import ImageTrainConfig, StudyConfig
from dino_speech.config.loader import (
    apply_overrides,
    describe_config,
    field_help,
    from_dict,
    load_config,
    save_config,
    setting,
    to_dict,
)
from dino_speech.config.pseudo_label import (
    ClusterConfig,
    FinetuneConfig,
    MarginConfig,
    PseudoLabelConfig,
    PseudoLabelDataConfig,
    PseudoLabelEmbedConfig,
    PseudoLabelEvalConfig,
    PseudoLabelTrainConfig,
)
from dino_speech.config.sections import (
    AudioDataConfig,
    AugmentConfig,
    EncoderConfig,
    FbankConfig,
    RunConfig,
)

__all__ = [
    "AudioDataConfig",
    "AugmentConfig",
    "ClusterConfig",
    "CropConfig",
    "DataConfig",
    "DinoConfig",
    "DinoExperimentConfig",
    "EncoderConfig",
    "FbankConfig",
    "FinetuneConfig",
    "ImageTrainConfig",
    "MarginConfig",
    "OptimConfig",
    "PseudoLabelConfig",
    "PseudoLabelDataConfig",
    "PseudoLabelEmbedConfig",
    "PseudoLabelEvalConfig",
    "PseudoLabelTrainConfig",
    "RunConfig",
    "StudyConfig",
    "TrainConfig",
    "apply_overrides",
    "describe_config",
    "field_help",
    "from_dict",
    "load_config",
    "save_config",
    "setting",
    "to_dict",
]
