"""utils/stage_lib.sh helpers, run in bash under the recipes' `set -euo pipefail`."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``script`` after sourcing stage_lib.sh as a recipe does."""
    prelude = f'set -euo pipefail\nexp_dir=exp\n. "{REPO}/utils/stage_lib.sh"\n'
    return subprocess.run(["bash", "-c", prelude + script], cwd=cwd, capture_output=True, text=True)


def test_random_lines_reads_a_large_list_under_pipefail(tmp_path: Path) -> None:
    # 300k lines (~12 MB): a `head` in the pipeline would exit early and SIGPIPE `sort`
    lines = [f"id{i:07d} /data/wav/{i}.wav" for i in range(300_000)]
    (tmp_path / "wav.scp").write_text("\n".join(lines) + "\n")
    draws = []
    for seed in (0, 0, 1):
        result = bash(f"random_lines 2000 {seed} < wav.scp > out_{seed}", tmp_path)
        assert result.returncode == 0, result.stderr
        draws.append((tmp_path / f"out_{seed}").read_text().splitlines())
    assert len(draws[0]) == 2000 and draws[0] == sorted(draws[0])
    assert set(draws[0]) <= set(lines)
    assert draws[0] == draws[1] and draws[0] != draws[2]  # seeded


def test_made_with_redoes_a_target_when_its_settings_change(tmp_path: Path) -> None:
    result = bash(
        "echo in > input; sleep 0.01; echo out > target\n"
        "made_with target 'a 1' input && echo 'no settings: up to date'\n"
        "record_settings target 'a 1'\n"
        "made_with target 'a 1' input && echo 'same: up to date'\n"
        "made_with target 'a 2' input || echo 'changed: redo'\n"
        "touch -d '+1 minute' input\n"
        "made_with target 'a 1' input || echo 'newer input: redo'\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["same: up to date", "changed: redo", "newer input: redo"]


def test_update_file_keeps_the_time_stamp_of_unchanged_content(tmp_path: Path) -> None:
    result = bash("printf 'a\\nb\\n' | update_file list", tmp_path)
    assert result.returncode == 0, result.stderr
    before = (tmp_path / "list").stat().st_mtime_ns
    result = bash("touch -d '-1 hour' list; printf 'a\\nb\\n' | update_file list", tmp_path)
    assert result.returncode == 0 and (tmp_path / "list").stat().st_mtime_ns < before
    result = bash("printf 'a\\nc\\n' | update_file list", tmp_path)
    assert (tmp_path / "list").read_text() == "a\nc\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list"]  # no temporary files left
