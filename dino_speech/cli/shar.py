"""``dino-speech shar``: a cut manifest → Lhotse Shar shards (audio inside, labels kept)."""

from __future__ import annotations

from pathlib import Path

import click

from dino_speech.cli.options import FILE, progress_option, show_progress


@click.command()
@click.option(
    "--cuts",
    required=True,
    type=FILE,
    help="Lhotse cut manifest (.jsonl.gz) whose cuts and audio are packed.",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="New (or empty) folder for cuts.NNNNNN.jsonl.gz + recording.NNNNNN.tar.",
)
@click.option(
    "--shard-size",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Cuts per shard. Training splits whole shards over ranks and loader workers, so "
    "make at least ranks x workers shards.",
)
@click.option(
    "--audio-format",
    type=click.Choice(["flac", "wav"]),
    default="flac",
    show_default=True,
    help="How the audio is stored in the tar files (both lossless for 16-bit audio).",
)
@click.option(
    "--shuffle/--no-shuffle",
    default=True,
    show_default=True,
    help="Shuffle the cuts before packing, so that every shard is a random sample (training "
    "reads a shard front to back, shuffling only within a buffer).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the shuffle.")
@progress_option()
def shar(
    cuts: Path,
    out_dir: Path,
    shard_size: int,
    audio_format: str,
    shuffle: bool,
    seed: int,
    progress: bool | None,
) -> None:
    """Pack a cut manifest and its audio into Lhotse Shar shards for sequential reading.

    Training reads them with data.train_shar=DIR, embedding with --shar-dir DIR; Lhotse
    reads them with CutSet.from_shar(in_dir=DIR). Example:

    \b
        dino-speech shar --cuts data/vox2/voxceleb2_cuts_dev.jsonl.gz --out-dir data/vox2/shar
        dino-speech train dino --config configs/dino_ecapa_c512.yaml --exp-dir exp/dino \\
            data.train_cuts= data.train_shar=data/vox2/shar
    """
    from dino_speech.data.manifests import load_cuts
    from dino_speech.data.shar import write_shar

    shards = write_shar(
        load_cuts(cuts),
        out_dir,
        shard_size=shard_size,
        audio_format=audio_format,
        shuffle=shuffle,
        seed=seed,
        progress=show_progress(progress),
    )
    total = sum(len(s.durations) for s in shards)
    click.echo(f"wrote {total} cuts in {len(shards)} shards -> {out_dir}")
