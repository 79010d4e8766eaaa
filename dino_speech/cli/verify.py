"""``dino-speech verify``: are two recordings the same speaker? One cosine score, one decision."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click

from dino_speech.cli.options import FILE, json_option, model_option

AUDIO = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.argument("files", nargs=-1, type=AUDIO, metavar="A.wav B.wav")
@model_option()
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Accept 'same speaker' when the cosine score is >= this.  [default: the "
    "threshold stored beside the model (threshold.json), else required]",
)
@click.option(
    "--threshold-from",
    type=FILE,
    default=None,
    help="Take the threshold from a threshold.json, the file of 'dino-speech score "
    "--json-out' (a recipe's EXP/eval/NAME/score.json: its EER threshold), or the saved "
    "output of 'dino-speech score' (its 'EER: ...% (threshold T)' line). The --json line "
    "of score holds no threshold.",
)
@click.option(
    "--save-threshold",
    is_flag=True,
    help="Store the threshold of --threshold / --threshold-from as threshold.json beside "
    "the model (in an experiment directory, or beside the embedder file), so that later "
    "calls need no threshold option. Without audio files only stores it.",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, cuda, cuda:1, or auto (CUDA when available).",
)
@json_option('{"score": s, "threshold": t, "same": true|false}')
def verify(
    files: tuple[Path, ...],
    model: Path,
    threshold: float | None,
    threshold_from: Path | None,
    save_threshold: bool,
    device: str,
    as_json: bool,
) -> None:
    """Score one pair of recordings and decide: same speaker or not.

    Prints the cosine score of the embeddings of A.wav and B.wav and 'same speaker' when it
    is >= the threshold, else 'different speakers' (exit status 0 either way). The threshold
    is --threshold, else --threshold-from, else the one stored beside the model (see
    --save-threshold); with none of these it is an error. For many pairs (a trial list),
    embed them with 'dino-speech embed' and score with 'dino-speech score', which also
    prints the EER threshold to store here.

    \b
    Examples:
        dino-speech verify --model exp/dino a.wav b.wav --threshold 0.42
        dino-speech score --trials data/test/trials --embeddings exp/emb/test > score.log
        dino-speech verify --model exp/dino --threshold-from score.log --save-threshold
        dino-speech verify --model exp/dino a.wav b.wav
    """
    from dino_speech.eval import threshold_store as store
    from dino_speech.loading import resolve_model_path
    from dino_speech.models.stats import BUILTIN_MODELS

    if len(files) not in ((0, 2) if save_threshold else (2,)):
        raise click.UsageError(f"give two audio files (A.wav B.wav), got {len(files)}")
    if threshold is not None and threshold_from is not None:
        raise click.UsageError("give --threshold or --threshold-from, not both")
    if str(model) not in BUILTIN_MODELS or Path(model).exists():
        resolve_model_path(model)  # a missing model is named before anything else
    if threshold_from is not None:
        chosen = store.threshold_from_file(threshold_from)
    elif threshold is not None:
        chosen = store.StoredThreshold(threshold, source="--threshold")
    elif save_threshold:
        raise click.UsageError("--save-threshold needs --threshold or --threshold-from")
    else:
        where = store.threshold_path(model)
        chosen = store.load_threshold(model)
        if chosen is None:
            raise click.UsageError(
                f"no threshold: give --threshold T or --threshold-from FILE (none is stored "
                f"{f'in {where}' if where is not None else 'for a built-in model'}; "
                f"'dino-speech score' prints the EER threshold)"
            )
        chosen = replace(chosen, source=str(where))
    if save_threshold:
        out = store.save_threshold(
            model, chosen.threshold, chosen.eer, chosen.trials, chosen.source
        )
        click.echo(f"stored threshold {chosen.threshold:.4f} -> {out}")
    if not files:
        return

    from dino_speech.embedder import Embedder
    from dino_speech.runtime import resolve_device

    embedder = Embedder.from_pretrained(model, device=resolve_device(device))
    result = embedder.verify(files[0], files[1], threshold=chosen.threshold)
    decision = "same speaker" if result.same else "different speakers"
    relation = ">=" if result.same else "<"
    origin = f"EER {chosen.eer:.3f}%, " if chosen.eer is not None else ""
    click.echo(
        f"{decision}: score {result.score:.4f} {relation} threshold {result.threshold:.4f} "
        f"({origin}{chosen.source})"
    )
    if as_json:
        click.echo(
            json.dumps({"score": result.score, "threshold": result.threshold, "same": result.same})
        )
