"""Train one non-contrastive SSL method on an image dataset and evaluate its frozen backbone.

``train_image_ssl(cfg)`` builds the backbone and method, evaluates the untrained backbone
(the random-init baseline, same architecture and seed) and raw pixels, trains with two batched
on-device augmented views per image, evaluates again, and writes into ``cfg.out_dir``:
``config.yaml``, ``metrics.json`` (every number printed) and ``encoder.pt`` (the backbone).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dino_speech.config import ImageTrainConfig, save_config, to_dict
from dino_speech.errors import ConfigError, TrainingDivergedError
from dino_speech.file_io import atomic_torch_save, atomic_write_text
from dino_speech.image.augment import normalize
from dino_speech.image.backbones import build_backbone
from dino_speech.image.data import ImageDataset, load_image_dataset
from dino_speech.image.evaluate import evaluate_features, extract_features
from dino_speech.image.methods import METHODS, PREDICTOR_METHODS, build_method
from dino_speech.provenance import finished, request
from dino_speech.ssl.schedules import half_cosine

log = logging.getLogger(__name__)

ENCODER_FORMAT = "dino_speech/image-encoder-v1"
# Complete collapse maps every image to one direction: an effective rank of 1.
COLLAPSE_RANK = 2.0


_DEFAULTS = {
    "digits": {"backbone": "small_cnn", "head_scale": "small", "optimizer": "adamw",
               "weight_decay": 1e-4},
    "cifar10": {"backbone": "resnet18_cifar", "head_scale": "paper", "optimizer": "sgd",
                "weight_decay": 5e-4},
}  # fmt: skip


def resolve(cfg: ImageTrainConfig) -> ImageTrainConfig:
    """``cfg`` with every ``None`` default filled in for its dataset, and values checked."""
    if cfg.dataset not in _DEFAULTS:
        raise ConfigError(f"unknown dataset '{cfg.dataset}'; valid datasets: digits, cifar10")
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method '{cfg.method}'; valid methods: {', '.join(METHODS)}")
    if cfg.method in PREDICTOR_METHODS:
        if cfg.predictor is None:
            cfg = dataclasses.replace(cfg, predictor="mlp")
    elif cfg.predictor is not None:
        raise ConfigError(
            f"method '{cfg.method}' has no predictor (only {', '.join(PREDICTOR_METHODS)} do)"
        )
    fill = {k: v for k, v in _DEFAULTS[cfg.dataset].items() if getattr(cfg, k) is None}
    cfg = dataclasses.replace(cfg, **fill)
    if cfg.lr is None:
        base = 2e-3 if cfg.optimizer == "adamw" else 0.05
        cfg = dataclasses.replace(cfg, lr=base * cfg.batch_size / 256)
    if cfg.optimizer not in ("adamw", "sgd"):
        raise ConfigError(f"unknown optimizer '{cfg.optimizer}'; valid optimizers: adamw, sgd")
    if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.warmup_epochs < 0:
        raise ConfigError("need epochs >= 1, batch_size >= 2 and warmup_epochs >= 0")
    if cfg.lr is not None and cfg.lr <= 0:
        raise ConfigError(f"lr must be positive, got {cfg.lr}")
    return cfg


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """The learning rate of ``step``: linear warm-up that reaches ``peak`` at its last step
    (step ``warmup - 1``), then the core's half cosine from ``peak`` to 0."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return half_cosine(peak, 0.0, (step - warmup) / max(1, total - warmup))


def _optimizer(cfg: ImageTrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    assert cfg.lr is not None and cfg.weight_decay is not None
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"invalid device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    return device


def evaluate_encoder(
    encoder: torch.nn.Module,
    data: ImageDataset,
    device: torch.device,
    batch_size: int = 512,
    probe: bool = True,
) -> dict[str, float]:
    """kNN / linear probe / diagnostics of ``encoder`` on the dataset's train/test split."""

    def prepare(batch: torch.Tensor) -> torch.Tensor:
        return normalize(data.as_float(batch), data.mean, data.std)

    feats = [
        extract_features(encoder, x, prepare, batch_size=batch_size, device=device)
        for x in (data.train_x, data.test_x)
    ]
    return evaluate_features(
        feats[0], data.train_y.numpy(), feats[1], data.test_y.numpy(), probe=probe
    )


def raw_pixel_metrics(data: ImageDataset, probe: bool = True) -> dict[str, float]:
    """The same metrics on flattened normalised pixels."""
    train, test = (
        normalize(data.as_float(x), data.mean, data.std).flatten(1).numpy()
        for x in (data.train_x, data.test_x)
    )
    return evaluate_features(train, data.train_y.numpy(), test, data.test_y.numpy(), probe=probe)


def train_image_ssl(cfg: ImageTrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train, evaluate and (when ``cfg.out_dir``) save; returns the metrics dictionary."""
    cfg = resolve(cfg)
    device = _device(cfg.device)
    data = load_image_dataset(cfg.dataset, cfg.data_dir)
    log.info("%s", data.summary())
    if len(data.train_x) < cfg.batch_size:
        raise ConfigError(
            f"batch size {cfg.batch_size} exceeds the {len(data.train_x)} training images"
        )
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    backbone = build_backbone(cfg.backbone or "", data.image_shape[0])
    method = build_method(
        cfg.method, backbone, predictor=cfg.predictor, scale=cfg.head_scale or "paper"
    ).to(device)

    random_init = evaluate_encoder(
        method.backbone, data, device, cfg.eval_batch_size, cfg.linear_probe
    )
    pixels = raw_pixel_metrics(data, cfg.linear_probe)

    params = [p for p in method.parameters() if p.requires_grad]
    opt = _optimizer(cfg, params)
    augment = data.augmenter()
    steps_per_epoch = len(data.train_x) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warmup = steps_per_epoch * cfg.warmup_epochs
    method.train()
    start, step = time.time(), 0
    losses: list[float] = []
    bar = tqdm(total=total, desc=f"{cfg.method} on {cfg.dataset}", disable=not progress)
    for _epoch in range(cfg.epochs):
        order = torch.randperm(len(data.train_x), generator=gen)
        epoch_losses = []
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = data.as_float(data.train_x[idx]).to(device)
            v1, v2 = augment(x, gen), augment(x, gen)
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total, warmup, cfg.lr or 0.0)
            out = method(v1, v2)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"loss became {loss.item()} at step {step}; lower --lr (now {cfg.lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            method.after_step(step / total)
            epoch_losses.append(float(loss.detach()))
            bar.update(1)
            bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
        losses.append(float(np.mean(epoch_losses)))
    bar.close()
    seconds = time.time() - start

    ssl = evaluate_encoder(method.backbone, data, device, cfg.eval_batch_size, cfg.linear_probe)
    collapsed = ssl["eff_rank"] < COLLAPSE_RANK
    if collapsed:
        log.warning(
            "%s has collapsed: effective rank %.2f of its %d-d embeddings (random init: %.1f)",
            cfg.method, ssl["eff_rank"], ssl["dim"], random_init["eff_rank"],
        )  # fmt: skip
    result: dict[str, Any] = {
        "method": cfg.method,
        "predictor": cfg.predictor,
        "dataset": cfg.dataset,
        "backbone": cfg.backbone,
        "seed": cfg.seed,
        "train_seconds": round(seconds, 2),
        "final_loss": losses[-1],
        "epoch_losses": losses,
        "collapsed": collapsed,
        "config": to_dict(cfg),
        "results": {
            "ssl": ssl,
            "random_init": random_init,
            "raw_pixels": pixels,
        },
    }
    if cfg.out_dir:
        save_run(cfg, method.backbone, result, data.image_shape[0])
    return result


def save_run(
    cfg: ImageTrainConfig, backbone: torch.nn.Module, result: dict[str, Any], in_channels: int
) -> None:
    """Write ``config.yaml``, ``encoder.pt`` and (last, so it marks completion) ``metrics.json``."""
    out = Path(cfg.out_dir or ".")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    package = {
        "format": ENCODER_FORMAT,
        "backbone": cfg.backbone,
        "in_channels": in_channels,
        "state_dict": {k: v.cpu() for k, v in backbone.state_dict().items()},
        "meta": {k: v for k, v in result.items() if k not in ("results", "epoch_losses")},
    }
    atomic_torch_save(package, out / "encoder.pt")
    record = {**result, "made_from": _request(cfg)}
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=2))


def finished_run(cfg: ImageTrainConfig) -> dict[str, Any] | None:
    """The saved result of a finished run of this same config in ``cfg.out_dir`` (its
    ``metrics.json``, encoder still there), or None."""
    if not cfg.out_dir:
        return None
    cfg = resolve(cfg)  # as the run saved it
    out = Path(cfg.out_dir)
    return finished(out / "metrics.json", _request(cfg), [out / "encoder.pt"])


def _request(cfg: ImageTrainConfig) -> dict[str, Any]:
    return request(to_dict(cfg), [])


def load_image_encoder(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The backbone saved by a run (``encoder.pt`` or its folder), in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / "encoder.pt"
    if not path.is_file():
        raise ConfigError(f"no image encoder at {path}")
    package = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(package, dict) or package.get("format") != ENCODER_FORMAT:
        raise ConfigError(f"{path} is not a dino_speech image encoder ({ENCODER_FORMAT})")
    backbone = build_backbone(package["backbone"], package["in_channels"])
    backbone.load_state_dict(package["state_dict"])
    return backbone.to(device).eval()
