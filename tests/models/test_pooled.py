from __future__ import annotations

import pytest
import torch

from dino_speech.errors import ConfigError
from dino_speech.models.pooled import PooledStatistics, cut_at_layer
from dino_speech.models.registry import build_encoder


@pytest.mark.parametrize("name", ["ecapa_tiny", "resnet_tiny"])
def test_pooled_statistics_are_what_the_last_layer_reads(name):
    torch.manual_seed(0)
    encoder = build_encoder(name).eval()
    pooled = PooledStatistics(encoder)
    feats = torch.randn(3, 120, 80)
    lengths = torch.tensor([120, 90, 61])
    with torch.no_grad():
        stats = pooled(feats, lengths)
        embedding = encoder(feats, lengths)
        # the last layer applied to the pooled statistics gives the encoder's output back
        layer = encoder.embedding_layer()
        if isinstance(layer, torch.nn.Linear):
            rebuilt = layer(stats)
        else:  # ECAPA's 1x1 convolution over (B, C, 1)
            rebuilt = layer(stats.unsqueeze(-1)).squeeze(-1)
    assert stats.shape == (3, pooled.embed_dim) and pooled.embed_dim != encoder.embed_dim
    torch.testing.assert_close(rebuilt, embedding, atol=1e-5, rtol=1e-5)
    # the hook is gone afterwards: the encoder alone is unchanged
    assert not encoder.embedding_layer()._forward_pre_hooks


def test_cut_at_layer_and_its_errors():
    encoder = build_encoder("ecapa_tiny")
    assert cut_at_layer(encoder, "embedding") is encoder
    assert isinstance(cut_at_layer(encoder, "pooled"), PooledStatistics)
    with pytest.raises(ConfigError, match="unknown embedding layer 'middle'"):
        cut_at_layer(encoder, "middle")
    with pytest.raises(ConfigError, match="no embedding layer"):
        cut_at_layer(build_encoder("logmel_stats"), "pooled")
