"""Pseudo-label clustering at VoxCeleb2 size, by simulation: `dino-speech pseudo-label cluster`
on embeddings shaped like a DINO model's of VoxCeleb2 dev.

Embeddings (``--dim``, default 256): per speaker a random direction, per session (video) an
offset, per utterance noise, sizes as VoxCeleb2 dev (about 24 sessions and 180 utterances per
speaker, 6,000 speakers at 1.09 M utterances); the offset and noise scales (1.05 and 1.6 of the
speaker vector) give cosine scoring an EER of about 4 %, like a DINO model (the script
measures and prints it on 2 * 10^5 random trials). Written as a Kaldi ark/scp with an utt2spk,
then clustered by the command in a child process with a config's settings; prints the time,
the child's peak memory, kept %, clusters, NMI and purity for each size, and whether they meet
the targets (kept >= 70 %, NMI and purity >= 0.9, <= 30 min, <= 12 GB).

    python bench/pseudo_label_scale.py --sizes 100000 1090000 \\
        --config configs/pseudo_label_ecapa_c512.yaml --work-dir /tmp/pl_scale
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dino_speech.embedding_io import EmbeddingWriter
from dino_speech.eval.verification import compute_eer

UTTS_PER_SPEAKER = 182  # VoxCeleb2 dev: 1,092,009 utterances of 5,994 speakers
SESSIONS_PER_SPEAKER = 24
TARGETS = {"kept_fraction": 0.7, "nmi": 0.9, "purity": 0.9, "minutes": 30.0, "peak_gb": 12.0}


def simulate(
    n: int, dim: int = 256, session: float = 1.05, noise: float = 1.6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """About ``n`` embeddings ``(N, dim)`` float32 and their speakers ``(N,)``."""
    rng = np.random.default_rng(seed)
    speakers = max(2, round(n / UTTS_PER_SPEAKER))
    per_session = UTTS_PER_SPEAKER / SESSIONS_PER_SPEAKER
    counts = rng.poisson(per_session - 1, size=(speakers, SESSIONS_PER_SPEAKER)) + 1
    total = int(counts.sum())
    session_of = np.repeat(np.arange(counts.size), counts.reshape(-1))
    speaker_of = session_of // SESSIONS_PER_SPEAKER
    X = np.empty((total, dim), dtype=np.float32)
    means = rng.standard_normal((speakers, dim), dtype=np.float32)
    offsets = session * rng.standard_normal((counts.size, dim), dtype=np.float32)
    for start in range(0, total, 1 << 16):  # in chunks: no float64 copy of the whole array
        rows = slice(start, min(total, start + (1 << 16)))
        X[rows] = means[speaker_of[rows]] + offsets[session_of[rows]]
        X[rows] += noise * rng.standard_normal((X[rows].shape[0], dim), dtype=np.float32)
    return X, speaker_of


def cosine_eer(X: np.ndarray, speakers: np.ndarray, trials: int = 200_000, seed: int = 1) -> float:
    """EER (%) of cosine scoring on ``trials`` target and ``trials`` random pairs."""
    rng = np.random.default_rng(seed)
    order = np.argsort(speakers, kind="stable")
    first = np.searchsorted(speakers[order], np.arange(speakers.max() + 2))
    a = rng.integers(0, len(X), trials)
    s = speakers[a]
    same = order[first[s] + (rng.random(trials) * (first[s + 1] - first[s])).astype(np.int64)]
    other = rng.integers(0, len(X), trials)
    keep_t, keep_n = same != a, speakers[other] != s
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    target = np.einsum("ij,ij->i", Z[a[keep_t]], Z[same[keep_t]])
    nontarget = np.einsum("ij,ij->i", Z[a[keep_n]], Z[other[keep_n]])
    labels = np.r_[np.ones(target.size), np.zeros(nontarget.size)]
    return compute_eer(np.r_[target, nontarget], labels)


def write_corpus(work: Path, X: np.ndarray, speakers: np.ndarray) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    ids = [f"spk{s:05d}-utt{i:07d}" for i, s in enumerate(speakers.tolist())]
    with EmbeddingWriter(work) as writer:
        for utt, row in zip(ids, X, strict=True):
            writer.add(utt, row)
    utt2spk = work / "utt2spk"
    utt2spk.write_text(
        "".join(f"{u} spk{s:05d}\n" for u, s in zip(ids, speakers.tolist(), strict=True))
    )
    return writer.scp, utt2spk


def run_cluster(scp: Path, utt2spk: Path, config: Path, out: Path) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (GB) of the child and its summary.json."""
    cmd = [sys.executable, "-m", "dino_speech.cli.main", "pseudo-label", "cluster"]
    cmd += ["--embeddings", str(scp), "--config", str(config), "--out-dir", str(out)]
    cmd += ["--utt2spk", str(utt2spk), "--no-progress"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:  # ru_maxrss is the largest child so far: no new maximum
        peak_kb = before
    summary = json.loads((out / "summary.json").read_text())
    return seconds, peak_kb / 1e6, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_090_000])
    parser.add_argument("--config", type=Path, default=Path("configs/pseudo_label_ecapa_c512.yaml"))
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/pl_scale"))
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rows = []
    for n in args.sizes:  # the largest size last: ru_maxrss of children only grows
        X, speakers = simulate(n, args.dim, seed=args.seed)
        eer = cosine_eer(X, speakers)
        work = args.work_dir / f"n{len(X)}"
        print(f"{len(X)} embeddings of {speakers.max() + 1} speakers, cosine EER {eer:.2f}%")
        scp, utt2spk = write_corpus(work, X, speakers)
        del X
        seconds, peak_gb, summary = run_cluster(scp, utt2spk, args.config, work / "clusters")
        rows.append((summary, seconds, peak_gb, eer))

    print(f"\nconfig: {args.config}")
    print("| utterances | speakers | EER % | time | peak RSS | kept % | clusters | NMI | purity |")
    print("|---|---|---|---|---|---|---|---|---|")
    for summary, seconds, peak_gb, eer in rows:
        print(
            f"| {summary['utterances']} | {summary['speakers']} | {eer:.2f} "
            f"| {seconds / 60:.1f} min | {peak_gb:.2f} GB | {100 * summary['kept_fraction']:.1f} "
            f"| {summary['clusters']} "
            f"| {summary['nmi']:.3f} | {summary['purity']:.3f} |"
        )
    summary, seconds, peak_gb, _ = rows[-1]
    met = {
        "kept_fraction": summary["kept_fraction"] >= TARGETS["kept_fraction"],
        "nmi": summary["nmi"] >= TARGETS["nmi"],
        "purity": summary["purity"] >= TARGETS["purity"],
        "minutes": seconds / 60 <= TARGETS["minutes"],
        "peak_gb": peak_gb <= TARGETS["peak_gb"],
    }
    print(
        "targets at the largest size: "
        + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items())
    )


if __name__ == "__main__":
    main()
