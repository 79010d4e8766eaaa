"""Click options that several commands share, so their names and help read the same everywhere."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = [
    "FILE",
    "embeddings_option",
    "json_option",
    "model_option",
    "progress_option",
    "show_progress",
]

FILE = click.Path(dir_okay=False, path_type=Path)
"""An input or output file (not a directory); existence is checked by the library."""

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def model_option(required: bool = True) -> Decorator:
    """``--model``: anything :meth:`dino_speech.Embedder.from_pretrained` accepts."""
    return click.option(
        "--model",
        required=required,
        type=click.Path(path_type=Path),
        default=None,
        help="Experiment directory (uses EXP/embedder.pt, else its newest checkpoint), "
        "embedder file, DINO training checkpoint (its teacher is used), a speechbrain ECAPA "
        "model folder (hyperparams.yaml + embedding_model.ckpt, e.g. a local copy of "
        "spkrec-ecapa-voxceleb; its own fbank and normalisation; nothing is downloaded), or a "
        "built-in model: logmel-stats (mean + std of 40 log-Mel bands, the untrained baseline).",
    )


def embeddings_option(what: str) -> Decorator:
    """``--embeddings`` (required), read by :func:`dino_speech.embedding_io.read_embeddings`."""
    return click.option(
        "--embeddings",
        required=True,
        type=click.Path(path_type=Path),
        help=f"{what}: xvector.scp, .ark, .npz, or a directory holding xvector.scp.",
    )


def json_option(last_line: str) -> Decorator:
    """``--json``: the last line of stdout becomes one JSON object, shaped as ``last_line``."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help=f"Make the last line of stdout one JSON object: {last_line}.",
    )


def json_out_option() -> Decorator:
    """``--json-out FILE``: the result, with what it was computed from, for ``report``."""
    return click.option(
        "--json-out",
        type=FILE,
        default=None,
        help="Also write the result to this JSON file, with the files and settings it was "
        "computed from (what `dino-speech report` reads).",
    )


def progress_option() -> Decorator:
    """``--progress/--no-progress``; unset: when stderr is a terminal (see show_progress)."""
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show progress bars on stderr.  [default: when stderr is a terminal]",
    )


def show_progress(progress: bool | None) -> bool:
    """The value of ``--progress``: as given, else whether stderr is a terminal (not a log file)."""
    return sys.stderr.isatty() if progress is None else progress
