from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARSE = REPO / "utils" / "parse_options.sh"

SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
stage=0            # first stage to run
stop_stage=100     # last stage to run
exp_dir="exp/mini" # experiment directory
help_message="Runs the demo."
. "{parse}"
echo "stage=$stage stop_stage=$stop_stage exp_dir=$exp_dir rest=$*"
"""


@pytest.fixture()
def script(tmp_path):
    path = tmp_path / "run.sh"
    path.write_text(SCRIPT.format(parse=PARSE))
    path.chmod(0o755)
    return path


def _run(script, *args):
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_defaults_and_both_option_forms(script):
    assert _run(script).stdout.strip() == "stage=0 stop_stage=100 exp_dir=exp/mini rest="
    out = _run(script, "--stage", "2", "--stop-stage=5", "--exp-dir", "a b", "x", "y").stdout
    assert out.strip() == "stage=2 stop_stage=5 exp_dir=a b rest=x y"


def test_unknown_option_and_missing_value_fail(script):
    result = _run(script, "--stgae", "2")
    assert result.returncode == 2 and "unknown option --stgae" in result.stderr
    result = _run(script, "--stage")
    assert result.returncode == 2 and "needs a value" in result.stderr
    result = _run(script, "--PATH", "x")
    assert result.returncode == 2 and "unknown option" in result.stderr


def test_help_lists_options_with_defaults(script):
    result = _run(script, "--help")
    assert result.returncode == 0
    assert "Runs the demo." in result.stdout
    assert "--stop-stage" in result.stdout and "last stage to run [100]" in result.stdout
    assert "--exp-dir" in result.stdout and "[exp/mini]" in result.stdout
    assert "help-message" not in result.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_parse_options_is_shellcheck_clean():
    subprocess.run(["shellcheck", "-s", "bash", str(PARSE)], check=True)
