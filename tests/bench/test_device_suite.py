"""bench/device_suite.sh: the GPU suite runs on a CPU with --quick, and degrades row by row.

No timing is asserted: the suite prints figures, the tests check that every row ran (or says
why it was skipped) and that the table file is written.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "device_suite.sh"
ROW_NAMES = [
    "corpus: built-in synthetic",
    "DINO step ecapa_tiny, batch 4, fp32, synthetic tensors on cpu",
    "DINO step ecapa_tiny, batch 4, fp32, real loader data",
    "DINO step resnet_tiny, batch 4, fp32, synthetic tensors on cpu",
    "DINO step resnet_tiny, batch 4, fp32, real loader data",
    "input pipeline: per-sample loader (workers augment + fbank each crop)",
    "input pipeline: ours (workers crop; augment + fbank batched on cpu)",
    "embedding extraction ecapa_tiny, fp32",
    "embedding extraction resnet_tiny, fp32",
    "faiss k-means on the GPU",
]


def run_suite(tmp_path: Path, *args: str, pythonpath: str | None = None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu", "--quick", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def table_rows(text: str) -> dict[str, list[str]]:
    """Measurement name → the row's cells (the table's header and rule left out)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| measurement"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def find(rows: dict[str, list[str]], prefix: str) -> list[str]:
    matches = [cells for name, cells in rows.items() if name.startswith(prefix)]
    assert len(matches) == 1, (prefix, list(rows))
    return matches[0]


def test_quick_cpu_run_writes_one_table_with_every_row(tmp_path: Path) -> None:
    out = tmp_path / "x.md"
    result = run_suite(tmp_path, "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert text.strip() in result.stdout  # printed as well
    rows = table_rows(text)
    assert len(rows) == len(ROW_NAMES), list(rows)
    for name in ROW_NAMES:
        status = find(rows, name)[1]
        assert status == "ok" or re.fullmatch(r"skipped: .{5,}", status), (name, status)
    for name in ROW_NAMES[1:5]:  # training rows: steps/s, samples/s, TFLOP/s, peak memory
        cells = find(rows, name)
        if cells[1] == "ok":
            assert all(float(c) > 0 for c in cells[2:5]), cells
            assert "MiB" in cells[5], cells
    real = find(rows, ROW_NAMES[2])
    if real[1] == "ok":
        assert re.search(r"real / synthetic = \d+\.\d\d", real[6]), real
    ours = find(rows, ROW_NAMES[6])
    if ours[1] == "ok":
        assert re.search(r"ours / per-sample = \d+\.\d\d", ours[6]), ours
    assert re.search(r"\d+(\.\d+)? utterances/s", find(rows, ROW_NAMES[8])[6])
    kmeans = find(rows, ROW_NAMES[9])[1]
    assert kmeans.startswith("skipped: ") or kmeans == "ok", kmeans


def test_missing_packages_skip_their_rows_and_the_rest_runs(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    for module in ("lhotse", "speechbrain"):  # as on a GPU machine without them
        (blocked / module).mkdir(parents=True)
        (blocked / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n"
        )
    out = tmp_path / "y.md"
    result = run_suite(
        tmp_path, "--rows", "train,embed", "--out", str(out), pythonpath=str(blocked)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    message = [s for s in result.stderr.splitlines() if s.startswith("device_suite.sh: missing")]
    assert len(message) == 1 and "lhotse speechbrain" in message[0], result.stderr
    assert "ECAPA rows" in message[0] and "--wheels DIR" in message[0]
    rows = table_rows(out.read_text())
    assert find(rows, "corpus")[1] == "skipped: needs lhotse (not installed)"
    assert find(rows, ROW_NAMES[1])[1] == "skipped: needs speechbrain (not installed)"
    assert find(rows, ROW_NAMES[2])[1] == "skipped: needs speechbrain, lhotse (not installed)"
    assert find(rows, ROW_NAMES[3])[1] == "ok"  # ResNet on synthetic tensors needs neither
    assert find(rows, ROW_NAMES[4])[1] == "skipped: needs lhotse (not installed)"
    assert find(rows, ROW_NAMES[7])[1] == "skipped: needs speechbrain (not installed)"
    assert find(rows, ROW_NAMES[8])[1] == "ok"


def load_driver():
    spec = importlib.util.spec_from_file_location("_device_suite", REPO / "bench/device_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_device_suite"] = module
    spec.loader.exec_module(module)
    return module


def test_a_failing_row_is_a_row_and_the_budget_skips_the_rest(tmp_path: Path) -> None:
    ds = load_driver()
    args = argparse.Namespace(out=str(tmp_path / "t.md"), budget_s=3600.0)
    suite = ds.Suite(args, ["- header"])

    def boom(row):
        raise RuntimeError("CUDA out of memory | details\nsecond line")

    def fine(row):
        row.steps_s, row.result = 2.5, "fine"
        return 42

    def skip(row):
        raise ds.Skip("no GPU here")

    assert suite.run("fails", (), boom) is None
    assert suite.run("works", (), fine) == 42
    assert suite.run("skips", (), skip) is None
    assert suite.run("needs", ("no_such_module_xyz",), fine) is None
    args.budget_s = -1.0
    assert suite.run("late", (), fine) is None
    rows = table_rows((tmp_path / "t.md").read_text())
    assert rows["fails"][1] == r"FAILED: RuntimeError: CUDA out of memory \| details"
    assert rows["works"][1:3] == ["ok", "2.5"]
    assert rows["skips"][1] == "skipped: no GPU here"
    assert rows["needs"][1] == "skipped: needs no_such_module_xyz (not installed)"
    assert rows["late"][1] == "skipped: time budget of -1 s spent"


def test_help_and_shellcheck(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPT), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for option in ("--wheels", "--device", "--quick", "--out", "--budget-s", "--corpus"):
        assert option in result.stdout, option
    assert list(tmp_path.iterdir()) == []
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install -e '.[dev]' installs it)")
    check = subprocess.run([shellcheck, "-x", str(SCRIPT)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
