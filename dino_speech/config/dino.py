"""The DINO experiment (``dino-speech train dino``): one YAML file under ``configs/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dino_speech.config.loader import setting
from dino_speech.config.sections import (
    AudioDataConfig,
    EncoderConfig,
    FbankConfig,
    RunConfig,
)

__all__ = [
    "CropConfig",
    "DataConfig",
    "DinoConfig",
    "DinoExperimentConfig",
    "OptimConfig",
    "TrainConfig",
]


@dataclass
class CropConfig:
    """Multi-crop sampling: the teacher sees the global crops, the student all of them."""

    num_global: int = setting(2, "Global crops per utterance (seen by teacher and student).")
    global_seconds: float = setting(4.0, "Length of a global crop (seconds).")
    num_local: int = setting(4, "Local crops per utterance (seen by the student only).")
    local_seconds: float = setting(2.0, "Length of a local crop (seconds).")
    spread: bool = setting(
        False,
        "Spread the crops of each group over the utterance (one stratum each) instead of "
        "drawing their positions independently: less overlap between the views of short "
        "utterances.",
    )
    trim_db: float = setting(
        0.0,
        "Crop only between the first and the last 20 ms frame whose energy is within trim_db "
        "dB of the utterance's loudest frame (0: off): leading and trailing silence never "
        "makes up a view.",
    )


@dataclass
class DataConfig(AudioDataConfig):
    """Where the training cuts come from and how they become batches.

    The keys of :class:`~dino_speech.config.sections.AudioDataConfig`, plus Shar shards,
    the last-batch rule, the multi-crop views and the fbank features.
    """

    train_shar: str = setting(
        "",
        "Instead of train_cuts: a folder of Lhotse Shar shards (`dino-speech shar`), read front "
        "to back, whole shards per rank and worker, through a shuffle buffer of "
        "shar_shuffle_buffer cuts (dino_speech.data.shar_loader).",
    )
    shar_shuffle_buffer: int = setting(1000, "Cuts in the shuffle buffer of train_shar.")
    drop_last: bool = setting(
        True,
        "Drop the last partial batch of an epoch (as DINO does); batch_size is cuts per batch "
        "on each rank.",
    )
    crops: CropConfig = field(default_factory=CropConfig)
    features: FbankConfig = field(default_factory=FbankConfig)


@dataclass
class DinoConfig:
    """DINO head, loss and teacher settings (defaults: Cho et al. 2022 / hyperion dinossl.v1)."""

    out_dim: int = setting(65536, "Prototypes (output dimension of the DINO head).")
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    num_layers: int = 3
    use_bn: bool = False
    norm_last_layer: bool = True
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: float = 0.0
    center_momentum: float = 0.9
    teacher_momentum: float = 0.996
    teacher_momentum_final: float = 1.0
    freeze_last_layer_epochs: float = 1.0
    reg_weight: float = setting(
        0.0,
        "Weight of RDINO's embedding regulariser in the loss (0: plain DINO): "
        "reg_std_coeff * variance + reg_cov_coeff * covariance (VICReg's terms) of the "
        "student's embeddings of each global crop, against dimensional collapse "
        "(dino_speech.ssl.regularizers).",
    )
    reg_std_coeff: float = setting(
        10.0, "Diversity: hinge on each embedding dimension's std over the batch (RDINO: 10)."
    )
    reg_cov_coeff: float = setting(
        1.0, "Redundancy elimination: squared off-diagonal covariances (RDINO: 1)."
    )


@dataclass
class OptimConfig:
    """Optimiser and schedules; `lr` is for a total batch of 256 when `scale_lr` is true."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = setting(0.005, "Peak learning rate (for a total batch of 256 when scale_lr).")
    scale_lr: bool = setting(True, "Scale lr by the total batch size / 256.")
    min_lr: float = 1e-6
    warmup_epochs: float = 10.0
    weight_decay: float = 1e-4
    weight_decay_end: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    amsgrad: bool = True
    momentum: float = 0.9
    clip_grad: float = setting(3.0, "Gradient clipping at this norm (0: none); see clip_mode.")
    clip_mode: Literal["per_param", "global"] = setting(
        "per_param",
        "'per_param' clips each parameter's gradient norm on its own, as the DINO reference "
        "implementation does; 'global' clips the norm of all gradients together "
        "(torch.nn.utils.clip_grad_norm_).",
    )


@dataclass
class TrainConfig(RunConfig):
    """The training loop: length, device, precision, checkpoints, logging.

    The keys of :class:`~dino_speech.config.sections.RunConfig`, plus the epochs, teacher
    averaging and the collapse warning.
    """

    epochs: int = setting(70, "Training epochs.")
    steps_per_epoch: int | None = setting(
        None, "Cap on the batches of one epoch (null: one pass over the training cuts)."
    )
    average_last: int = setting(
        0, ">1: embedder.pt holds the teacher encoder averaged over the last N epoch checkpoints."
    )
    collapse_patience: int = setting(
        1000,
        "Steps a teacher collapse (uniform or one-prototype output) must last before a warning.",
    )


@dataclass
class DinoExperimentConfig:
    """Everything `dino-speech train dino` needs; one YAML file under `configs/`."""

    data: DataConfig = field(default_factory=DataConfig)
    model: EncoderConfig = field(default_factory=EncoderConfig)
    dino: DinoConfig = field(default_factory=DinoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
