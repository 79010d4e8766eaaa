"""utils/stage_lib.sh, run in bash under the recipes' `set -euo pipefail`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bash(script: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``script`` after sourcing stage_lib.sh as a recipe does (``path`` first on PATH)."""
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = f"{path}:{env['PATH']}"
    prelude = f'set -euo pipefail\n. "{REPO}/utils/stage_lib.sh"\n'
    return subprocess.run(
        ["bash", "-c", prelude + script], cwd=cwd, capture_output=True, text=True, env=env
    )


def fake_command(folder: Path, name: str) -> None:
    """An executable ``name`` in ``folder`` that prints its name and arguments."""
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text(f'#!/bin/sh\necho {name} "$@"\n')
    script.chmod(0o755)


def test_run_stage_selects_the_stages_between_stage_and_stop_stage(tmp_path: Path) -> None:
    result = bash(
        "stage=2; stop_stage=4\nfor n in 0 1 2 3 4 5; do run_stage $n && echo $n; done; true",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "3", "4"]


def test_launch_runs_under_torchrun_only_on_several_gpus(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "dino-speech")
    fake_command(bin_dir, "torchrun")
    result = bash(
        "ngpu=0; launch embed --x 1\nngpu=1; launch embed\nngpu=4; launch train dino",
        tmp_path,
        bin_dir,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "dino-speech embed --x 1",
        "dino-speech embed",
        "torchrun --standalone --nproc_per_node 4 -m dino_speech.cli.main train dino",
    ]


def test_require_fails_with_one_line_naming_the_option(tmp_path: Path) -> None:
    result = bash('require --corpus-dir "" "a folder of audio"; echo not reached', tmp_path)
    assert result.returncode == 2 and "not reached" not in result.stdout
    assert "--corpus-dir is required (a folder of audio)" in result.stderr
    assert bash('require --corpus-dir "x" "a folder"; echo ok', tmp_path).stdout == "ok\n"


def test_absolute_dirs_creates_and_resolves_relative_options(tmp_path: Path) -> None:
    result = bash(
        'data_dir=data/a; exp_dir=exp\nabsolute_dirs data_dir exp_dir\necho "$data_dir $exp_dir"\n'
        'echo "$(abs_path logmel-stats)"',
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{tmp_path.resolve()}/data/a {tmp_path.resolve()}/exp"
    assert (tmp_path / "data" / "a").is_dir()
    assert lines[1] == "logmel-stats"  # a built-in model name stays a name


def test_check_arguments_rejects_leftover_arguments(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "dino-speech")
    result = bash("check_arguments extra; echo not reached", tmp_path, bin_dir)
    assert result.returncode == 2 and "unexpected arguments: extra" in result.stderr
    assert bash("check_arguments; echo ok", tmp_path, bin_dir).stdout == "ok\n"
