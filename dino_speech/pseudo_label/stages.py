"""Idempotent stages of the pseudo-labeling loop: done markers, input hashes, file helpers.

A stage writes one output (a file or a directory). When it finishes, ``.<name>.done`` is
written beside the output, holding the hash of the stage's key (its config and the tokens of
the stages it depends on) and a random token of its own; stages after it put that token in
their keys, so redoing a stage redoes everything downstream. ``.<name>.started`` records the
key a partial output belongs to: a resumable stage (fine-tuning) continues it when the key is
unchanged and starts over otherwise. Under ``torchrun`` rank 0 takes every decision and
writes every marker; the other processes follow it (shared file system assumed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from dino_speech.file_io import atomic_path, atomic_write_text
from dino_speech.provenance import file_id, read_record
from dino_speech.train.distributed import DistContext, all_gather_objects

__all__ = [
    "RoundPaths",
    "StageRunner",
    "barrier",
    "copy_if_changed",
    "file_digest",
    "file_id",
    "read_json",
    "write_json",
]

logger = logging.getLogger("dino_speech.pseudo_label")


@dataclass(frozen=True)
class RoundPaths:
    """Where round ``r``'s stages write (the layout of :mod:`dino_speech.pseudo_label.loop`)."""

    root: Path

    @classmethod
    def of(cls, exp_dir: Path, r: int) -> RoundPaths:
        return cls(exp_dir / f"round{r}")

    @property
    def train_emb(self) -> Path:
        return self.root / "train_emb"

    @property
    def cluster(self) -> Path:
        return self.root / "cluster"

    @property
    def cuts(self) -> Path:
        return self.root / "cuts_pseudo.jsonl.gz"

    @property
    def ft_frozen(self) -> Path:
        return self.root / "ft_frozen"

    @property
    def ft_full(self) -> Path:
        return self.root / "ft_full"

    @property
    def eval(self) -> Path:
        return self.root / "eval"


@dataclass
class StageRunner:
    """Runs stages once: ``.NAME.done`` markers, the stage log, rank-0 decisions."""

    ctx: DistContext
    log: TextIO | None
    ran: list[str] = field(default_factory=list)

    def run(self, label: str, output: Path, key: dict[str, Any], fn: Callable[[], Any]) -> str:
        """Run ``fn`` unless ``output`` is done with this ``key``; returns the stage's token
        (changes whenever the stage is redone, so stages after it are redone too)."""
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        done = output.parent / f".{output.name}.done"
        started = output.parent / f".{output.name}.started"
        record = read_json(done)
        skip = record is not None and record.get("hash") == digest and output.exists()
        # rank 0 decides for everyone
        skip, token = all_gather_objects((skip, record["token"] if skip and record else None))[0]
        if skip:
            self.note(f"{label}: done already, skipped")
            return str(token)
        if self.ctx.is_main:
            previous = read_json(started)
            stale = record is not None or (previous is not None and previous["hash"] != digest)
            if stale and output.exists():
                self.note(f"{label}: its inputs or config changed; removing {output}")
                shutil.rmtree(output) if output.is_dir() else output.unlink()
            done.unlink(missing_ok=True)
            output.parent.mkdir(parents=True, exist_ok=True)
            write_json(started, {"hash": digest})
        barrier(self.ctx)
        self.note(f"{label}: running")
        begin = time.monotonic()
        fn()
        barrier(self.ctx)
        token = str(all_gather_objects(uuid.uuid4().hex)[0])
        if self.ctx.is_main:
            write_json(done, {"hash": digest, "token": token, "finished": time.ctime()})
            started.unlink(missing_ok=True)
        self.note(f"{label}: finished in {time.monotonic() - begin:.1f} s")
        self.ran.append(label)
        return token

    def note(self, message: str) -> None:
        logger.info(message)
        if self.log is not None:
            self.log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
            self.log.flush()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op in a single process)."""
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's content (hex)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def copy_if_changed(src: Path, dst: Path) -> None:
    """Copy ``src`` over ``dst`` atomically unless their contents are already equal."""
    if dst.is_file() and file_digest(dst) == file_digest(src):
        return
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


read_json = read_record  # the JSON object in a file, None when missing or unreadable


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
