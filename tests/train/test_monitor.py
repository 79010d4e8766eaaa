"""Collapse detection and monitoring statistics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from dino_speech.train.monitor import (
    CollapseDetector,
    TrainMonitor,
    effective_rank,
    embedding_std,
)


def test_sustained_uniform_collapse_warns_once_and_is_summarised() -> None:
    det = CollapseDetector(num_prototypes=1000, patience=100)
    log_k = math.log(1000)
    assert det.update(0, 0.5 * log_k, 0.8 * log_k) is None
    messages = [det.update(step, 0.999 * log_k, log_k) for step in range(10, 300, 10)]
    warnings = [m for m in messages if m]
    assert len(warnings) == 1 and "uniform" in warnings[0] and "step 10" in warnings[0]
    assert "had not recovered" in (det.summary() or "")


def test_short_collapse_is_not_reported_and_recovery_is() -> None:
    det = CollapseDetector(num_prototypes=1000, patience=100)
    for step in range(0, 60, 10):
        assert det.update(step, 0.1, 0.01) is None  # one-hot for 50 steps only
    assert det.update(60, 2.0, 4.0) is None
    assert det.summary() is None
    for step in range(100, 260, 10):
        det.update(step, 0.1, 0.01)
    det.update(300, 2.0, 4.0)
    summary = det.summary() or ""
    assert "one-hot" in summary and "recovered" in summary


def test_detector_state_round_trip() -> None:
    det = CollapseDetector(100, patience=10)
    for step in range(0, 50, 5):
        det.update(step, 0.0, 0.0)
    other = CollapseDetector(100, patience=10)
    other.load_state_dict(det.state_dict())
    assert other.summary() == det.summary()


def test_embedding_statistics() -> None:
    torch.manual_seed(0)
    spread = torch.randn(256, 16)
    assert embedding_std(spread) == pytest.approx(1 / math.sqrt(16), rel=0.2)
    assert embedding_std(torch.ones(10, 16)) == pytest.approx(0.0, abs=1e-6)
    assert effective_rank(spread) > 12
    line = torch.randn(50, 1) * torch.randn(1, 16)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)


def test_monitor_writes_log_and_tensorboard(tmp_path: Path) -> None:
    monitor = TrainMonitor(tmp_path, tensorboard=True)
    monitor.info("hello")
    monitor.scalars(5, {"loss": 1.5, "lr": 0.01})
    monitor.warning("careful")
    monitor.close()
    text = (tmp_path / "train.log").read_text()
    assert "hello" in text and "step=5 loss=1.5 lr=0.01" in text and "WARNING careful" in text
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_effective_rank_uncentred_and_float64() -> None:
    """The image evaluation's variant: rows as given (RankMe), float64 kept, zeros -> 0."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(20, 5, dtype=torch.float64))
    assert effective_rank(3.0 * q, center=False) == pytest.approx(5.0, rel=1e-12)
    shifted = torch.randn(40, 1) * torch.randn(1, 8) + 5.0  # a line off the origin
    assert effective_rank(shifted) == pytest.approx(1.0, abs=1e-3)
    assert effective_rank(shifted, center=False) > 1.0 + 1e-3
    assert effective_rank(torch.zeros(4, 4), center=False) == 0.0
    assert effective_rank(torch.ones(4, 4)) == 1.0  # centred: one point
