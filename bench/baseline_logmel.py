"""How hard is the synthetic corpus? A log-Mel statistics baseline against trait oracles.

Scores the test trials of the synthetic corpus (``dino-speech prepare synthetic``) with

* **baseline**: mean + std over frames of 40 log-Mel bands (``torchaudio.compliance.kaldi.fbank``,
  25 ms / 10 ms, no dither) and cosine similarity; also with the train-split mean embedding
  removed first (the usual cosine-scoring normalisation);
* **oracle (speaker traits)**: the speakers' true trait vectors from ``speaker_traits.json``
  (log F0, F0 range, log formant scale, tilt, breathiness, log jitter, shimmer, log rate),
  standardised over speakers, cosine similarity;
* **oracle (utterance traits)**: the same traits as realised in each utterance (after the
  emotion and per-utterance variation, from ``utterance_traits.json``), standardised as above,
  and whitened by their within-speaker covariance on the train split (WCCN);
* optionally (``--probe-steps N``) a **supervised probe**: a tiny TDNN trained for N steps to
  classify the train speakers from mean-normalised log-Mels, cosine on its embeddings — proof
  that a learnt model can hear the speakers through the channels.

The corpus is designed so that the baseline stays at or above 15 % EER (channels, noise and
levels break global spectral statistics) while the oracles are far better (< 5 %). Without
``--corpus-dir`` the default corpus is generated once into a cache folder and reused.

    python bench/baseline_logmel.py [--corpus-dir D] [--seed 0] [--probe-steps 300] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchaudio
from lhotse import CutSet
from tqdm import tqdm

from data_prep.synthetic import CORPUS, prepare_synthetic
from dino_speech.audio import read_cut
from dino_speech.data.manifests import cut_label, load_cuts, manifest_path
from dino_speech.eval.verification import compute_eer, compute_min_dcf, read_trials

BASELINE_MIN_EER = 15.0
ORACLE_MAX_EER = 5.0
LOG_TRAITS = {"f0_mean_hz", "formant_scale", "jitter_pct", "speaking_rate"}


def default_corpus_dir(seed: int) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "dino_speech" / f"synthetic-default-seed{seed}"


def logmel_stats(cuts: CutSet, desc: str) -> dict[str, np.ndarray]:
    """``{cut id: (80,) mean and std of 40 log-Mel bands}``."""
    out = {}
    for cut in tqdm(cuts, desc=desc, unit="utt", leave=False):
        wave = read_cut(cut, 16000) * 32768.0  # Kaldi's int16 scale
        fb = torchaudio.compliance.kaldi.fbank(
            wave[None], num_mel_bins=40, dither=0.0, sample_frequency=16000
        )
        out[cut.id] = torch.cat([fb.mean(0), fb.std(0)]).numpy().astype(np.float64)
    return out


def cosine(emb: dict[str, np.ndarray], enroll: list[str], test: list[str]) -> np.ndarray:
    unit = {k: v / max(np.linalg.norm(v), 1e-12) for k, v in emb.items()}
    return np.array([unit[a] @ unit[b] for a, b in zip(enroll, test, strict=True)])


def trait_vector(values: dict[str, float], names: list[str]) -> np.ndarray:
    return np.array([np.log(values[n]) if n in LOG_TRAITS else values[n] for n in names])


def within_speaker_whitening(
    realised: dict, names: list[str], train_ids: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``(W, mean)`` with ``W`` whitening the within-speaker covariance of the train utterances'
    realised traits (WCCN), so emotion and per-utterance variation weigh less than identity."""
    vecs = {u: trait_vector(realised[u]["voice"], names) for u in train_ids}
    by_spk: dict[str, list[np.ndarray]] = {}
    for u, v in vecs.items():
        by_spk.setdefault(realised[u]["speaker"], []).append(v)
    within = np.concatenate([np.array(vs) - np.mean(vs, axis=0) for vs in by_spk.values()])
    cov = within.T @ within / len(within) + 1e-9 * np.eye(len(names))
    evals, evecs = np.linalg.eigh(cov)
    return evecs @ np.diag(evals**-0.5) @ evecs.T, np.mean(list(vecs.values()), axis=0)


def probe_embeddings(
    train_cuts: CutSet, test_cuts: CutSet, steps: int, seed: int
) -> dict[str, np.ndarray]:
    """Train a tiny TDNN speaker classifier on the train split; embed the test split."""
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    def feats(cuts: CutSet, desc: str) -> dict[str, torch.Tensor]:
        out = {}
        for cut in tqdm(cuts, desc=desc, unit="utt", leave=False):
            fb = torchaudio.compliance.kaldi.fbank(
                read_cut(cut, 16000)[None] * 32768.0, num_mel_bins=40, dither=0.0
            )
            out[cut.id] = fb - fb.mean(0)  # mean normalisation removes the stationary channel
        return out

    train, test = feats(train_cuts, "probe features (train)"), feats(test_cuts, "(test)")
    speaker = {c.id: cut_label(c, "speaker") for c in train_cuts}
    classes = {s: i for i, s in enumerate(sorted(set(speaker.values())))}
    ids = sorted(train)

    class Tdnn(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            for c_in, k, d in ((40, 5, 1), (128, 3, 2), (128, 3, 3)):
                layers += [nn.Conv1d(c_in, 128, k, dilation=d, padding=d * (k // 2))]
                layers += [nn.ReLU(), nn.BatchNorm1d(128)]
            self.body = nn.Sequential(*layers)
            self.embed = nn.Linear(256, 64)
            self.classify = nn.Linear(64, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 40) -> (B, 64)
            h = self.body(x.transpose(1, 2))
            return self.embed(torch.cat([h.mean(2), h.std(2)], 1))

    model = Tdnn(len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crop = 200  # frames (2 s)
    for _ in tqdm(range(steps), desc="probe training", unit="step", leave=False):
        batch = rng.integers(len(ids), size=64)
        chunks = []
        for i in batch:
            f = train[ids[i]]
            start = int(rng.integers(max(1, len(f) - crop)))
            chunks.append(f[start : start + crop])
        length = min(len(c) for c in chunks)
        x = torch.stack([c[:length] for c in chunks])
        y = torch.tensor([classes[speaker[ids[i]]] for i in batch])
        loss = nn.functional.cross_entropy(model.classify(model(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return {k: model(f[None])[0].numpy().astype(np.float64) for k, f in test.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus-dir",
        type=Path,
        default=None,
        help="a prepared synthetic corpus [default: generate the default one "
        "into ~/.cache/dino_speech/synthetic-default-seed<SEED>]",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of a generated corpus and probe")
    parser.add_argument("--num-jobs", type=int, default=1, help="processes for generation")
    parser.add_argument(
        "--probe-steps",
        type=int,
        default=0,
        help="also train the supervised TDNN probe for this many steps (0: off)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless baseline EER >= {BASELINE_MIN_EER} %% and "
        f"speaker-trait oracle EER < {ORACLE_MAX_EER} %%",
    )
    args = parser.parse_args(argv)

    corpus = args.corpus_dir or default_corpus_dir(args.seed)
    record_path = corpus / "corpus.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if args.corpus_dir is None or not record.get("complete"):
        # the cached default corpus is regenerated when the generator has changed since
        print(prepare_synthetic(corpus, seed=args.seed, num_jobs=args.num_jobs), file=sys.stderr)
        record = json.loads(record_path.read_text())

    test_cuts = load_cuts(manifest_path(corpus, CORPUS, "cuts", "test"))
    train_cuts = load_cuts(manifest_path(corpus, CORPUS, "cuts", "train"))
    trials = read_trials(corpus / "test" / "trials")
    labels = trials.labels
    session = {c.id: cut_label(c, "session") for c in test_cuts}
    speaker = {c.id: cut_label(c, "speaker") for c in test_cuts}
    cross = np.array(
        [session[a] != session[b] for a, b in zip(trials.enroll, trials.test, strict=True)]
    )
    hard = ~labels | cross  # non-targets and cross-session targets

    results: dict[str, dict[str, float]] = {}

    def report(name: str, scores: np.ndarray, seconds: float) -> None:
        results[name] = {
            "eer": compute_eer(scores, labels),
            "min_dcf_0.05": compute_min_dcf(scores, labels, 0.05),
            "eer_cross_session": compute_eer(scores[hard], labels[hard]),
            "seconds": seconds,
        }

    t0 = time.perf_counter()
    test_stats = logmel_stats(test_cuts, "log-Mel stats (test)")
    report(
        "baseline: log-Mel mean+std, cosine",
        cosine(test_stats, trials.enroll, trials.test),
        time.perf_counter() - t0,
    )
    t0 = time.perf_counter()
    train_mean = np.mean(list(logmel_stats(train_cuts, "log-Mel stats (train)").values()), axis=0)
    centred = {k: v - train_mean for k, v in test_stats.items()}
    report(
        "baseline, train mean removed",
        cosine(centred, trials.enroll, trials.test),
        time.perf_counter() - t0 + results["baseline: log-Mel mean+std, cosine"]["seconds"],
    )

    truth = json.loads((corpus / "speaker_traits.json").read_text())
    names = truth["trait_names"]
    spk_vecs = {s: trait_vector(v["traits"], names) for s, v in truth["speakers"].items()}
    table = np.array(list(spk_vecs.values()))
    mean, std = table.mean(0), table.std(0) + 1e-12
    oracle = {u: (spk_vecs[speaker[u]] - mean) / std for u in speaker}
    report("oracle: true speaker traits", cosine(oracle, trials.enroll, trials.test), 0.0)
    realised = json.loads((corpus / "utterance_traits.json").read_text())
    utt_vecs = {u: trait_vector(realised[u]["voice"], names) for u in speaker}
    oracle_utt = {u: (v - mean) / std for u, v in utt_vecs.items()}
    report("oracle: realised utterance traits", cosine(oracle_utt, trials.enroll, trials.test), 0.0)
    whiten, centre = within_speaker_whitening(realised, names, {c.id for c in train_cuts})
    oracle_wccn = {u: whiten @ (v - centre) for u, v in utt_vecs.items()}
    report(
        "oracle: realised traits, within-spk whitened",
        cosine(oracle_wccn, trials.enroll, trials.test),
        0.0,
    )

    if args.probe_steps > 0:
        t0 = time.perf_counter()
        emb = probe_embeddings(train_cuts, test_cuts, args.probe_steps, args.seed)
        report(
            f"supervised TDNN probe ({args.probe_steps} steps)",
            cosine(emb, trials.enroll, trials.test),
            time.perf_counter() - t0,
        )

    s = record["settings"]
    print(
        f"synthetic corpus {corpus}: {s['num_speakers']} speakers x {s['utts_per_speaker']} "
        f"utts, {s['duration_range'][0]:g}-{s['duration_range'][1]:g} s, seed {s['seed']}; "
        f"{len(trials)} test trials ({trials.num_targets} target, "
        f"{int((labels & cross).sum())} of them cross-session)"
    )
    print(f"{'system':44s} {'EER %':>7s} {'minDCF.05':>9s} {'x-sess EER %':>12s} {'time s':>7s}")
    for name, r in results.items():
        print(
            f"{name:44s} {r['eer']:7.2f} {r['min_dcf_0.05']:9.3f} "
            f"{r['eer_cross_session']:12.2f} {r['seconds']:7.1f}"
        )
    base = results["baseline: log-Mel mean+std, cosine"]["eer"]
    orc = results["oracle: true speaker traits"]["eer"]
    ok = base >= BASELINE_MIN_EER and orc < ORACLE_MAX_EER
    print(
        f"baseline EER {base:.2f} % (must be >= {BASELINE_MIN_EER:g}), speaker-trait oracle "
        f"EER {orc:.2f} % (must be < {ORACLE_MAX_EER:g}): {'OK' if ok else 'FAIL'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"corpus": str(corpus), "settings": s, "results": results}, indent=2) + "\n"
        )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
