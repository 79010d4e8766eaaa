from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from dino_speech import __version__
from dino_speech.cli.main import COMMANDS, cli
from dino_speech.embedding_io import write_embeddings


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = listed_commands(result.output)
    assert set(COMMANDS) <= listed, sorted(set(COMMANDS) - listed)


def listed_commands(help_text: str) -> set[str]:
    """The names in the ``Commands:`` block of a click group's help (not its docstring)."""
    block = help_text.split("\nCommands:\n", 1)[1]
    names = set()
    for line in block.splitlines():
        if line and not line.startswith("  "):
            break  # the block ends at the next unindented line
        if line.startswith("  ") and not line.startswith("   "):
            names.add(line.split()[0])
    return names


def test_listed_commands_reads_the_commands_block_only():
    text = (
        "Usage: x\n\n  score and embed are in the text.\n\nCommands:\n  eer   EER.\n  prepare  P.\n"
    )
    assert listed_commands(text) == {"eer", "prepare"}


def test_every_registered_command_imports_and_has_help():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_user_errors_are_one_line_and_exit_2():
    runner = CliRunner()
    for args in (
        ["no-such-command"],
        ["prepare", "synthetic"],
        ["--bogus"],
        ["prepare", "synthetic", "--out-dir", "x", "--speakers", "one"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error:"), (args, result.output)
        assert "Traceback" not in result.output


def test_unwritable_output_path_is_a_user_error(tmp_path):
    """An OS error on a path the user named is one line and exit 2, not a traceback."""
    write_embeddings(tmp_path / "emb", ["a", "b"], np.eye(2))
    (tmp_path / "trials").write_text("a b target\nb a nontarget\n")
    (tmp_path / "file").write_text("")
    args = ["score", "--trials", str(tmp_path / "trials"), "--embeddings", str(tmp_path / "emb")]
    result = CliRunner().invoke(cli, [*args, "--scores-out", str(tmp_path / "file" / "scores")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "file" in lines[0], lines
