"""Image encoders: the CIFAR variant of ResNet-18 and a small CNN for 8 x 8 images.

Every backbone has ``embed_dim`` and maps ``(B, C, H, W) -> (B, embed_dim)``.
"""

from __future__ import annotations

import torch
from torch import nn

from dino_speech.config.image import BACKBONES
from dino_speech.errors import ConfigError


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al., 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(c_in, c_out, stride), nn.ReLU(inplace=True), *_conv_bn(c_out, c_out)
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18CIFAR(nn.Module):
    """ResNet-18 for 32 x 32 images: 3x3 stride-1 stem, no max-pool, global average pooling.

    This is the variant used by the SSL literature on CIFAR-10 (SimSiam, solo-learn).
    Shapes: ``(B, in_channels, H, W) -> (B, 512)``.
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (64, 128, 256, 512)) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, widths[0]), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)]
            c_in = width
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x))).flatten(1)


class SmallCNN(nn.Module):
    """A four-layer CNN for 8 x 8 images (sklearn digits).

    ``8x8 -> conv 32 -> conv 64 -> pool 4x4 -> conv 128 -> pool 2x2 -> conv 128 -> flatten``;
    keeping a 2 x 2 grid instead of global pooling preserves where strokes are, which is most of
    what tells digits apart. Shapes: ``(B, in_channels, 8, 8) -> (B, 512)``.
    """

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            *_conv_bn(in_channels, w), nn.ReLU(inplace=True),
            *_conv_bn(w, 2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            *_conv_bn(2 * w, 4 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            *_conv_bn(4 * w, 4 * w), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.embed_dim = 4 * w * 2 * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (8, 8):
            raise ValueError(f"SmallCNN expects 8x8 images, got {tuple(x.shape[-2:])}")
        return self.net(x).flatten(1)


def build_backbone(name: str, in_channels: int) -> nn.Module:
    """A backbone by name; unknown names raise :class:`ConfigError` listing the valid ones."""
    if name == "small_cnn":
        return SmallCNN(in_channels)
    if name == "resnet18_cifar":
        return ResNet18CIFAR(in_channels)
    raise ConfigError(f"unknown backbone '{name}'; valid backbones: {', '.join(BACKBONES)}")
