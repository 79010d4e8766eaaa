"""The image experiments (``dino-speech image``): one SSL run, and the prediction-head study.

The schemas are torch-free, so the CLI and the loader read them without importing the models.
The names the schemas accept are the registries: :mod:`dino_speech.image.methods`,
:mod:`~dino_speech.image.heads`, :mod:`~dino_speech.image.backbones` and
:mod:`~dino_speech.image.data` build exactly these names (and import them from here).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from dino_speech.config.loader import setting
from dino_speech.errors import ConfigError

__all__ = [
    "BACKBONES",
    "DATASETS",
    "DEFAULT_VARIANTS",
    "METHODS",
    "PREDICTORS",
    "PREDICTOR_METHODS",
    "TRAIN_PREDICTORS",
    "VARIANTS",
    "ImageTrainConfig",
    "StudyConfig",
]

Method = Literal["byol", "simsiam", "barlow", "vicreg"]
TrainPredictor = Literal["mlp", "linear", "offdiag_identity", "directpred"]
Dataset = Literal["digits", "cifar10"]
Backbone = Literal["small_cnn", "resnet18_cifar"]

METHODS: tuple[str, ...] = typing.get_args(Method)
"""The SSL methods (:func:`dino_speech.image.methods.build_method`)."""
PREDICTOR_METHODS: tuple[str, ...] = ("byol", "simsiam")
"""The methods with a predictor."""
TRAIN_PREDICTORS: tuple[str, ...] = typing.get_args(TrainPredictor)
"""The predictors a training run can use."""
PREDICTORS: tuple[str, ...] = (*TRAIN_PREDICTORS, "identity")
"""Every predictor (:func:`dino_speech.image.heads.build_predictor`); ``identity`` is fixed."""
DATASETS: tuple[str, ...] = typing.get_args(Dataset)
"""The datasets (:func:`dino_speech.image.data.load_image_dataset`)."""
BACKBONES: tuple[str, ...] = typing.get_args(Backbone)
"""The backbones (:func:`dino_speech.image.backbones.build_backbone`)."""


@dataclass
class ImageTrainConfig:
    """One image SSL run (``dino-speech image train``; e.g. ``configs/image_simsiam.yaml``).

    ``None`` fields take the dataset's defaults (see :func:`dino_speech.image.train.resolve`):
    backbone small_cnn, head_scale small, optimizer adamw, weight_decay 1e-4 for digits;
    resnet18_cifar, paper, sgd (momentum 0.9), 5e-4 for cifar10.
    """

    method: Method = setting("byol", "SSL method.")
    predictor: TrainPredictor | None = setting(
        None, "Predictor of byol/simsiam (null: mlp); must be null for barlow/vicreg."
    )
    dataset: Dataset = setting(
        "digits", "digits: bundled 8x8 digits (sklearn); cifar10: a local folder (data_dir)."
    )
    data_dir: str | None = setting(
        None, "Folder holding cifar-10-batches-py/ (cifar10 only; nothing is downloaded)."
    )
    backbone: Backbone | None = setting(
        None, "Encoder (null: small_cnn for digits, resnet18_cifar for cifar10)."
    )
    head_scale: Literal["small", "paper"] | None = setting(
        None, "Projector/predictor widths (null: small for digits, paper for cifar10)."
    )
    epochs: int = setting(60, "Training epochs.")
    batch_size: int = setting(256, "Images per batch (two views each).")
    optimizer: Literal["adamw", "sgd"] | None = setting(
        None, "Optimiser (null: adamw for digits, sgd with momentum 0.9 for cifar10)."
    )
    lr: float | None = setting(
        None,
        "Peak learning rate for the whole batch (null: 2e-3 x batch/256 with adamw, "
        "0.05 x batch/256 with sgd), linear warm-up for warmup_epochs then cosine to 0.",
    )
    weight_decay: float | None = setting(
        None, "Weight decay (null: 1e-4 for digits, 5e-4 for cifar10)."
    )
    warmup_epochs: int = setting(5, "Linear learning-rate warm-up before the cosine decay.")
    seed: int = setting(0, "Random seed.")
    device: str = setting("cpu", "Torch device (cpu, cuda, ...).")
    eval_batch_size: int = setting(512, "Images per batch when extracting features.")
    linear_probe: bool = setting(
        True, "Also fit the logistic-regression probe (the slowest metric on CIFAR-10)."
    )
    out_dir: str | None = setting(
        None, "Write config.yaml, encoder.pt and metrics.json here (null: write nothing)."
    )


VARIANTS = {
    "none": "(a) no predictor, no stop-grad",
    "identity": "(b) fixed identity predictor",
    "offdiag": "(c) identity + trainable off-diag",
    "linear": "(d) trainable linear (id. init)",
    "directpred": "(e) DirectPred",
}
"""The predictor variants of the study, with their table labels."""
DEFAULT_VARIANTS = ("none", "identity", "offdiag", "linear")


@dataclass
class StudyConfig:
    """Settings of the predictor study (``dino-speech image predictor-study``).

    Data: ``num_strong`` features of magnitude ``strong`` and ``num_weak`` of magnitude ``weak``
    on orthonormal directions in ``input_dim`` dimensions, each present with probability
    ``presence`` (random sign), plus Gaussian noise of std ``noise`` per coordinate; each view
    keeps each feature with probability ``keep`` and draws fresh noise.
    Network: ``width`` ReLU neurons, weights ``N(0, init_scale^2 / input_dim)`` (small, as in the
    feature-learning analyses), plain SGD with ``lr`` for ``steps`` steps of ``batch_size``.
    Measures: a feature is *aligned* when some neuron has ``|cos(w_i, e_j)| >= align_threshold``
    and *decodable* when a linear readout from the normalised representation reaches
    ``R^2 >= decode_threshold``, both on ``num_test`` fresh inputs.
    """

    input_dim: int = setting(64, "Input dimensions.")
    num_strong: int = setting(3, "Number of strong features.")
    num_weak: int = setting(9, "Number of weak features.")
    strong: float = setting(1.0, "Magnitude of the strong features.")
    weak: float = setting(0.4, "Magnitude of the weak features.")
    presence: float = setting(0.5, "Probability that a feature is present (random sign).")
    noise: float = setting(0.05, "Std of the Gaussian noise per coordinate.")
    keep: float = setting(0.7, "Probability that a view keeps a feature.")
    width: int = setting(12, "Number of neurons.")
    steps: int = setting(4000, "SGD steps per run (a fresh batch from the data model each step).")
    batch_size: int = setting(256, "Inputs per SGD step.")
    lr: float = setting(0.5, "SGD learning rate.")
    init_scale: float = setting(0.05, "Weights start as N(0, init_scale^2 / input_dim).")
    align_threshold: float = setting(
        0.8, "A feature is aligned when some neuron has |cos(w_i, e_j)| >= this."
    )
    decode_threshold: float = setting(
        0.5, "A feature is decodable when a linear readout reaches R^2 >= this."
    )
    num_test: int = setting(4096, "Fresh inputs the measures are taken on.")
    seeds: tuple[int, ...] = setting(
        (0, 1, 2, 3, 4), "Seeds; each gives its own data rotation and init."
    )
    variants: tuple[str, ...] = setting(
        DEFAULT_VARIANTS, "Predictor variants, from: " + ", ".join(VARIANTS) + "."
    )

    def check(self) -> None:
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ConfigError(f"unknown variant '{bad[0]}'; valid variants: {', '.join(VARIANTS)}")
        k = self.num_strong + self.num_weak
        if k < 1 or k > self.input_dim:
            raise ConfigError(f"need 1 <= num_strong + num_weak <= input_dim, got {k}")
        if not (0 < self.presence <= 1 and 0 < self.keep <= 1):
            raise ConfigError("presence and keep must lie in (0, 1]")
        if self.steps < 1 or self.batch_size < 2 or self.width < 1 or not self.seeds:
            raise ConfigError("need steps >= 1, batch_size >= 2, width >= 1 and some seeds")

    @property
    def num_features(self) -> int:
        return self.num_strong + self.num_weak
