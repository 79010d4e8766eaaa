"""Evidence that DINO learns: speaker-verification EER on the synthetic corpus of
(1) the mini recipe's encoder after a short CPU training run, (2) the same encoder untrained
(the run's initial weights), (3) the log-Mel statistics baseline of ``bench/baseline_logmel.py``
(mean and std of 40 log-Mel bands), plain and with the train-set mean removed.

    python bench/dino_mini_evidence.py --corpus data/synthetic --exp-dir exp/mini

Without ``--corpus``'s manifests it first generates the corpus (``dino-speech prepare
synthetic`` defaults); without ``EXP/embedder.pt`` (or with ``--retrain``) it trains
``configs/mini.yaml`` in EXP first (extra ``KEY=VALUE`` arguments override the config). All
embeddings are of whole test utterances, scored by cosine on ``CORPUS/test/trials``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dino_speech.audio import read_audio
from dino_speech.config import DinoExperimentConfig, FbankConfig, load_config
from dino_speech.data.features import Fbank
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.eval.verification import compute_eer, read_trials, score_trials
from dino_speech.loading import load_embedder
from dino_speech.models.registry import build_encoder

REPO = Path(__file__).resolve().parents[1]


@torch.no_grad()
def embed_utterances(
    encoder: torch.nn.Module, features: FbankConfig, wav_scp: dict[str, str]
) -> dict[str, np.ndarray]:
    """Whole-utterance embeddings of ``encoder`` (in eval mode) on ``features``."""
    fbank = Fbank(features)
    out = {}
    for utt, path in tqdm(sorted(wav_scp.items()), desc="embedding", unit="utt", leave=False):
        feats, _ = fbank(read_audio(path, features.sample_rate).unsqueeze(0))
        out[utt] = encoder(feats)[0].float().numpy()
    return out


def logmel_baselines(corpus: Path) -> dict[str, dict[str, np.ndarray]]:
    """The two log-Mel statistics baselines of ``bench/baseline_logmel.py``."""
    sys.path.insert(0, str(REPO / "bench"))
    from baseline_logmel import logmel_stats

    test = logmel_stats(load_cuts(corpus / "synthetic_cuts_test.jsonl.gz"), "log-Mel (test)")
    train = logmel_stats(load_cuts(corpus / "synthetic_cuts_train.jsonl.gz"), "log-Mel (train)")
    mean = np.mean(list(train.values()), axis=0)
    return {
        "log-Mel mean+std": test,
        "log-Mel, train mean removed": {k: v - mean for k, v in test.items()},
    }


def eer_of(embeddings: dict[str, np.ndarray], trials_path: Path) -> float:
    trials = read_trials(trials_path)
    return compute_eer(score_trials(embeddings, trials), trials.labels)


def ensure_corpus(corpus: Path) -> None:
    if (corpus / "synthetic_cuts_train.jsonl.gz").is_file():
        return
    from data_prep.synthetic import prepare_synthetic

    print(prepare_synthetic(corpus))


def train(cfg: DinoExperimentConfig, exp_dir: Path) -> tuple[int, int, float]:
    from dino_speech.train.trainer import train_dino

    start = time.monotonic()
    result = train_dino(cfg, exp_dir)
    minutes = (time.monotonic() - start) / 60
    print(result.summary())
    return result.steps, result.epochs_done, minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="synthetic corpus directory")
    parser.add_argument("--exp-dir", type=Path, required=True, help="experiment directory")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "mini.yaml")
    parser.add_argument("--retrain", action="store_true", help="train even if EXP has a model")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides")
    args = parser.parse_args()

    ensure_corpus(args.corpus)
    overrides = [f"data.train_cuts={args.corpus / 'synthetic_cuts_train.jsonl.gz'}"]
    cfg = load_config(DinoExperimentConfig, args.config, overrides + args.overrides)
    trained_info = "existing model"
    if args.retrain or not (args.exp_dir / "embedder.pt").is_file():
        if args.retrain and args.exp_dir.exists():
            import shutil

            shutil.rmtree(args.exp_dir)
        steps, epochs, minutes = train(cfg, args.exp_dir)
        trained_info = f"{steps} steps, {epochs} epochs, {minutes:.1f} min"
    trained, features, meta = load_embedder(args.exp_dir)
    if "step" in meta:
        trained_info += f" (embedder from step {meta['step']})"

    torch.manual_seed(cfg.train.seed)  # the trainer builds the encoder right after this seed
    untrained = build_encoder(
        cfg.model.name, feat_dim=features.num_mel_bins, **cfg.model.kwargs
    ).eval()

    wav_scp = read_kaldi_list(args.corpus / "test" / "wav.scp")
    trials = args.corpus / "test" / "trials"
    rows = [
        ("DINO, trained", eer_of(embed_utterances(trained, features, wav_scp), trials)),
        ("same encoder, untrained", eer_of(embed_utterances(untrained, features, wav_scp), trials)),
    ]
    rows += [(name, eer_of(emb, trials)) for name, emb in logmel_baselines(args.corpus).items()]
    print(f"\n{cfg.model.name} on {args.corpus} ({len(wav_scp)} test utterances); {trained_info}")
    for name, eer in rows:
        print(f"  {name:<28} EER {eer:6.2f}%")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
