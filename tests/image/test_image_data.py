"""Datasets (digits split, CIFAR-10 from a folder) and the batched augmentations."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dino_speech.errors import ConfigError, DataError
from dino_speech.image.augment import (
    CifarAugment,
    CifarAugmentConfig,
    DigitsAugment,
    DigitsAugmentConfig,
    _erase_mask,
    _rotate_hue,
    normalize,
)
from dino_speech.image.data import load_cifar10_dataset, load_digits_dataset, load_image_dataset


def test_digits_split_is_fixed_and_scaled() -> None:
    a, b = load_digits_dataset(), load_digits_dataset()
    assert len(a.train_x) + len(a.test_x) == 1797
    assert a.train_x.shape[1:] == (1, 8, 8) and len(a.test_x) == 540
    assert torch.equal(a.test_y, b.test_y) and torch.equal(a.train_x, b.train_x)
    assert float(a.train_x.min()) == 0.0 and float(a.train_x.max()) == 1.0
    assert set(a.test_y.tolist()) == set(range(10))  # stratified: every class in the test split


def test_digits_augment_identity_when_all_ranges_are_zero() -> None:
    data = load_digits_dataset()
    cfg = DigitsAugmentConfig(rotation=0.0, scale=(1.0, 1.0), translate=0.0, contrast=(1.0, 1.0),
                              brightness=0.0, noise_std=0.0, erase_prob=0.0)  # fmt: skip
    x = data.train_x[:16]
    out = DigitsAugment(data.mean, data.std, cfg)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalize(x, data.mean, data.std), atol=1e-5, rtol=0)


def test_digits_augment_is_seeded_and_varies() -> None:
    data = load_digits_dataset()
    aug = data.augmenter()
    x = data.train_x[:32]
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    # views stay close to the image they come from: same digit, correlated pixels
    ref = normalize(x, data.mean, data.std).flatten(1)
    corr = torch.nn.functional.cosine_similarity(a.flatten(1), ref, dim=1)
    assert float(corr.mean()) > 0.5


def test_erase_mask_sizes() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = _erase_mask(64, 8, 8, 1.0, (2, 4), gen)
    areas = mask.sum((1, 2, 3))
    assert mask.shape == (64, 1, 8, 8) and float(areas.min()) >= 4 and float(areas.max()) <= 16
    assert float(_erase_mask(8, 8, 8, 0.0, (2, 4), gen).sum()) == 0.0


def test_cifar_augment_shapes_and_colour_ops() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 32, 32)
    out = CifarAugment((0.5,) * 3, (0.25,) * 3)(x, gen)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # hue rotation: zero turns is the identity; gray pixels have no hue to rotate
    torch.testing.assert_close(_rotate_hue(x, torch.zeros(6)), x, atol=1e-5, rtol=0)
    gray = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(_rotate_hue(gray, torch.full((6,), 0.3)), gray, atol=1e-5, rtol=0)
    # full-area crop without flip/jitter/gray and square aspect is the identity
    cfg = CifarAugmentConfig(crop_scale=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0, gray_prob=0.0)
    aug = CifarAugment((0.0,) * 3, (1.0,) * 3, cfg)
    same = aug(x, torch.Generator().manual_seed(1))
    # aspect jitter crops at most one side by sqrt(4/3): most of the image is kept
    assert float((same - x).abs().mean()) < 0.2


def _write_fake_cifar(root: Path, n_train: int = 10, n_test: int = 4) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n: int) -> dict[str, object]:
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        return {"data": data, "labels": [int(v) for v in rng.integers(0, 10, n)]}

    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(n_train // 5)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(n_test)))
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def test_cifar10_malformed_batch_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tv = pytest.importorskip("torchvision")
    _write_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({"x": 1}))
    # the fake files cannot match the real md5 sums
    monkeypatch.setattr(tv.datasets.cifar, "check_integrity", lambda *a, **k: True)
    with pytest.raises(DataError, match="invalid CIFAR-10"):
        load_cifar10_dataset(tmp_path)


def test_cifar10_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_cifar10_dataset(tmp_path)
    with pytest.raises(ConfigError, match="--data-dir"):
        load_image_dataset("cifar10", None)
    with pytest.raises(ConfigError, match="valid datasets"):
        load_image_dataset("mnist")


def test_cifar10_corrupt_files_are_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    _write_fake_cifar(tmp_path)  # fails torchvision's md5 check
    with pytest.raises(DataError, match="invalid CIFAR-10"):
        load_cifar10_dataset(tmp_path)


def test_cifar10_loads_from_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tv = pytest.importorskip("torchvision")
    _write_fake_cifar(tmp_path)
    # the fake files cannot match the real md5 sums
    monkeypatch.setattr(tv.datasets.cifar, "check_integrity", lambda *a, **k: True)
    data = load_cifar10_dataset(tmp_path / "cifar-10-batches-py")  # the folder itself works too
    assert data.train_x.shape == (10, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (4, 3, 32, 32) and data.test_y.dtype == torch.long
    assert data.as_float(data.train_x).max() <= 1.0
    assert isinstance(data.augmenter(), CifarAugment)
