"""``dino-speech embed``: audio files → Kaldi ``xvector.ark`` / ``xvector.scp``."""

from __future__ import annotations

from pathlib import Path

import click

from dino_speech.cli.options import FILE, model_option, progress_option, show_progress
from dino_speech.provenance import finished, request, write_record


@click.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@model_option(required=False)
@click.option(
    "--wav-scp",
    type=FILE,
    multiple=True,
    help="Kaldi wav.scp of 'UTT PATH' lines; relative paths are relative to the "
    "working directory, as in Kaldi. Repeat it to embed several lists into one output.",
)
@click.option(
    "--cuts",
    type=FILE,
    multiple=True,
    help="Lhotse cut manifest (.jsonl.gz); ids are the cut ids. Repeatable like --wav-scp.",
)
@click.option(
    "--shar-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Lhotse Shar shards (dino-speech shar): audio read sequentially, one shard at a "
    "time; --shard and torchrun split whole shards.",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes OUT/xvector.ark and OUT/xvector.scp (kaldiio/Kaldi readable).",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="cpu, cuda, cuda:1, or auto (CUDA when available). Under torchrun each "
    "process uses cuda:LOCAL_RANK.",
)
@click.option(
    "--batch-size",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Utterances (or windows of long ones) per encoder batch; batches are length-bucketed.",
)
@click.option(
    "--num-workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="DataLoader processes reading and resampling audio.",
)
@click.option(
    "--chunk-seconds",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Longer audio is embedded in windows of this length; their mean is the embedding.",
)
@click.option(
    "--chunk-overlap",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Minimum overlap of consecutive windows, seconds.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16 autocast for the encoder (CUDA, and CPUs with native bf16).",
)
@click.option(
    "--layer",
    type=click.Choice(["embedding", "pooled"]),
    default="embedding",
    show_default=True,
    help="embedding: the model's output; pooled: the pooled statistics its last layer reads "
    "(often better for a self-supervised model such as a DINO teacher).",
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Embed only the I-th of N contiguous blocks of the list (0-based) into "
    "OUT/shards/; merge afterwards with --merge N. Under torchrun the shards come "
    "from RANK/WORLD_SIZE and rank 0 merges automatically.",
)
@click.option(
    "--merge",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Do not embed: merge OUT/shards/xvector.{0..N-1}-of-N into OUT/xvector.*.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Skip unreadable/empty/too short audio (listed in OUT/skipped) instead of "
    "stopping at the first bad file.",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Embed a random sample of N of the listed utterances (seeded by --seed; all of "
    "them when the list is shorter), e.g. an AS-norm cohort. Not with --shar-dir.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the --sample draw.")
@click.option(
    "--force",
    is_flag=True,
    help="Embed again even when OUT/embed.json says the same model already embedded the "
    "same lists with the same settings.",
)
@progress_option()
def embed(
    files: tuple[Path, ...],
    model: Path | None,
    wav_scp: tuple[Path, ...],
    cuts: tuple[Path, ...],
    shar_dir: Path | None,
    out_dir: Path,
    device: str,
    batch_size: int,
    num_workers: int,
    chunk_seconds: float,
    chunk_overlap: float,
    precision: str,
    layer: str,
    shard: str | None,
    merge: int | None,
    skip_bad: bool,
    sample: int | None,
    seed: int,
    force: bool,
    progress: bool | None,
) -> None:
    """Embed audio with a trained model into Kaldi xvector.ark/xvector.scp.

    Give the audio as --wav-scp, --cuts, --shar-dir or file arguments (id = file name).
    A rerun of the same request (model file, lists, settings: OUT/embed.json) does nothing;
    audio files changed in place under an unchanged list are not noticed (use --force).
    Examples:

    \b
        dino-speech embed --model exp/dino --wav-scp data/test/wav.scp --out-dir exp/emb/test
        dino-speech embed --model models/spkrec-ecapa-voxceleb a.wav b.wav --out-dir emb
        dino-speech embed --model exp/dino --shar-dir data/vox2/shar --out-dir exp/emb/vox2
        torchrun --nproc-per-node 8 -m dino_speech.cli.main embed --model exp/dino \\
            --wav-scp data/vox2/wav.scp --out-dir exp/emb/vox2 --device cuda
    """
    from dino_speech import extract

    if merge is not None:
        if model or wav_scp or cuts or shar_dir or files or shard:
            raise click.UsageError("--merge takes only --out-dir")
        summary = extract.merge_shard_dir(out_dir, merge)
        click.echo(f"merged {merge} shards: {summary.written} embeddings -> {summary.scp}")
        if summary.skipped:
            click.echo(
                f"{len(summary.skipped)} files were skipped (listed in {summary.skipped_file})",
                err=True,
            )
        return
    sources = [s for s in (wav_scp or None, cuts or None, shar_dir, files or None) if s]
    if len(sources) != 1:
        raise click.UsageError(
            "give exactly one of --wav-scp, --cuts, --shar-dir or FILE arguments"
        )
    if model is None:
        raise click.UsageError("--model is required")
    if chunk_overlap >= chunk_seconds:
        raise click.BadParameter(
            "must be smaller than --chunk-seconds", param_hint="--chunk-overlap"
        )
    from dino_speech.runtime import torchrun_context

    dist = torchrun_context(device)
    if dist is not None and shard is not None:
        raise click.UsageError("--shard cannot be combined with torchrun (shards come from RANK)")
    shard_spec = extract.parse_shard(shard) if shard is not None else None

    from dino_speech.loading import resolve_model_path

    inputs = [*wav_scp, *cuts, *files, *(sorted(shar_dir.glob("*")) if shar_dir else [])]
    made_from = request(
        {
            "model": str(model.resolve()) if model.exists() else str(model),
            "chunk_seconds": chunk_seconds,
            "chunk_overlap": chunk_overlap,
            "precision": precision,
            "layer": layer,
            "skip_bad": skip_bad,
            "sample": None if sample is None else [sample, seed],
        },
        [*([resolve_model_path(model)] if model.exists() else []), *inputs],
    )
    record = out_dir / "embed.json"
    whole = shard_spec is None
    if whole and not force and finished(record, made_from, [out_dir / "xvector.scp"]) is not None:
        click.echo(
            f"embeddings up to date: {out_dir / 'xvector.scp'} ({record}; --force redoes them)"
        )
        return

    if wav_scp:
        items = _joined([extract.read_wav_scp(p) for p in wav_scp], wav_scp)
    elif cuts:
        items = _joined([extract.items_from_cuts(p) for p in cuts], cuts)
    elif shar_dir is not None:
        if sample is not None:
            raise click.UsageError("--sample needs a list (--wav-scp, --cuts or files)")
        items = extract.SharInput.from_dir(shar_dir)
    else:
        items = extract.items_from_files(files)
    if sample is not None and sample < len(items):
        import random

        chosen = sorted(random.Random(seed).sample(range(len(items)), sample))
        items = [items[i] for i in chosen]

    from dino_speech.embedder import Embedder
    from dino_speech.runtime import resolve_device

    embedder = Embedder.from_pretrained(
        model,
        device=resolve_device(device) if dist is None else dist.device,
        chunk_seconds=chunk_seconds,
        chunk_overlap=chunk_overlap,
        precision=precision,
        layer=layer,
    )
    kwargs = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        skip_bad=skip_bad,
        progress=show_progress(progress) and (dist is None or dist.is_main),
    )
    if whole:
        record.unlink(missing_ok=True)
    if dist is not None:
        summary = extract.extract_under_torchrun(
            embedder, items, out_dir, dist.rank, dist.world_size, **kwargs
        )
        if not dist.is_main:
            return
    else:
        summary = extract.extract_embeddings(embedder, items, out_dir, shard=shard_spec, **kwargs)
    if summary.skipped:
        first = "; ".join(f"{u}: {r}" for u, r in summary.skipped[:3])
        click.echo(
            f"skipped {len(summary.skipped)} bad audio files (listed in "
            f"{summary.skipped_file}): {first}",
            err=True,
        )
    click.echo(
        f"wrote {summary.written} embeddings of dimension {embedder.embed_dim} -> {summary.scp}"
    )
    if whole:
        write_record(
            record,
            made_from,
            model=made_from["settings"]["model"],
            embeddings=str(summary.scp.resolve()),
            written=summary.written,
            skipped=len(summary.skipped),
            dim=embedder.embed_dim,
            layer=layer,
        )
    if shard_spec is not None:
        click.echo(
            f"shard {shard_spec[0]}/{shard_spec[1]} done; when all shards are done run: "
            f"dino-speech embed --merge {shard_spec[1]} --out-dir {out_dir}"
        )


def _joined(lists: list[list[tuple[str, object]]], paths: tuple[Path, ...]) -> list:
    """The items of several lists in order; an id in two of them is a usage error."""
    items = [item for part in lists for item in part]
    if len(lists) > 1:
        seen: dict[str, Path] = {}
        for path, part in zip(paths, lists, strict=True):
            for utt, _ in part:
                if utt in seen:
                    raise click.UsageError(f"utterance {utt} is in both {seen[utt]} and {path}")
                seen[utt] = path
    return items
