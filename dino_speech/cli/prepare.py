"""``dino-speech prepare CORPUS``: corpus folder → Lhotse manifests and Kaldi-style lists."""

from __future__ import annotations

from pathlib import Path

import click


def _float_pair(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("expected two numbers 'MIN,MAX', e.g. 2,6") from None
    if not 0 < low <= high:
        raise click.BadParameter(f"need 0 < MIN <= MAX, got {value}")
    return low, high


@click.group()
def prepare() -> None:
    """Prepare a corpus: write Lhotse manifests (jsonl.gz) and Kaldi-style lists."""


@prepare.command()
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the wavs, manifests and lists are written.",
)
@click.option(
    "--speakers",
    default=40,
    show_default=True,
    type=click.IntRange(min=4),
    help="Number of speakers (split by speaker into train and test).",
)
@click.option(
    "--utts-per-speaker",
    default=20,
    show_default=True,
    type=click.IntRange(min=2),
    help="Utterances per speaker.",
)
@click.option(
    "--duration-range",
    default="2,6",
    show_default=True,
    callback=_float_pair,
    help="Utterance length range in seconds, 'MIN,MAX'.",
)
@click.option(
    "--test-speakers",
    default=None,
    type=click.IntRange(min=2),
    help="Speakers held out for the test split [default: a quarter, at least 2].",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option(
    "--num-jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Parallel processes generating audio.",
)
def synthetic(
    out_dir: Path,
    speakers: int,
    utts_per_speaker: int,
    duration_range: tuple[float, float],
    test_speakers: int | None,
    seed: int,
    num_jobs: int,
) -> None:
    """Generate the built-in synthetic speech corpus (source-filter voices, no download)."""
    from data_prep.synthetic import prepare_synthetic

    summary = prepare_synthetic(
        out_dir,
        num_speakers=speakers,
        utts_per_speaker=utts_per_speaker,
        duration_range=duration_range,
        num_test_speakers=test_speakers,
        seed=seed,
        num_jobs=num_jobs,
    )
    click.echo(summary)
