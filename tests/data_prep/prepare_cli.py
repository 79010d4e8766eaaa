"""Running ``dino-speech prepare CORPUS`` in-process, as the preparer tests do."""

from __future__ import annotations

from click.testing import CliRunner, Result

from dino_speech.cli.main import cli


def run_prepare(corpus: str, *args: str) -> Result:
    """``dino-speech prepare CORPUS ARGS...`` through click's test runner."""
    return CliRunner().invoke(cli, ["prepare", corpus, *args])


def one_error_line(result: Result) -> str:
    """The single ``Error: ...`` line a user error must give (exit status 2, no traceback)."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    return lines[0]
