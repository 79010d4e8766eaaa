"""The whole DINO training loop on a CPU, data included: steps/s with each input pipeline.

One :class:`~dino_speech.train.trainer.DinoTrainer` per variant, from a config (default
``configs/mini.yaml``: ecapa_tiny, 2 x 2 s + 2 x 1 s crops, batch 32), the same cuts and the
same noise/RIR files; each variant times ``--steps`` training steps (the trainer's own step:
views → student/teacher → loss → update → EMA) after ``--warmup`` untimed ones (worker start-up
and noise-bank fill fall there):

* **per-sample**: the usual loader (WeSpeaker's, hyperion's): each worker augments and computes
  fbank for every crop on its own (``bench/data_pipeline.py``'s ``PerSampleDataset``, same maths);
* **device**: ``data.augment_on: device`` — workers crop, the training process augments and
  computes fbank batched before each step;
* **workers**: ``data.augment_on: workers`` (the CPU default) — each worker makes the views of
  its whole batch with the same batched code; the training process only trains.

The variants run alternately ``--repeats`` times in one process; it prints each run and the
median and range of the ratios to per-sample::

    python bench/train_loop.py                          # generated speech-like corpus
    python bench/train_loop.py --corpus DIR --workers 1 2 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dino_speech.config import DinoExperimentConfig, apply_overrides, load_config
from dino_speech.data.sampling import CropSampler, seed_worker
from dino_speech.data.views import CropViews
from dino_speech.train.trainer import DinoTrainer

sys.path.insert(0, str(Path(__file__).parent))
import data_pipeline as dp  # noqa: E402


class PerSampleSource:
    """Stands in for the trainer's batch source: batches of per-crop features from
    ``PerSampleDataset``, rearranged into the crop-major views the step takes."""

    def __init__(self, cfg: DinoExperimentConfig, cuts: Any, noise: Any, rirs: Any) -> None:
        data = cfg.data
        self.dataset = dp.PerSampleDataset(data, noise, rirs, cfg.train.seed, "ours")
        self.sampler = CropSampler(
            cuts, batch_size=data.batch_size, seed=cfg.train.seed, dataset=self.dataset
        )
        self.loader = DataLoader(
            self.dataset,
            sampler=self.sampler,
            batch_size=None,
            num_workers=data.num_workers,
            worker_init_fn=seed_worker,
        )
        self.crops = data.crops
        self.batch_size = data.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def batches(self):
        return iter(self.loader)

    def prepare(self, batch: dict[str, Any], device: torch.device) -> CropViews:
        def crop_major(feats: torch.Tensor, num: int) -> torch.Tensor:  # (B·n, T, F) cut-major
            b = feats.shape[0] // num
            return feats.reshape(b, num, *feats.shape[1:]).transpose(0, 1).flatten(0, 1)

        teacher = (crop_major(batch["global"], self.crops.num_global).to(device), None)
        student = [teacher]
        if self.crops.num_local:
            student.append((crop_major(batch["local"], self.crops.num_local).to(device), None))
        return CropViews(teacher, student, self.crops.num_global, self.batch_size)


def run(
    cfg: DinoExperimentConfig,
    variant: str,
    cuts: Any,
    noise: Any,
    rirs: Any,
    args: argparse.Namespace,
    work: Path,
) -> float:
    """Training steps per second of one variant."""
    mode = "device" if variant == "per-sample" else variant
    cfg = apply_overrides(cfg, [f"data.augment_on={mode}"])
    trainer = DinoTrainer(cfg, work / f"{variant}-{time.monotonic_ns()}", progress=False)
    if variant == "per-sample":
        trainer.data = PerSampleSource(cfg, cuts, noise, rirs)
    source = trainer.data
    epoch, done, start = 0, 0, 0.0
    total = args.warmup + args.steps
    try:
        while done < total:
            source.set_epoch(epoch)
            for batch in source.batches():
                if done == args.warmup:
                    start = time.perf_counter()
                trainer.step_fn(source.prepare(batch, trainer.device), done)
                done += 1
                if done == total:
                    break
            epoch += 1
    finally:
        trainer._close()
    return args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/mini.yaml"))
    parser.add_argument("--corpus", type=Path, help="folder of wav/flac utterances")
    parser.add_argument("--utterances", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    base = load_config(DinoExperimentConfig, args.config)
    print("machine:", dp.machine("cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generated = 0 if args.corpus is not None else args.utterances
        train, noise, rirs = dp.write_corpus(root, generated, args.seed)
        if args.corpus is not None:
            train = dp.corpus_from_folder(args.corpus, args.utterances)
        paths = {name: root / f"{name}.jsonl.gz" for name in ("train", "noise", "rirs")}
        for name, cuts in (("train", train), ("noise", noise), ("rirs", rirs)):
            cuts.to_file(paths[name])
        a = base.data.augment
        print(
            f"config {args.config}: {base.model.name}, batch {base.data.batch_size}, crops "
            f"{base.data.crops.num_global} x {base.data.crops.global_seconds:g} s + "
            f"{base.data.crops.num_local} x {base.data.crops.local_seconds:g} s, reverb "
            f"p={a.reverb_prob}, noise p={a.noise_prob}, {len(train)} utterances, "
            f"{args.warmup}+{args.steps} steps per run, torch threads {torch.get_num_threads()}"
        )
        variants = ("per-sample", "device", "workers")
        for workers in args.workers:
            cfg = apply_overrides(
                base,
                [
                    f"data.train_cuts={paths['train']}",
                    f"data.musan_cuts={paths['noise']}",
                    f"data.rir_cuts={paths['rirs']}",
                    f"data.num_workers={workers}",
                    "train.device=cpu",
                    "train.precision=fp32",
                    "train.tensorboard=false",
                    "train.max_minutes=null",
                ],
            )
            rates: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.repeats):
                for v in variants:
                    rates[v].append(run(cfg, v, train, noise, rirs, args, root / "exp"))
                    print(f"  {workers} worker(s), {v:10s} {rates[v][-1]:.2f} steps/s", flush=True)
            for v in variants[1:]:
                ratios = [o / b for o, b in zip(rates[v], rates["per-sample"], strict=True)]
                print(
                    f"{workers} worker(s): {v} / per-sample steps/s: median "
                    f"{statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}x;"
                    f" {statistics.median(rates[v]):.2f} vs "
                    f"{statistics.median(rates['per-sample']):.2f} steps/s)"
                )


if __name__ == "__main__":
    main()
