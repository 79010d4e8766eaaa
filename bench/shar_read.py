"""Reading training audio: one file per utterance against Lhotse Shar shards of the same audio.

Both sides are the real DINO training loaders on the same data config (default crops: 2 x 4 s
global + 4 x 2 s local per utterance; no augmentation or fbank, only reading and cropping):

* **files**: :func:`~dino_speech.data.sampling.make_crop_loader` over the cut manifest: every
  utterance is its own file, opened and read (a segment) with soundfile;
* **shar**: :func:`~dino_speech.data.shar_loader.make_shar_loader` over shards written by
  :func:`~dino_speech.data.shar.write_shar` (``--audio-format``, default flac): each worker
  reads its shards front to back and decodes the audio from memory.

It writes its own corpus with the synthetic generator (about ``--utterances`` of 2-6 s,
16 kHz, 16-bit wav) to a temporary folder (or ``--corpus-dir``, kept for reuse), packs it
into shards of ``--shard-size``, and for each ``--workers`` count times whole epochs of each
loader, alternating, ``--repeats`` times; it prints utterances per second (median and range) and the
ratio shar / files. Worker start-up is included (an epoch starts its workers).

By default the files stay in the page cache (a small corpus, just written), so this measures
the per-file cost of opening plus decoding, not a disk; ``--cold`` evicts this corpus's files
(only those) from the page cache before every epoch, so each epoch reads them from storage::

    python bench/shar_read.py                          # 600 utterances, workers 2 and 8
    python bench/shar_read.py --workers 0 2 8 --repeats 5 --audio-format wav
    python bench/shar_read.py --cold                   # from storage, not the page cache
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from dino_speech.config import DataConfig
from dino_speech.data.manifests import load_cuts
from dino_speech.data.sampling import make_crop_loader
from dino_speech.data.shar import write_shar
from dino_speech.data.shar_loader import make_shar_loader


def evict(paths: list[Path]) -> None:
    """Drop ``paths`` from the page cache (``posix_fadvise DONTNEED``; only these files, no
    root needed), so that the next epoch reads them from the disk again."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def epoch_rate(kind: str, cfg: DataConfig, epoch: int) -> float:
    """Utterances per second over one epoch of loader ``kind`` (``files`` or ``shar``)."""
    if kind == "files":
        loader, sampler = make_crop_loader(cfg, seed=0)
    else:
        loader, sampler = make_shar_loader(cfg, seed=0)
    sampler.set_epoch(epoch)
    start = time.perf_counter()
    count = sum(len(batch["cut_ids"]) for batch in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=600)
    parser.add_argument("--corpus-dir", type=Path, default=None)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--audio-format", choices=["flac", "wav"], default="flac")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--cold", action="store_true", help="evict the audio from the page cache before each epoch"
    )
    args = parser.parse_args()

    from data_prep.synthetic import prepare_synthetic

    tmp = tempfile.TemporaryDirectory()
    root = args.corpus_dir or Path(tmp.name)
    cuts_path = root / "synthetic_cuts_train.jsonl.gz"
    if not cuts_path.is_file():
        speakers = max(2, args.utterances // 20) + 2  # two held out as the test part
        prepare_synthetic(
            root, num_speakers=speakers, utts_per_speaker=20, duration_range=(2.0, 6.0),
            num_test_speakers=2, seed=0, num_jobs=2,
        )  # fmt: skip
    cuts = load_cuts(cuts_path)
    shar_dir = root / f"shar_{args.audio_format}_{args.shard_size}"
    if not shar_dir.is_dir():
        write_shar(cuts, shar_dir, shard_size=args.shard_size, audio_format=args.audio_format)
    audio_files = {
        "files": [Path(c.recording.sources[0].source) for c in cuts],
        "shar": sorted(shar_dir.iterdir()),
    }
    hours = sum(c.duration for c in cuts) / 3600
    print(
        f"{len(cuts)} utterances ({hours:.2f} h) at {cuts[0].sampling_rate} Hz; shards of "
        f"{args.shard_size} ({args.audio_format}); batch {args.batch_size}; "
        f"{'cold' if args.cold else 'warm'} page cache; "
        f"{platform.processor() or platform.machine()}"
    )
    print("| workers | files utt/s | shar utt/s | shar / files |")
    print("|---|---|---|---|")
    for workers in args.workers:
        base = {"batch_size": args.batch_size, "num_workers": workers, "drop_last": False}
        cfgs = {
            "files": DataConfig(train_cuts=str(cuts_path), **base),
            "shar": DataConfig(train_shar=str(shar_dir), **base),
        }
        rates: dict[str, list[float]] = {"files": [], "shar": []}
        ratios = []
        for epoch in range(args.repeats):
            for kind in ("files", "shar"):
                if args.cold:
                    evict(audio_files[kind])
                rates[kind].append(epoch_rate(kind, cfgs[kind], epoch))
            ratios.append(rates["shar"][-1] / rates["files"][-1])
        cells = [
            f"{statistics.median(r):.0f} ({min(r):.0f}-{max(r):.0f})"
            for r in (rates["files"], rates["shar"])
        ]
        spread = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"| {workers} | {cells[0]} | {cells[1]} | {spread} |", flush=True)


if __name__ == "__main__":
    main()
