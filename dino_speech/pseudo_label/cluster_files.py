"""Cluster an embedding file into pseudo-speaker labels on disk (``pseudo-label cluster``).

The same :func:`~dino_speech.pseudo_label.cluster.cluster_embeddings` the pseudo-labeling loop
runs, on embeddings read from a file: writes ``OUT/utt2cluster`` (``utt cluster`` lines, left-out
utterances absent) and ``OUT/summary.json``; with true speakers (from cuts or an ``utt2spk``)
the summary also holds NMI and purity.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from dino_speech.config import ClusterConfig
from dino_speech.errors import DataError
from dino_speech.file_io import atomic_path, atomic_write_text

__all__ = ["cluster_embedding_file", "format_cluster_summary", "utterance_labels"]


def cluster_embedding_file(
    embeddings: str | Path,
    cfg: ClusterConfig,
    out_dir: str | Path,
    *,
    speakers: dict[str, str] | None = None,
    sessions: dict[str, str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Read ``embeddings`` (scp / ark / npz), cluster them with ``cfg``, write the labels and
    the summary into ``out_dir``; returns the summary.

    ``speakers``: ``{utt: speaker}`` for NMI / purity over the utterances it names.
    ``sessions``: ``{utt: session}`` for ``cfg.aggregate == "session"``.
    """
    from dino_speech.embedding_io import read_embeddings
    from dino_speech.pseudo_label.cluster import cluster_embeddings
    from dino_speech.pseudo_label.quality import cluster_quality

    started = time.perf_counter()
    ids, X = read_embeddings(embeddings)
    read_s = time.perf_counter() - started
    session_list = None if sessions is None else [sessions.get(u) for u in ids]
    labels = cluster_embeddings(X, cfg, sessions=session_list, progress=progress)
    cluster_s = time.perf_counter() - started - read_s
    del X

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kept = labels >= 0
    sizes = np.bincount(labels[kept]) if kept.any() else np.zeros(0, dtype=np.int64)
    with atomic_path(out / "utt2cluster") as tmp, tmp.open("w", encoding="utf-8") as f:
        f.writelines(f"{u} {c}\n" for u, c in zip(ids, labels.tolist(), strict=True) if c >= 0)

    summary: dict[str, Any] = {
        "embeddings": str(embeddings),
        "utterances": len(ids),
        "clusters": int(sizes.size),
        "kept": int(kept.sum()),
        "kept_fraction": float(kept.mean()),
        "cluster_size": _size_stats(sizes),
        "seconds": {"read": round(read_s, 2), "cluster": round(cluster_s, 2)},
        "config": dataclasses.asdict(cfg),
    }
    if speakers is not None:
        known = [i for i, u in enumerate(ids) if u in speakers]
        if not known:
            raise DataError("none of the embedded utterances has a true speaker to score on")
        quality = cluster_quality(labels[known], [speakers[ids[i]] for i in known])
        summary.update(
            nmi=quality["nmi"],
            purity=quality["purity"],
            speakers=quality["speakers"],
            scored_utterances=len(known),
        )
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def utterance_labels(
    cuts: str | Path | None = None, kaldi_list: str | Path | None = None, key: str = "speaker"
) -> dict[str, str] | None:
    """``{utt: label}`` from Lhotse cuts (``custom[key]``: the speaker, the session) or a
    Kaldi-style list (``utt2spk``, ``utt2session``); None when neither is given."""
    if kaldi_list is not None:
        from dino_speech.data.manifests import read_kaldi_list

        return read_kaldi_list(kaldi_list)
    if cuts is None:
        return None
    from dino_speech.data.manifests import cut_label, load_cuts

    found = {c.id: cut_label(c, key) for c in load_cuts(cuts)}
    named = {u: s for u, s in found.items() if s is not None}
    if not named:
        raise DataError(f"{cuts}: no cut has a '{key}' label")
    return named


def format_cluster_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    size, seconds = summary["cluster_size"], summary["seconds"]
    lines = [
        f"utterances: {summary['utterances']}  clusters: {summary['clusters']}  "
        f"kept: {summary['kept']} ({100 * summary['kept_fraction']:.1f}%)",
        f"cluster size: min {size['min']}  median {size['median']}  max {size['max']}",
        f"time: read {seconds['read']:.1f} s, cluster {seconds['cluster']:.1f} s",
    ]
    if "nmi" in summary:
        lines.append(
            f"against {summary['speakers']} true speakers ({summary['scored_utterances']} "
            f"utterances): NMI {summary['nmi']:.4f}  purity {summary['purity']:.4f}"
        )
    return "\n".join(lines)


def _size_stats(sizes: np.ndarray) -> dict[str, float | int | None]:
    if sizes.size == 0:
        return {"min": None, "median": None, "max": None, "mean": None}
    return {
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "max": int(sizes.max()),
        "mean": round(float(sizes.mean()), 2),
    }
