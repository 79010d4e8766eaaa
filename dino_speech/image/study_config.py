"""Settings of the prediction-head study (kept free of torch so the CLI stays light to import).

See :mod:`dino_speech.image.predictor_study` for the data model, network and measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from dino_speech.errors import ConfigError

VARIANTS = {
    "none": "(a) no predictor, no stop-grad",
    "identity": "(b) fixed identity predictor",
    "offdiag": "(c) identity + trainable off-diag",
    "linear": "(d) trainable linear (id. init)",
    "directpred": "(e) DirectPred",
}
DEFAULT_VARIANTS = ("none", "identity", "offdiag", "linear")


@dataclass
class StudyConfig:
    """Settings of the predictor study.

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

    input_dim: int = 64
    num_strong: int = 3
    num_weak: int = 9
    strong: float = 1.0
    weak: float = 0.4
    presence: float = 0.5
    noise: float = 0.05
    keep: float = 0.7
    width: int = 12
    steps: int = 4000
    batch_size: int = 256
    lr: float = 0.5
    init_scale: float = 0.05
    align_threshold: float = 0.8
    decode_threshold: float = 0.5
    num_test: int = 4096
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    variants: tuple[str, ...] = DEFAULT_VARIANTS

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
