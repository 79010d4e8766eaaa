"""Embedding throughput: batched, length-bucketed extraction vs one file at a time.

Generates ``--files`` wav files of 3-10 s (16 kHz), builds ECAPA-TDNN c512 with random weights
(speed does not depend on the weights), and embeds the files in this process with
``Embedder.embed_files`` (length-bucketed batches, its default cap on padded audio per batch for
the device), with the same call and a 480 s cap (``--batch-size`` utterances per batch, the GPU
setting), and with a loop of ``Embedder.embed_file``. Prints the real-time factor (processing
time / audio duration) of each, the ratios, and the largest difference between the embeddings.

    python bench/embed.py [--files 200] [--batch-size 16] [--num-workers 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dino_speech.audio import write_audio
from dino_speech.config import FbankConfig
from dino_speech.embedder import Embedder
from dino_speech.models.registry import build_encoder


def make_files(out_dir: Path, count: int, seed: int) -> tuple[list[Path], float]:
    rng = np.random.default_rng(seed)
    paths, total = [], 0.0
    for i in range(count):
        seconds = rng.uniform(3.0, 10.0)
        n = int(16000 * seconds)
        t = np.arange(n) / 16000
        f0 = rng.uniform(90, 250)
        wave = 0.2 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        wave += 0.02 * rng.normal(size=n)
        paths.append(out_dir / f"utt{i:04d}.wav")
        write_audio(paths[-1], wave, 16000)
        total += n / 16000
    return paths, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--encoder", default="ecapa_c512")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    encoder = build_encoder(args.encoder)
    default = Embedder(encoder, FbankConfig(), device=args.device)
    wide = Embedder(encoder, FbankConfig(), device=args.device, max_batch_seconds=480.0)
    with tempfile.TemporaryDirectory() as tmp:
        paths, audio_seconds = make_files(Path(tmp), args.files, args.seed)
        default.embed_files(paths[:4], batch_size=args.batch_size, progress=False)  # warm-up

        def batched(embedder: Embedder) -> tuple[np.ndarray, float]:
            t0 = time.perf_counter()
            out = embedder.embed_files(
                paths, batch_size=args.batch_size, num_workers=args.num_workers, progress=False
            )
            return out, time.perf_counter() - t0

        X_default, t_default = batched(default)
        X_wide, t_wide = batched(wide)
        t0 = time.perf_counter()
        single = np.stack([default.embed_file(p) for p in paths])
        t_single = time.perf_counter() - t0

    diff = max(float(np.abs(X - single).max()) for X in (X_default, X_wide))
    print(
        f"{args.files} files, {audio_seconds:.0f} s of audio, {args.encoder} on {args.device}, "
        f"{torch.get_num_threads()} threads, {args.num_workers} loader workers"
    )
    print(f"one file at a time:            {t_single:7.1f} s  RTF {t_single / audio_seconds:.4f}")
    print(
        f"batched, default cap ({default.max_batch_seconds:g} s):  {t_default:7.1f} s  "
        f"RTF {t_default / audio_seconds:.4f}  speed-up {t_single / t_default:.2f}x"
    )
    print(
        f"batched, cap 480 s (batch {args.batch_size}): {t_wide:7.1f} s  "
        f"RTF {t_wide / audio_seconds:.4f}  speed-up {t_single / t_wide:.2f}x"
    )
    print(f"max |batched - single| = {diff:.2e}")


if __name__ == "__main__":
    main()
