"""Training checkpoints: atomic writes, the latest one found again, pruning and averaging.

A checkpoint (``EXP/checkpoints/step-00001000.pt`` every ``train.checkpoint_every`` steps,
``EXP/checkpoints/epoch-0003.pt`` at the end of each epoch) is a ``torch.save`` dictionary of
plain types and tensors only (it loads with ``weights_only=True``)::

    {
        "format": "dino_speech/dino-checkpoint-v1",
        "config": {...DinoExperimentConfig as nested dicts...},
        "step": int, "epoch": int, "batch_in_epoch": int,   # position of the next step
        "student": state_dict, "teacher": state_dict,       # "backbone.*" and "head.*"
        "optimizer": state_dict, "center": {"center": (K,)},
        "monitor": {...}, "world_size": int,
        "ranks": [{"data": {"sampler", "augment"}, "rng": {...}}, ...],  # one per process
    }

``EXP/checkpoints/latest`` names the newest checkpoint; it is rewritten (atomically) after
each save, so a run killed at any moment resumes from a complete file. Pruning never deletes
the checkpoint written before the newest one (:func:`prune_checkpoints` ``protect``), so a
newest file damaged afterwards (a full disk, a copy cut short) leaves one to resume from
(:func:`resume_candidates`, newest first).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dino_speech.errors import DataError
from dino_speech.file_io import atomic_torch_save, atomic_write_text, load_torch_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "average_state_dicts",
    "capture_rng",
    "checkpoint_name",
    "epoch_checkpoints",
    "find_latest",
    "load_checkpoint",
    "prune_checkpoints",
    "restore_rng",
    "resume_candidates",
    "save_checkpoint",
    "teacher_backbone",
    "teacher_encoder",
]

CHECKPOINT_FORMAT = "dino_speech/dino-checkpoint-v1"
BACKBONE_PREFIX = "backbone."

_STEP_RE = re.compile(r"^step-(\d+)\.pt$")
_EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")
LATEST = "latest"


def checkpoint_name(step: int, epoch: int | None = None) -> str:
    """``epoch-0003.pt`` for an end-of-epoch checkpoint (``epoch`` = epochs done), else
    ``step-00001000.pt``."""
    return f"epoch-{epoch:04d}.pt" if epoch is not None else f"step-{step:08d}.pt"


def save_checkpoint(directory: Path, name: str, blob: dict[str, Any]) -> Path:
    """Write ``blob`` atomically as ``directory/name`` and point ``latest`` at it."""
    path = directory / name
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **blob}, path)
    atomic_write_text(directory / LATEST, name + "\n")
    return path


def teacher_backbone(blob: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The teacher encoder's state dict in a checkpoint (its ``backbone.*`` entries)."""
    return {
        k[len(BACKBONE_PREFIX) :]: v
        for k, v in blob["teacher"].items()
        if k.startswith(BACKBONE_PREFIX)
    }


def teacher_encoder(blob: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any], dict]:
    """What rebuilds a checkpoint's teacher encoder: ``(encoder name, its kwargs, the fbank
    settings as a dict, its state dict)``."""
    config = blob["config"]
    model = config["model"]
    return model["name"], model["kwargs"], config["data"]["features"], teacher_backbone(blob)


def find_latest(directory: Path) -> Path | None:
    """The checkpoint ``latest`` names, else the newest ``*.pt`` by time; None if none."""
    pointer = directory / LATEST
    if pointer.is_file():
        candidate = directory / pointer.read_text().strip()
        if candidate.is_file():
            return candidate
    files = [p for p in directory.glob("*.pt") if _STEP_RE.match(p.name) or _EPOCH_RE.match(p.name)]
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


def resume_candidates(directory: Path) -> list[Path]:
    """The checkpoints to resume from, best first: the one ``latest`` names (as
    :func:`find_latest`), then the other step and epoch checkpoints, newest first by time."""
    first = find_latest(directory)
    if first is None:
        return []
    files = [p for p in directory.glob("*.pt") if _STEP_RE.match(p.name) or _EPOCH_RE.match(p.name)]
    others = sorted((p for p in files if p != first), key=_age_key, reverse=True)
    return [first, *others]


def _age_key(path: Path) -> tuple[int, int]:
    """Modification time, then the step or epoch number (files of one clock tick)."""
    match = _STEP_RE.match(path.name) or _EPOCH_RE.match(path.name)
    return path.stat().st_mtime_ns, int(match.group(1)) if match else -1


def load_checkpoint(
    path: Path, fmt: str = CHECKPOINT_FORMAT, what: str = "dino_speech training checkpoint"
) -> dict[str, Any]:
    """Read a training checkpoint of format ``fmt`` (on CPU); DataError if it is not one."""
    return load_torch_file(path, (fmt,), what)


def prune_checkpoints(
    directory: Path, keep_steps: int, keep_epochs: int, protect: Iterable[Path | None] = ()
) -> list[Path]:
    """Delete all but the newest ``keep_steps`` step and ``keep_epochs`` epoch checkpoints
    (0 keeps all), never a path in ``protect``. Returns the deleted paths."""
    spared = {Path(p).name for p in protect if p is not None}
    deleted = []
    for pattern, keep in ((_STEP_RE, keep_steps), (_EPOCH_RE, keep_epochs)):
        found = sorted(
            (int(m.group(1)), p) for p in directory.glob("*.pt") if (m := pattern.match(p.name))
        )
        if keep > 0:
            for _, path in found[:-keep]:
                if path.name in spared:
                    continue
                path.unlink(missing_ok=True)
                deleted.append(path)
    return deleted


def epoch_checkpoints(directory: Path) -> list[Path]:
    """End-of-epoch checkpoints, oldest first."""
    found = sorted(
        (int(m.group(1)), p) for p in directory.glob("*.pt") if (m := _EPOCH_RE.match(p.name))
    )
    return [p for _, p in found]


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point entries; other entries from the last state."""
    if not states:
        raise ValueError("nothing to average")
    keys = states[-1].keys()
    for state in states:
        if state.keys() != keys:
            raise DataError("cannot average checkpoints of different models")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(0).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def capture_rng(augment_generator: torch.Generator | None = None) -> dict[str, Any]:
    """The random states of torch (CPU and CUDA), numpy, python and the augmentation generator,
    as plain types and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if augment_generator is not None:
        state["augment"] = augment_generator.get_state()
    return state


def restore_rng(state: dict[str, Any], augment_generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if augment_generator is not None and "augment" in state:
        augment_generator.set_state(state["augment"])


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
