"""Fixtures of the pseudo-labeling tests: a tiny init model and a config that runs in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dino_speech.config import (
    EncoderConfig,
    FbankConfig,
    PseudoLabelConfig,
    apply_overrides,
)
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder

TINY_PL = [
    "data.batch_size=4",
    "data.num_workers=0",
    "data.augment.noise_prob=0.5",
    "data.augment.reverb_prob=0.5",
    "data.augment.synthetic_bank_size=4",
    "data.augment.bank_seconds=1.0",
    "embed.batch_size=16",
    "embed.num_workers=0",
    "cluster.method=kmeans",
    "cluster.num_clusters=4",
    "cluster.min_size=2",
    "cluster.max_size=null",
    "finetune.crop_seconds=0.5",
    "finetune.frozen_epochs=1",
    "finetune.full_epochs=1",
    "finetune.steps_per_epoch=3",
    "finetune.warmup_epochs=0",
    "train.device=cpu",
    "train.precision=fp32",
    "train.log_every=2",
    "train.checkpoint_every=2",
    "train.tensorboard=false",
]


@pytest.fixture(scope="session")
def init_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny ResNet saved as an embedder package (24 log-Mel bins)."""
    path = tmp_path_factory.mktemp("pl_init") / "embedder.pt"
    encoder_cfg = EncoderConfig("resnet_tiny", {"base_channels": 4, "embed_dim": 16})
    features = FbankConfig(num_mel_bins=24, mean_norm="utterance")
    torch.manual_seed(0)
    encoder = build_encoder(encoder_cfg.name, feat_dim=24, **encoder_cfg.kwargs)
    save_embedder(path, encoder, encoder_cfg, features, {"source": "test"})
    return path


@pytest.fixture(scope="session")
def tiny_pl_config(synthetic_corpus: Path) -> PseudoLabelConfig:
    """One round on the shared tiny corpus: 36 training cuts, 2 x 3 fine-tuning steps."""
    return apply_overrides(
        PseudoLabelConfig(),
        [
            f"data.train_cuts={synthetic_corpus / 'synthetic_cuts_train.jsonl.gz'}",
            f"eval.cuts={synthetic_corpus / 'synthetic_cuts_test.jsonl.gz'}",
            f"eval.trials={synthetic_corpus / 'test' / 'trials'}",
            *TINY_PL,
        ],
    )
