"""DINO input pipeline throughput: our device-batched pipeline against the per-sample way.

Both pipelines produce the same thing for the same config (default DINO data config: 2 x 4 s
global + 4 x 2 s local crops per utterance, reverb p=0.45, MUSAN noise p=0.7, 80-dim fbank
with sliding mean norm), from the same sampler, with the same number of loader workers:

* **ours**: loader workers only read and crop (:func:`make_crop_loader`); the main process
  moves the crops to ``--device`` and augments (:class:`WaveAugment`, noise and RIRs from
  banks on the device) and computes fbank (:class:`Fbank`) a whole crop group at a time;
* **ours, in the workers** (``data.augment_on: workers``, the CPU default; CPU only): each
  worker reads and crops its batch and makes its views with the same batched code
  (:class:`~dino_speech.train.crop_batches.CropBatchSource`); the batch arrives as features;
* **per-sample** (the usual way, e.g. WeSpeaker's or hyperion's loaders): each loader worker
  reads and crops, then for every crop on its own reads the noise file(s) it draws (1, or 3-7
  for babble) and an RIR file, mixes, convolves and computes fbank, and returns features.
  The maths is the same library code (``add_noise_at_snr``, ``reverberate``, ``Fbank``) called
  per crop, so the difference is only where and how batched the work runs. With
  ``--baseline-fbank torchaudio`` the baseline computes fbank as WeSpeaker's loader does, with
  ``torchaudio.compliance.kaldi.fbank`` per crop.

On CPU, mind the threads: with the loader workers busy, a main process running more OpenMP
threads than there are free cores spins and slows down many times (``--threads``, default 1).

``--wespeaker-config`` measures at WeSpeaker's DINO settings instead: 2 x 3 s global + 4 x 2 s
local crops, 80-bin fbank with utterance mean normalisation, SpecAugment on every crop; the
per-sample baseline applies *one* of reverberation or additive noise to every crop (p = 1, as
WeSpeaker's loader) with ``torchaudio.compliance.kaldi.fbank``, ours reverb and noise each with
p = 0.5 (the same expected work). ``--repeats`` runs every pipeline several times, alternating,
and prints the median and range of each ratio.

It prints crops per second for each and the ratio, timed from the start of each loader
(worker start-up included) to its ``--batches``-th batch; for ours, the one-off fill of the
noise banks is timed on its own. Without
``--corpus`` it writes its own small corpus (speech-like utterances, MUSAN-like noise, music
and speech files, RIRs) to a temporary folder, so it runs on a bare clone::

    python bench/data_pipeline.py                     # CPU, generated data
    python bench/data_pipeline.py --device cuda       # augmentation + fbank on the GPU
    python bench/data_pipeline.py --corpus /path/to/fsdd/recordings   # real 8 kHz speech
    python bench/data_pipeline.py --wespeaker-config --corpus DIR --repeats 3   # issue 14
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torchaudio.compliance.kaldi as kaldi
from lhotse import CutSet, Recording
from lhotse.cut import Cut
from torch.utils.data import DataLoader
from tqdm import tqdm

from dino_speech.audio import AudioError, read_cut, write_audio
from dino_speech.config import AugmentConfig, CropConfig, DataConfig, FbankConfig
from dino_speech.data import synthetic_noise
from dino_speech.data.augment import SpecAugment, WaveAugment, add_noise_at_snr, reverberate
from dino_speech.data.features import Fbank, sliding_mean_norm, utterance_mean_norm
from dino_speech.data.multicrop import MultiCropDataset
from dino_speech.data.noise_bank import musan_category, prepare_rir, stable_seed
from dino_speech.data.sampling import CropSampler, make_crop_loader, seed_worker
from dino_speech.train.crop_batches import CropBatchSource
from dino_speech.train.distributed import DistContext

SR = 16000


def write_corpus(
    root: Path,
    utterances: int,
    seed: int,
    *,
    noise_per_category: int = 12,
    noise_seconds: tuple[float, float] = (5.0, 20.0),
    rirs: int = 20,
) -> tuple[CutSet, CutSet, CutSet]:
    """Speech-like training utterances of 2-8 s, ``noise_per_category`` MUSAN-like noise,
    music and speech files each of ``noise_seconds`` (5-20 s) and ``rirs`` RIRs of 0.5-1 s,
    as wav files under ``root`` and their cuts."""
    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)

    def write(name: str, wave: torch.Tensor, category: str | None = None) -> Cut:
        path = root / f"{name}.wav"
        write_audio(path, 0.9 * wave / wave.abs().max().clamp(min=1e-6), SR)
        cut = Recording.from_file(path, recording_id=name).to_cut()
        if category:
            cut.custom = {"category": category}
        return cut

    train = [
        write(f"utt{i:04d}", synthetic_noise.speech_like(1, int(rng.uniform(2, 8) * SR), SR, g)[0])
        for i in tqdm(range(utterances), desc="utterances", leave=False)
    ]
    makers = {
        "noise": synthetic_noise.coloured_noise,
        "music": synthetic_noise.music_like,
        "speech": synthetic_noise.speech_like,
    }
    noise = [
        write(f"{cat}-{i:03d}", make(1, int(rng.uniform(*noise_seconds) * SR), SR, g)[0], cat)
        for cat, make in makers.items()
        for i in range(noise_per_category)
    ]
    rir_cuts = [
        write(
            f"rir-{i:03d}",
            synthetic_noise.synthetic_rirs(1, SR, (0.2, 0.9), rng.uniform(0.5, 1), g)[0],
        )
        for i in range(rirs)
    ]
    return CutSet.from_cuts(train), CutSet.from_cuts(noise), CutSet.from_cuts(rir_cuts)


def corpus_from_folder(folder: Path, limit: int) -> CutSet:
    """The first ``limit`` wav/flac files under ``folder`` (recursively) as cuts."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    paths = paths[:limit]
    if not paths:
        sys.exit(f"no .wav or .flac files under {folder}")
    return CutSet.from_cuts(Recording.from_file(p).to_cut() for p in paths)


class PerSampleDataset(MultiCropDataset):
    """The baseline: read, crop, then augment and fbank every crop alone, in the worker."""

    def __init__(
        self,
        cfg: DataConfig,
        noise_cuts: CutSet,
        rir_cuts: CutSet,
        seed: int,
        fbank: str,
        one_of: bool = False,
    ) -> None:
        super().__init__(cfg.crops, cfg.features.sample_rate, seed=seed)
        self.cfg = cfg
        self.one_of = one_of  # WeSpeaker: exactly one of reverb / noise per crop
        self.spec = SpecAugment(cfg.augment) if cfg.augment.specaug_prob > 0 else None
        self.noise = {}
        for cut in noise_cuts:
            self.noise.setdefault(musan_category(cut), []).append(cut)
        self.rirs = list(rir_cuts)
        self.fbank = Fbank(cfg.features) if fbank == "ours" else self._torchaudio_fbank
        self.rng = random.Random(seed)  # reseeded per cut: workers must not share one sequence

    def _torchaudio_fbank(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """WeSpeaker's way: ``torchaudio.compliance.kaldi.fbank`` per crop, then mean norm."""
        f = self.cfg.features
        feats = kaldi.fbank(
            x * f.wave_scale,
            num_mel_bins=f.num_mel_bins,
            frame_length=f.frame_length_ms,
            frame_shift=f.frame_shift_ms,
            dither=0.0,
            low_freq=f.low_freq,
            high_freq=f.high_freq,
            sample_frequency=f.sample_rate,
        )[None]
        lengths = torch.tensor([feats.shape[1]])
        if f.mean_norm == "sliding":
            return sliding_mean_norm(feats, lengths, f.mean_norm_window), None
        return utterance_mean_norm(feats, lengths), None

    def _read_window(self, cut: Cut, samples: int) -> torch.Tensor:
        seconds = samples / self.sample_rate
        offset = self.rng.uniform(0.0, max(0.0, cut.duration - seconds))
        wave = read_cut(
            cut.truncate(offset=offset, duration=min(seconds, cut.duration)), self.sample_rate
        )
        return wave.repeat(-(-samples // wave.numel()))[:samples]

    def augment(self, crop: torch.Tensor) -> torch.Tensor:
        a, rng = self.cfg.augment, self.rng
        x = crop[None]
        reverb = rng.random() < (0.5 if self.one_of else a.reverb_prob)
        noisy = (not reverb) if self.one_of else rng.random() < a.noise_prob
        if reverb:
            rir = read_cut(rng.choice(self.rirs), self.sample_rate)
            rir = prepare_rir(rir, int(a.rir_max_seconds * self.sample_rate))
            if rir is not None:
                x = reverberate(x, rir[None])
        if noisy:
            category = rng.choice(sorted(self.noise))
            if category == "speech":
                talkers = rng.randint(*a.babble_speakers)
                parts = [
                    self._read_window(rng.choice(self.noise["speech"]), x.shape[1])
                    for _ in range(talkers)
                ]
                noise = sum(p / p.square().mean().sqrt().clamp(min=1e-5) for p in parts)[None]
                low, high = a.babble_snr
            else:
                noise = self._read_window(rng.choice(self.noise[category]), x.shape[1])[None]
                low, high = a.noise_snr if category == "noise" else a.music_snr
            x = add_noise_at_snr(x, noise, torch.tensor([rng.uniform(low, high)]))
        return x

    def __getitem__(self, cuts: CutSet) -> dict[str, Any]:
        feats: dict[str, list[torch.Tensor]] = {"global": [], "local": []}
        for cut in cuts:
            try:
                wave = read_cut(cut, self.sample_rate)
            except AudioError:
                continue
            glob, loc = self.crop_cut(cut, wave)
            self.rng.seed(stable_seed(self.seed, self.epoch, cut.id, "augment"))
            for name, crops in (("global", glob), ("local", loc)):
                for crop in crops:
                    f = self.fbank(self.augment(crop))[0]
                    feats[name].append((f if self.spec is None else self.spec(f))[0])
        return {name: torch.stack(f) for name, f in feats.items()}


def run_ours(
    cfg: DataConfig, cuts: CutSet, noise: CutSet, rirs: CutSet, args: argparse.Namespace
) -> dict:
    device = torch.device(args.device)
    loader, sampler = make_crop_loader(cfg, cuts, seed=args.seed)
    augment = WaveAugment(cfg.augment, SR, noise, rirs, seed=args.seed)
    fbank = Fbank(cfg.features).to(device)
    spec = SpecAugment(cfg.augment) if cfg.augment.specaug_prob > 0 else None
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for category in augment.bank.categories:  # the one-off bank fill, timed on its own
        augment.bank.noise_rows(category, 0, device)
    augment.bank.rir_rows(0, device)
    bank_seconds = time.perf_counter() - t0

    def process(batch: dict[str, Any]) -> int:
        crops = 0
        for name in ("global", "local"):
            waves = batch[name].to(device, non_blocking=True)
            flat = waves.reshape(-1, waves.shape[-1])
            feats, _ = fbank(augment(flat, gen), batch[f"{name}_lengths"].reshape(-1).to(device))
            if spec is not None:
                feats = spec(feats, gen)
            crops += feats.shape[0]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return crops

    return timed(loader, process, "ours", args.batches) | {"bank_fill_s": bank_seconds}


def run_ours_in_workers(
    cfg: DataConfig, cuts: CutSet, noise: CutSet, rirs: CutSet, args: argparse.Namespace
) -> dict:
    """The training loader of ``data.augment_on: workers``: batches arrive as features."""
    with tempfile.TemporaryDirectory() as tmp:
        noise_path, rir_path = Path(tmp) / "noise.jsonl.gz", Path(tmp) / "rirs.jsonl.gz"
        noise.to_file(noise_path)
        rirs.to_file(rir_path)
        cfg = dataclasses.replace(
            cfg, augment_on="workers", musan_cuts=str(noise_path), rir_cuts=str(rir_path)
        )
        ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
        source = CropBatchSource(cfg, seed=args.seed, ctx=ctx, gen=torch.Generator(), cuts=cuts)
        source.set_epoch(0)

        def process(batch: dict[str, Any]) -> int:
            views = source.prepare(batch, ctx.device)
            return views.teacher[0].shape[0] + sum(c[0].shape[0] for c in views.student[1:])

        return timed(source.batches(), process, "ours (workers)", args.batches)


def run_per_sample(
    cfg: DataConfig, cuts: CutSet, noise: CutSet, rirs: CutSet, args: argparse.Namespace
) -> dict:
    dataset = PerSampleDataset(
        cfg, noise, rirs, args.seed, args.baseline_fbank, one_of=args.wespeaker_config
    )
    sampler = CropSampler(cuts, batch_size=cfg.batch_size, seed=args.seed, dataset=dataset)
    loader = DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
    )
    return timed(
        loader,
        lambda batch: batch["global"].shape[0] + batch["local"].shape[0],
        "per-sample",
        args.batches,
    )


def timed(
    loader: Iterable[dict[str, Any]],
    process: Callable[[dict[str, Any]], int],
    name: str,
    batches: int,
) -> dict:
    """Crops per second over the first ``batches`` batches, from the loader's start (worker
    start-up included, so that batches prefetched during it are paid for), and ``steady``:
    the rate after the first batch (one-off start-up such as noise-bank fills left out)."""
    crops, first, first_crops = 0, 0.0, 0
    start = time.perf_counter()
    with tqdm(total=batches, desc=name, unit="batch", leave=False) as bar:
        for i, batch in enumerate(loader):
            crops += process(batch)
            bar.update()
            if i == 0:
                first, first_crops = time.perf_counter() - start, crops
            if i + 1 == batches:
                break
    seconds = time.perf_counter() - start
    steady = (crops - first_crops) / max(seconds - first, 1e-9)
    return {
        "crops": crops,
        "seconds": seconds,
        "rate": crops / seconds,
        "steady": steady,
        "first_batch_s": first,
    }


def machine(device: str) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    text = (
        f"{platform.processor() or platform.machine()}, {cpus} CPUs usable (of {os.cpu_count()}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, load average {load}"
    )
    if device.startswith("cuda"):
        text += f", device {torch.cuda.get_device_name(torch.device(device))}"
    return text + f"; augmentation + fbank device: {device}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of wav files to use as utterances")
    parser.add_argument(
        "--utterances", type=int, default=700, help="utterances (generated or read)"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per batch")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per pipeline")
    parser.add_argument("--workers", type=int, default=2, help="loader workers for both pipelines")
    parser.add_argument("--device", default="cpu", help="device for our augmentation and fbank")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the main process (ours computes there; the per-sample workers "
        "use 1 each, as DataLoader sets). More threads than free cores make OpenMP spin.",
    )
    parser.add_argument(
        "--baseline-fbank",
        choices=["ours", "torchaudio"],
        default="ours",
        help="fbank of the per-sample baseline: ours (same maths, so only where and how batched "
        "the work runs differs) or torchaudio.compliance.kaldi.fbank (as WeSpeaker's loader)",
    )
    parser.add_argument(
        "--wespeaker-config",
        action="store_true",
        help="WeSpeaker's DINO data settings (2 x 3 s + 4 x 2 s crops, one of reverb/noise per "
        "crop at p=1 in the baseline, p=0.5 each in ours, torchaudio fbank in the baseline, "
        "SpecAugment, utterance mean norm)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs of every pipeline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.wespeaker_config:
        args.baseline_fbank = "torchaudio"
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda given but CUDA is not available")
    print("machine:", machine(args.device))
    pipelines = {"per-sample": run_per_sample, "ours": run_ours}
    if args.device == "cpu" and args.workers > 0:
        pipelines["ours (workers)"] = run_ours_in_workers
    results: dict[str, list[dict]] = {name: [] for name in pipelines}
    with tempfile.TemporaryDirectory() as tmp:
        generated = 0 if args.corpus is not None else args.utterances
        train, noise, rirs = write_corpus(Path(tmp), generated, args.seed)
        if args.corpus is not None:
            train = corpus_from_folder(args.corpus, args.utterances)
        needed = args.batch_size * args.batches
        if len(train) < needed:
            sys.exit(f"need at least {needed} utterances for {args.batches} batches")
        cfg = data_config(args)
        crops_per_utt = cfg.crops.num_global + cfg.crops.num_local
        a = cfg.augment
        print(
            f"config: {len(train)} utterances, batch {args.batch_size} x {crops_per_utt} crops "
            f"({cfg.crops.num_global} x {cfg.crops.global_seconds:g} s + {cfg.crops.num_local} x "
            f"{cfg.crops.local_seconds:g} s), reverb p={a.reverb_prob}, noise "
            f"p={a.noise_prob}{' (baseline: one of them, p=1)' if args.wespeaker_config else ''}, "
            f"SpecAugment p={a.specaug_prob}, {cfg.features.num_mel_bins} mel bins, "
            f"{cfg.features.mean_norm} mean norm, {args.workers} workers"
        )
        for _ in range(args.repeats):
            for name, run in pipelines.items():
                results[name].append(run(cfg, train, noise, rirs, args))
    labels = {
        "per-sample": f"per-sample: workers augment + fbank ({args.baseline_fbank}) each crop",
        "ours": f"ours: workers crop, batches on {args.device} in the main process",
        "ours (workers)": "ours: workers crop + batched augment/fbank (augment_on=workers)",
    }
    for name, runs in results.items():
        for result in runs:
            extra = (
                f", bank fill {result['bank_fill_s']:.2f} s once" if "bank_fill_s" in result else ""
            )
            print(
                f"{labels[name]:64s} {result['rate']:8.1f} crops/s ({result['crops']} crops in "
                f"{result['seconds']:.2f} s; first batch after {result['first_batch_s']:.2f} s"
                f"{extra}; after it {result['steady']:.1f} crops/s)"
            )
    for name in pipelines:
        if name == "per-sample":
            continue
        for key, what in (("rate", "from the start"), ("steady", "after the first batch")):
            ratios = [
                o[key] / b[key] for o, b in zip(results[name], results["per-sample"], strict=True)
            ]
            print(
                f"ratio {name} / per-sample, {what}: median {statistics.median(ratios):.2f}x "
                f"(range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} runs)"
            )


def data_config(args: argparse.Namespace) -> DataConfig:
    """The default DINO data config, or WeSpeaker's (``--wespeaker-config``)."""
    if not args.wespeaker_config:
        return DataConfig(batch_size=args.batch_size, num_workers=args.workers)
    return DataConfig(
        batch_size=args.batch_size,
        num_workers=args.workers,
        crops=CropConfig(num_global=2, global_seconds=3.0, num_local=4, local_seconds=2.0),
        augment=AugmentConfig(noise_prob=0.5, reverb_prob=0.5, specaug_prob=1.0),
        features=FbankConfig(num_mel_bins=80, mean_norm="utterance"),
    )


if __name__ == "__main__":
    main()
