"""Watching a DINO run: scalars to TensorBoard and ``train.log``, and collapse detection.

DINO can collapse in two ways (Caron et al. 2021, Sec. 5.3): every utterance gets the same
sharp teacher distribution (one prototype wins: the batch-averaged teacher entropy → 0), or
the teacher output becomes uniform (per-utterance entropy → log K). Either way the KL between
teacher and student goes to 0 and the embedding stops carrying information. The monitor flags a
collapse when one of those holds at every logged step for ``patience`` steps, warns once, and
the end-of-run summary says so.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F

__all__ = ["CollapseDetector", "TrainMonitor", "effective_rank", "embedding_std"]

logger = logging.getLogger("dino_speech.train")


@torch.no_grad()
def embedding_std(embeddings: torch.Tensor) -> float:
    """Mean over dimensions of the batch std of L2-normalised ``(N, D)`` embeddings.

    About ``1 / sqrt(D)`` for well-spread embeddings, 0 when all collapse to one point.
    """
    return float(F.normalize(embeddings.float(), dim=-1).std(dim=0).mean())


@torch.no_grad()
def effective_rank(embeddings: torch.Tensor, *, center: bool = True) -> float:
    """``exp`` of the entropy of the normalised singular values of the ``(N, D)`` embeddings
    (Roy & Vetterli 2007): 1 for a line, up to ``min(N, D)``.

    ``center``: subtract the mean row first (the spread around the mean; DINO's monitor), or
    not (the rank of the rows as given: RankMe, the image evaluation). Computed in float32, or
    in float64 for float64 input. Degenerate input (all singular values 0): 1.0 when centred
    (all rows equal: one point, complete collapse), 0.0 uncentred (all rows 0).
    """
    x = embeddings.to(torch.promote_types(embeddings.dtype, torch.float32))
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x.cpu())
    total = s.sum()
    if total <= 0:
        return 1.0 if center else 0.0
    p = s / total
    p_log_p = torch.where(p > 0, p * torch.log(p), 0.0)  # 0 log 0 = 0
    return float(torch.exp(-p_log_p.sum()))


class CollapseDetector:
    """Tracks the teacher's entropies and reports a sustained collapse.

    Args:
        num_prototypes: ``K``, the head's output size.
        patience: steps a collapse condition must hold before it counts as sustained.
        low: "one prototype wins" when the batch-averaged teacher entropy is below
            ``low * log K``.
        high: "uniform" when the mean per-utterance teacher entropy is above ``high * log K``.
    """

    def __init__(
        self, num_prototypes: int, patience: int, low: float = 0.05, high: float = 0.98
    ) -> None:
        self.log_k = math.log(num_prototypes)
        self.patience = patience
        self.low, self.high = low, high
        self.kind: str | None = None  # the condition holding now
        self.since: int | None = None  # first step it held
        self.warned: list[dict[str, Any]] = []  # sustained episodes seen

    def update(self, step: int, entropy: float, marginal_entropy: float) -> str | None:
        """Record one logged step; returns a warning message the first time a collapse has
        lasted ``patience`` steps."""
        kind = None
        if entropy > self.high * self.log_k:
            kind = "uniform"
        elif marginal_entropy < self.low * self.log_k:
            kind = "one-hot"
        if kind != self.kind:
            self.kind, self.since = kind, (step if kind else None)
            return None
        if kind is None or self.since is None or step - self.since < self.patience:
            return None
        if self.warned and self.warned[-1]["since"] == self.since:
            self.warned[-1]["until"] = step
            return None
        self.warned.append({"kind": kind, "since": self.since, "until": step})
        what = (
            f"the teacher output is uniform (entropy {entropy:.3f} of log K = {self.log_k:.3f})"
            if kind == "uniform"
            else "every utterance maps to the same prototypes (batch teacher entropy "
            f"{marginal_entropy:.3f} of log K = {self.log_k:.3f})"
        )
        return (
            f"DINO COLLAPSE: {what} since step {self.since}. The embeddings carry no "
            "information; check the teacher temperature, centring momentum and learning rate."
        )

    def summary(self) -> str | None:
        """One line for the end of the run, or None when no collapse was sustained."""
        if not self.warned:
            return None
        last = self.warned[-1]
        ongoing = self.kind == last["kind"] and self.since == last["since"]
        if ongoing:
            return (
                f"training COLLAPSED ({last['kind']}) from step {last['since']} "
                "and had not recovered at the end"
            )
        return (
            f"the teacher collapsed ({last['kind']}) from step {last['since']} to "
            f"{last['until']} and then recovered"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "since": self.since, "warned": list(self.warned)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kind, self.since = state["kind"], state["since"]
        self.warned = list(state["warned"])


class TrainMonitor:
    """Writes scalars to TensorBoard (``EXP/tb``) and lines to ``EXP/train.log``.

    Only the main process creates one; the others log nothing.
    """

    def __init__(self, exp_dir: Path, tensorboard: bool = True) -> None:
        self.exp_dir = exp_dir
        self._log: TextIO = open(exp_dir / "train.log", "a", buffering=1)  # noqa: SIM115
        self._writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(exp_dir / "tb"))

    def info(self, message: str) -> None:
        """A line in ``train.log`` and on the ``dino_speech.train`` logger."""
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        logger.info(message)

    def warning(self, message: str) -> None:
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} WARNING {message}\n")
        logger.warning(message)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """One TensorBoard scalar per entry, under ``train/``, and one log line."""
        if self._writer is not None:
            for name, value in values.items():
                self._writer.add_scalar(f"train/{name}", value, step)
        text = " ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        self._log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} step={step} {text}\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._log.close()


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
