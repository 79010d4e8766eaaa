"""2-D ResNet speaker encoders over log-Mel spectrograms, with temporal statistics pooling.

The layout follows the r-vector / WeSpeaker ResNet family: a 3×3 stem, four stages of basic
residual blocks with ``C, 2C, 4C, 8C`` channels that halve time and frequency from the second
stage on, statistics pooling over time of the flattened ``(channels × frequency)`` map, and one
linear layer to the embedding. ``resnet34`` (C = 32, 256-dim) has about 6.6 M parameters;
``lresnet34`` (C = 16) is the Light ResNet34 of Cho et al. 2022 / hyperion.

Padded frames are kept at zero before every convolution (when lengths are given), so with
zero-padded convolutions the valid region never sees padding: a padded item gets exactly the
embedding it gets alone (in eval mode; BatchNorm in train mode uses batch statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dino_speech.models.pooling import (
    TemporalStatsPool,
    downsampled_lengths,
    effective_lengths,
    frame_mask,
)

__all__ = ["ResNetEncoder", "BasicBlock"]


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection; ``stride`` applies to both axes."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, C_in, F, T)`` (zero past the valid frames) → ``(B, C, F', T')``.

        ``mask`` is the ``(B, 1, 1, T')`` float mask of the valid output frames, or None.
        """
        out = self.relu(self.bn1(self.conv1(x)))
        if mask is not None:
            out = out * mask
        out = self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))
        if mask is not None:
            out = out * mask
        return out


class ResNetEncoder(nn.Module):
    """ResNet over ``(B, T, F)`` features → ``(B, embed_dim)`` embeddings.

    Args:
        feat_dim: number of mel bins ``F``.
        base_channels: channels of the first stage ``C`` (32: ResNet34, 16: Light ResNet34).
        blocks: residual blocks per stage (``(3, 4, 6, 3)`` is ResNet34).
        embed_dim: size of the embedding.
    """

    def __init__(
        self,
        feat_dim: int = 80,
        base_channels: int = 32,
        blocks: Sequence[int] = (3, 4, 6, 3),
        embed_dim: int = 256,
    ) -> None:
        super().__init__()
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"blocks must be 4 positive counts, got {list(blocks)}")
        self.feat_dim = feat_dim
        self.embed_dim = embed_dim
        self.stem = nn.Sequential(
            nn.Conv2d(1, base_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(base_channels),
            nn.ReLU(inplace=True),
        )
        layers: list[BasicBlock] = []
        in_ch, freq = base_channels, feat_dim
        for stage, count in enumerate(blocks):
            channels = base_channels * 2**stage
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(BasicBlock(in_ch, channels, stride))
                in_ch = channels
                freq = (freq + stride - 1) // stride
        self.layers = nn.ModuleList(layers)
        self.pool = TemporalStatsPool()
        self.embedding = nn.Linear(2 * in_ch * freq, embed_dim)

    def embedding_layer(self) -> nn.Module:
        """The final layer (pooled statistics → embedding), e.g. to fine-tune it alone."""
        return self.embedding

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``feats (B, T, F)``, ``lengths (B,)`` valid frames or None → ``(B, embed_dim)``."""
        lengths = effective_lengths(feats, lengths)
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        mask = None
        if lengths is not None:
            mask = _mask4d(lengths, x.shape[-1], x.dtype)
            x = x * mask
        x = self.stem(x)
        if mask is not None:
            x = x * mask
        for layer in self.layers:
            if lengths is not None and layer.stride != 1:
                lengths = downsampled_lengths(lengths, layer.stride)
                mask = None
            if lengths is not None and mask is None:
                t_out = (x.shape[-1] + layer.stride - 1) // layer.stride
                mask = _mask4d(lengths, t_out, x.dtype)
            x = layer(x, mask)
        x = x.flatten(1, 2)  # (B, C * F', T')
        return self.embedding(self.pool(x, lengths))


def _mask4d(lengths: torch.Tensor, max_len: int, dtype: torch.dtype) -> torch.Tensor:
    return frame_mask(lengths, max_len).to(dtype)[:, None, None, :]
