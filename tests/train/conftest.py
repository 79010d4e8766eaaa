"""Fixture of the training tests: a DINO config that trains in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from dino_speech.config import DinoExperimentConfig, apply_overrides

TINY = [
    "data.batch_size=4",
    "data.num_workers=0",
    "data.crops.num_global=2",
    "data.crops.global_seconds=0.5",
    "data.crops.num_local=2",
    "data.crops.local_seconds=0.3",
    "data.augment.noise_prob=0.5",
    "data.augment.reverb_prob=0.5",
    "data.augment.specaug_prob=0.5",
    "data.augment.synthetic_bank_size=4",
    "data.augment.bank_seconds=1.0",
    "data.features.num_mel_bins=24",
    "data.features.mean_norm=utterance",
    "model.name=resnet_tiny",
    "model.kwargs={base_channels: 4, embed_dim: 16}",
    "dino.out_dim=64",
    "dino.hidden_dim=32",
    "dino.bottleneck_dim=16",
    "dino.freeze_last_layer_epochs=0.5",
    "dino.warmup_teacher_temp_epochs=1",
    "optim.name=adamw",
    "optim.lr=0.01",
    "optim.scale_lr=false",
    "optim.warmup_epochs=1",
    "train.epochs=2",
    "train.steps_per_epoch=4",
    "train.device=cpu",
    "train.precision=fp32",
    "train.log_every=2",
    "train.checkpoint_every=3",
    "train.tensorboard=false",
]


@pytest.fixture(scope="session")
def tiny_config(synthetic_corpus: Path) -> DinoExperimentConfig:
    """A DINO run on the shared tiny synthetic corpus: 2 epochs of 4 steps, in seconds.

    Shared by all tests: derive variants with ``apply_overrides`` (which copies), never
    assign to its fields.
    """
    cuts = synthetic_corpus / "synthetic_cuts_train.jsonl.gz"
    return apply_overrides(DinoExperimentConfig(), [f"data.train_cuts={cuts}", *TINY])
