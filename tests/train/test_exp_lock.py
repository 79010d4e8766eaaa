"""EXP/.lock: a second run on an experiment in use fails in one line; stale locks are replaced."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dino_speech.cli.main import cli
from dino_speech.config import DinoExperimentConfig, save_config
from dino_speech.train.exp_lock import ExperimentLockedError, experiment_lock, read_lock
from dino_speech.train.trainer import train_dino, write_untrained_embedder

HOLDER = (
    "import sys\n"
    "from dino_speech.train.exp_lock import experiment_lock\n"
    "with experiment_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    sys.stdin.read()\n"  # until the test closes stdin
)


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen]]:
    """``tmp_path/exp`` locked by a live child process (released when the test ends)."""
    exp = tmp_path / "exp"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(exp)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        yield exp, child
    finally:
        child.kill()
        child.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_lock_stops_a_second_run(
    held: tuple[Path, subprocess.Popen], tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    exp, child = held
    info = read_lock(exp / ".lock")
    assert info is not None and info["pid"] == child.pid and info["host"] == socket.gethostname()
    with pytest.raises(ExperimentLockedError, match=f"in use by process {child.pid} on "):
        train_dino(tiny_config, exp, progress=False)
    with pytest.raises(ExperimentLockedError):
        write_untrained_embedder(tiny_config, exp)
    assert not (exp / "checkpoints").exists() and not (exp / "embedder.pt").exists()
    # The CLI: one Error: line, exit status 2.
    save_config(tiny_config, tmp_path / "cfg.yaml")
    args = ["train", "dino", "--config", tmp_path / "cfg.yaml", "--exp-dir", exp, "--quiet"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(child.pid) in lines[0]
    assert str(exp / ".lock") in lines[0]
    # The holder's lock is untouched; it goes when the holder ends.
    assert read_lock(exp / ".lock") == info
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait() == 0
    assert not (exp / ".lock").exists()


def test_a_stale_lock_is_replaced_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    pid = dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "started": "2020-01-01 00:00:00"}
    (exp / ".lock").write_text(json.dumps(stale))
    with caplog.at_level(logging.WARNING, logger="dino_speech"), experiment_lock(exp):
        assert read_lock(exp / ".lock")["pid"] == os.getpid()
    warnings = [r.getMessage() for r in caplog.records if "stale lock" in r.getMessage()]
    assert len(warnings) == 1 and f"process {pid} " in warnings[0] and str(exp) in warnings[0]
    assert not (exp / ".lock").exists()


def test_released_on_error_and_reentrant(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    with pytest.raises(RuntimeError, match="boom"), experiment_lock(exp):
        with experiment_lock(exp):  # the same process: shares the hold
            pass
        assert (exp / ".lock").is_file()
        raise RuntimeError("boom")
    assert not (exp / ".lock").exists()
    with experiment_lock(exp):  # free again
        pass


def test_locks_of_other_hosts_and_garbage_count_as_held(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / ".lock").write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere.invalid"}))
    with pytest.raises(ExperimentLockedError, match="on elsewhere.invalid"), experiment_lock(exp):
        pass
    (exp / ".lock").write_text("{not json")
    with pytest.raises(ExperimentLockedError, match="unreadable lock file"), experiment_lock(exp):
        pass
    assert (exp / ".lock").read_text() == "{not json"  # never removed by a failed attempt
