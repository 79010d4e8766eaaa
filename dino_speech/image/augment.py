"""Batched image augmentations that run on the training device.

Random parameters are drawn on the CPU from a ``torch.Generator`` (so a seed gives the same views
on any device) and applied to the whole batch at once with ``affine_grid``/``grid_sample`` and
tensor arithmetic. Inputs are float images in ``[0, 1]``, ``(B, C, H, W)``; outputs are
normalised with the dataset's mean/std.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, gen: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _bernoulli(n: int, p: float, gen: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``x`` (B, C, H, W) through per-image affine maps ``theta`` (B, 2, 3)."""
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(x - mean) / std`` per channel; ``x`` (B, C, H, W)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass
class DigitsAugmentConfig:
    """Augmentations for 8 x 8 handwritten digits. No flips: a mirrored 2 or 7 is not a digit.

    rotation: max |angle| in degrees; scale: zoom range; translate: max shift in pixels;
    contrast/brightness: intensity jitter ``x * c + b``; noise_std: additive Gaussian noise;
    erase_prob / erase_size: probability and side range (pixels) of a zeroed rectangle.
    """

    rotation: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 1.0
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.1
    noise_std: float = 0.05
    erase_prob: float = 0.3
    erase_size: tuple[int, int] = (2, 4)


class DigitsAugment:
    """Random affine (rotation, zoom, shift), intensity jitter, noise and erasing for digits."""

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        cfg: DigitsAugmentConfig | None = None,
    ) -> None:
        self.cfg = cfg or DigitsAugmentConfig()
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """``x`` (B, C, H, W) in [0, 1] -> normalised augmented views of the same shape."""
        c, (b, _, h, w) = self.cfg, x.shape
        angle = _uniform(b, -c.rotation, c.rotation, gen) * math.pi / 180.0
        zoom = _uniform(b, *c.scale, gen)
        shift = _uniform(2 * b, -c.translate, c.translate, gen).view(b, 2)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos, -sin, 2.0 * shift[:, 0] / w], 1),
                torch.stack([sin, cos, 2.0 * shift[:, 1] / h], 1),
            ],
            1,
        )
        x = _warp(x, theta)
        gain = _uniform(b, *c.contrast, gen).view(b, 1, 1, 1).to(x)
        offset = _uniform(b, -c.brightness, c.brightness, gen).view(b, 1, 1, 1).to(x)
        x = x * gain + offset
        x = x + c.noise_std * torch.randn(x.shape, generator=gen).to(x)
        x = x * (1.0 - _erase_mask(b, h, w, c.erase_prob, c.erase_size, gen).to(x))
        return normalize(x.clamp(0.0, 1.0), self.mean, self.std)


def _erase_mask(
    b: int, h: int, w: int, prob: float, size: tuple[int, int], gen: torch.Generator | None
) -> torch.Tensor:
    """(B, 1, H, W) with a random ``size``-sided rectangle of ones in a ``prob`` share of images."""
    eh = torch.randint(size[0], size[1] + 1, (b,), generator=gen)
    ew = torch.randint(size[0], size[1] + 1, (b,), generator=gen)
    top = (torch.rand(b, generator=gen) * (h - eh + 1)).floor()
    left = (torch.rand(b, generator=gen) * (w - ew + 1)).floor()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    inside = (
        (rows >= top.view(b, 1, 1))
        & (rows < (top + eh).view(b, 1, 1))
        & (cols >= left.view(b, 1, 1))
        & (cols < (left + ew).view(b, 1, 1))
    )
    on = _bernoulli(b, prob, gen).view(b, 1, 1)
    return (inside & on).unsqueeze(1).float()


@dataclass
class CifarAugmentConfig:
    """The standard SSL view pipeline for 32 x 32 images (SimCLR/BYOL style, CIFAR settings).

    Random resized crop (area ``crop_scale``, aspect 3/4..4/3), horizontal flip, colour jitter
    (brightness, contrast, saturation, hue) with probability ``jitter_prob``, grayscale with
    ``gray_prob``. Jitter is applied in a fixed order (brightness, contrast, saturation, hue).
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    gray_prob: float = 0.2


_LUMA = (0.299, 0.587, 0.114)


def _gray(x: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def _rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``turns`` (B,) of a full circle in YIQ space (a linear approximation)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
        dtype=x.dtype,
        device=x.device,
    )
    to_rgb = torch.linalg.inv(to_yiq)
    ang = 2.0 * math.pi * turns.to(x)
    cos, sin = torch.cos(ang), torch.sin(ang)
    one, zero = torch.ones_like(ang), torch.zeros_like(ang)
    rot = torch.stack(
        [torch.stack([one, zero, zero], -1), torch.stack([zero, cos, -sin], -1),
         torch.stack([zero, sin, cos], -1)], 1
    )  # fmt: skip
    mat = to_rgb @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", mat, x)


class CifarAugment:
    """Batched random resized crop + flip + colour jitter + grayscale for RGB images."""

    def __init__(
        self, mean: tuple[float, ...], std: tuple[float, ...], cfg: CifarAugmentConfig | None = None
    ) -> None:
        self.cfg = cfg or CifarAugmentConfig()
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """``x`` (B, 3, H, W) in [0, 1] -> normalised augmented views of the same shape."""
        c, b = self.cfg, x.shape[0]
        area = _uniform(b, *c.crop_scale, gen)
        log_ratio = _uniform(b, math.log(3 / 4), math.log(4 / 3), gen)
        cw = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
        ch = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
        cx = _uniform(b, -1.0, 1.0, gen) * (1.0 - cw)
        cy = _uniform(b, -1.0, 1.0, gen) * (1.0 - ch)
        flip = torch.where(_bernoulli(b, c.flip_prob, gen), -1.0, 1.0)
        zero = torch.zeros(b)
        theta = torch.stack(
            [torch.stack([cw * flip, zero, cx], 1), torch.stack([zero, ch, cy], 1)], 1
        )
        x = _warp(x, theta)

        jitter = _bernoulli(b, c.jitter_prob, gen).view(b, 1, 1, 1).to(x.device)
        bright = _uniform(b, 1 - c.brightness, 1 + c.brightness, gen).view(b, 1, 1, 1).to(x)
        contrast = _uniform(b, 1 - c.contrast, 1 + c.contrast, gen).view(b, 1, 1, 1).to(x)
        sat = _uniform(b, 1 - c.saturation, 1 + c.saturation, gen).view(b, 1, 1, 1).to(x)
        hue = _uniform(b, -c.hue, c.hue, gen)
        y = (x * bright).clamp(0, 1)
        mean_gray = _gray(y).mean((2, 3), keepdim=True)
        y = ((y - mean_gray) * contrast + mean_gray).clamp(0, 1)
        gray = _gray(y)
        y = ((y - gray) * sat + gray).clamp(0, 1)
        y = _rotate_hue(y, hue).clamp(0, 1)
        x = torch.where(jitter, y, x)

        to_gray = _bernoulli(b, c.gray_prob, gen).view(b, 1, 1, 1).to(x.device)
        x = torch.where(to_gray, _gray(x).expand_as(x), x)
        return normalize(x, self.mean, self.std)
