"""One run at a time per experiment directory: ``EXP/.lock``.

Training (``train_dino``, ``write_untrained_embedder``) and pseudo-labeling
(``run_pseudo_label``) hold ``EXP/.lock`` while they run; a second run on the same
directory fails at once with :class:`ExperimentLockedError` (one line naming the holder)
instead of interleaving checkpoints and logs with the first. The file is JSON: the holder's
``pid``, ``host``, start time and command line. It is removed when the run ends, also on an
error or Ctrl-C. A run killed outright (SIGKILL, a crashed machine) leaves it behind: a lock
whose pid no longer runs on this host is stale and is taken over with a warning. A lock from
another host cannot be checked and counts as held (delete the file if that run is gone).

Under ``torchrun`` only rank 0 takes the lock; the other ranks learn the outcome from it, so
all fail together. Within one process the lock is re-entrant (nested calls on the same
directory share it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dino_speech.errors import DinoSpeechError
from dino_speech.train.distributed import DistContext, all_gather_objects

__all__ = ["LOCK_NAME", "ExperimentLockedError", "experiment_lock", "read_lock"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # lock files this process holds -> nesting depth


class ExperimentLockedError(DinoSpeechError):
    """Another live run holds the experiment directory."""


def read_lock(path: Path) -> dict[str, Any] | None:
    """The holder recorded in lock file ``path`` (``{}`` if unparsable), None if absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


@contextmanager
def experiment_lock(exp_dir: str | Path, ctx: DistContext | None = None) -> Iterator[Path]:
    """Hold ``exp_dir/.lock`` for the duration of the ``with`` block (creates ``exp_dir``).

    Raises:
        ExperimentLockedError: another live process holds it (on every rank under DDP).
    """
    exp_dir = Path(exp_dir)
    path = (exp_dir / LOCK_NAME).absolute()
    main = ctx is None or ctx.is_main
    error: str | None = None
    acquired = False
    if main:
        try:
            acquired = _acquire(path)
        except ExperimentLockedError as exc:
            error = str(exc)
    if ctx is not None and ctx.distributed:
        error = all_gather_objects(error)[0]
        if error is not None and acquired:
            _release(path)  # cannot happen (rank 0 decides), kept for safety
            acquired = False
    if error is not None:
        raise ExperimentLockedError(error)
    try:
        yield path
    finally:
        if acquired:
            _release(path)


def _acquire(path: Path) -> bool:
    """Take the lock (True) or join this process's own hold of it (True)."""
    if path in _held:
        _held[path] += 1
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        if _create(path):
            _held[path] = 1
            return True
        info = read_lock(path)
        if info is None:
            continue  # released between our two looks: try again
        if not _is_stale(info):
            raise ExperimentLockedError(_held_message(path, info))
        logger.warning(
            "%s: stale lock of process %s on %s (no longer running); taking it over",
            path.parent,
            info.get("pid", "?"),
            info.get("host", "?"),
        )
        _remove_if_same(path, info)
    info = read_lock(path) or {}
    raise ExperimentLockedError(_held_message(path, info))


def _create(path: Path) -> bool:
    """Atomically create ``path`` with this process's record; False if it exists."""
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
    }
    fd, tmp = tempfile.mkstemp(prefix=".lock.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
            handle.write("\n")
        try:
            os.link(tmp, path)  # appears complete, or not at all
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: exclusive create
            return _create_exclusive(path, Path(tmp).read_bytes())
        return True
    finally:
        os.unlink(tmp)


def _create_exclusive(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def _is_stale(info: dict[str, Any]) -> bool:
    """The recorded holder is known not to run: same host, pid gone."""
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False
    if pid == os.getpid():
        return False  # this very process (a hold not in _held: another thread or a fork)
    return not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


def _remove_if_same(path: Path, info: dict[str, Any]) -> None:
    """Delete the lock file if it still holds ``info`` (not one taken since)."""
    if read_lock(path) == info:
        path.unlink(missing_ok=True)


def _release(path: Path) -> None:
    depth = _held.get(path, 0)
    if depth > 1:
        _held[path] = depth - 1
        return
    _held.pop(path, None)
    info = read_lock(path)
    if (
        info is not None
        and info.get("pid") == os.getpid()
        and info.get("host") == (socket.gethostname())
    ):
        path.unlink(missing_ok=True)


def _held_message(path: Path, info: dict[str, Any]) -> str:
    exp = path.parent
    if not info:
        return (
            f"{exp} is in use (unreadable lock file {path}); delete {path} if no run uses "
            "this directory"
        )
    since = f" since {info['started']}" if info.get("started") else ""
    return (
        f"{exp} is in use by process {info.get('pid', '?')} on {info.get('host', '?')}{since}; "
        f"wait for that run to end, or delete {path} if it is gone"
    )
