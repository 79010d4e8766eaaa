"""Image datasets: scikit-learn's bundled digits (built in) and CIFAR-10 from a local folder.

Both load fully into memory as tensors (digits: 1,797 images of 8 x 8; CIFAR-10: 60,000 of
32 x 32 x 3 kept as uint8), with labels used only for evaluation. Nothing is ever downloaded.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dino_speech.config.image import DATASETS
from dino_speech.errors import ConfigError, DataError
from dino_speech.image.augment import CifarAugment, DigitsAugment

DIGITS_TEST_FRACTION = 0.3
DIGITS_SPLIT_SEED = 0  # the split is fixed, whatever the training seed
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class ImageDataset:
    """Train/test images and labels.

    ``train_x``/``test_x`` are ``(N, C, H, W)``: float in [0, 1] or uint8 in [0, 255];
    use :meth:`as_float` on a batch. ``mean``/``std`` are per-channel statistics for normalising.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @staticmethod
    def as_float(batch: torch.Tensor) -> torch.Tensor:
        """A batch as float32 in [0, 1] (uint8 is divided by 255)."""
        if batch.dtype == torch.uint8:
            return batch.float().div_(255.0)
        return batch.float()

    def augmenter(self) -> Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]:
        """The dataset's SSL view augmentation (float [0, 1] in, normalised views out)."""
        if self.name == "digits":
            return DigitsAugment(self.mean, self.std)
        return CifarAugment(self.mean, self.std)

    def summary(self) -> str:
        c, h, w = self.image_shape
        return (
            f"{self.name}: {len(self.train_x)} train / {len(self.test_x)} test images of "
            f"{h}x{w}x{c}, {self.num_classes} classes"
        )


def load_digits_dataset() -> ImageDataset:
    """The 1,797 8 x 8 handwritten digits bundled with scikit-learn, on a fixed stratified split
    (70 % train / 30 % test, seed 0). Pixels (0..16) are scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(
        images,
        labels,
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    mean, std = float(xtr.mean()), float(xtr.std())
    return ImageDataset(
        "digits",
        torch.from_numpy(xtr),
        torch.from_numpy(ytr),
        torch.from_numpy(xte),
        torch.from_numpy(yte),
        (mean,),
        (std,),
        10,
    )


def load_cifar10_dataset(root: str | Path) -> ImageDataset:
    """CIFAR-10 (python version) from ``root``, through torchvision with ``download=False``.

    ``root`` is the folder holding ``cifar-10-batches-py/`` (or that folder itself).
    Raises :class:`DataError` when the folder or torchvision is missing or the files are invalid.
    """
    root = Path(root)
    if root.name == "cifar-10-batches-py":
        root = root.parent
    expected = root / "cifar-10-batches-py"
    if not expected.is_dir():
        raise DataError(
            f"CIFAR-10 not found: no folder {expected}. Put the python version of CIFAR-10 "
            "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted) "
            "there and pass its parent as --data-dir; nothing is downloaded"
        )
    try:
        from torchvision.datasets import CIFAR10
    except ImportError:
        raise DataError("CIFAR-10 needs torchvision: pip install 'dino-speech[image]'") from None
    try:
        train = CIFAR10(str(root), train=True, download=False)
        test = CIFAR10(str(root), train=False, download=False)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(f"invalid CIFAR-10 files under {expected}: {exc!r}") from None

    def tensors(split: object) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(split.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.as_tensor(split.targets, dtype=torch.long)

    xtr, ytr = tensors(train)
    xte, yte = tensors(test)
    return ImageDataset("cifar10", xtr, ytr, xte, yte, CIFAR10_MEAN, CIFAR10_STD, 10)


def load_image_dataset(name: str, data_dir: str | Path | None = None) -> ImageDataset:
    """A dataset by name: ``digits`` (built in) or ``cifar10`` (needs ``data_dir``)."""
    if name == "digits":
        return load_digits_dataset()
    if name == "cifar10":
        if data_dir is None:
            raise ConfigError("--dataset cifar10 needs --data-dir (the folder with CIFAR-10)")
        return load_cifar10_dataset(data_dir)
    raise ConfigError(f"unknown dataset '{name}'; valid datasets: {', '.join(DATASETS)}")
