"""The ``dino-speech`` command group.

Subcommands are imported lazily (``COMMANDS`` maps a name to ``module:attribute``), so
``dino-speech --help`` stays fast and one command's heavy imports never slow another.
User errors (bad options, missing files, malformed inputs, paths that cannot be written) print
one ``Error:`` line on stderr and exit with status 2; only bugs show a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from dino_speech import __version__
from dino_speech.errors import DinoSpeechError

COMMANDS: dict[str, str] = {
    "prepare": "dino_speech.cli.prepare:prepare",
    "image": "dino_speech.cli.image:image",
    "score": "dino_speech.cli.score:score",
    "eer": "dino_speech.cli.score:eer",
    "eval-emotion": "dino_speech.cli.emotion:eval_emotion",
    "embed": "dino_speech.cli.embed:embed",
    "export": "dino_speech.cli.export:export",
    "shar": "dino_speech.cli.shar:shar",
    "verify": "dino_speech.cli.verify:verify",
    "train": "dino_speech.cli.train:train",
    "pseudo-label": "dino_speech.cli.pseudo_label:pseudo_label",
    "report": "dino_speech.cli.report:report",
}


class LazyGroup(click.Group):
    """A group whose subcommands live in ``lazy`` ({name: "module:attr"}) until first used."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, attr = self.lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


class MainGroup(LazyGroup):
    """The top-level group: turns user errors into one line and exit status 2."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        extra.pop("standalone_mode", None)
        try:
            result = super().main(args, prog_name or "dino-speech", standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except DinoSpeechError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            # a path the user gave that cannot be written or read (permissions, a directory
            # where a file belongs, a full disk); other OS errors are bugs and keep their
            # traceback, as does everything under --log-level debug
            if exc.filename is None or logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            click.echo(f"Error: {exc.strerror or exc}: {exc.filename}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=MainGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dino-speech")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Verbosity of log messages on stderr.",
)
def cli(log_level: str) -> None:
    """dino_speech: utterance-level speech embeddings learnt without labels.

    Train DINO self-distillation on unlabelled speech, refine it with iterative
    pseudo-labeling, embed wav files, and score speaker verification trials and
    emotion recognition. Run 'dino-speech COMMAND --help' for each command.
    """
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


if __name__ == "__main__":
    cli()
