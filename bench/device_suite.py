"""One GPU check, one table: DINO training speed, input pipeline, extraction and k-means.

Run it through ``bench/device_suite.sh``, which first checks the packages it needs beyond torch
and installs missing ones from a folder of wheel files (``--wheels DIR``) on a machine without
a package index, then runs this driver. Rows (each measured on its own, warm-up first, CUDA
synchronised around every timed span; one failure is a row with its error, not the end of the
suite):

* ``corpus``: the built-in synthetic speech corpus is generated (``data_prep.synthetic``, no
  download; ``--data-dir`` keeps it for the next run) unless ``--corpus`` names one;
* DINO training, ``ecapa_c512`` and ``resnet34`` at batch 128, 2 x 4 s + 4 x 2 s crops,
  K = 65536, bf16 autocast on CUDA: the trainer's own per-step path (device-side augmentation
  and fbank of :class:`~dino_speech.train.crop_batches.CropBatchSource`, then
  :class:`~dino_speech.train.step.DinoStep`), once fed with **synthetic tensors** already on
  the device and once with **real loader batches** (workers reading and cropping the corpus'
  wav files). The real row's ``real / synthetic`` ratio says whether the loader starves the
  GPU (1.0: it does not). Steps/s, samples/s, achieved TFLOP/s (FLOPs of one step counted by
  ``torch.utils.flop_counter.FlopCounterMode``: matmuls and convolutions, forward and backward,
  divided by the measured step time) and peak memory (``torch.cuda.max_memory_allocated``; on
  a CPU the resident-set high-water mark above the row's start). The real row runs
  ``workers x prefetch_factor`` untimed steps more than the warm-up (3), so that the batches
  the workers queued meanwhile are used up before the clock starts; the corpus is sized so
  that no epoch restarts while timing;
* input pipeline (``bench/data_pipeline.py``): the per-sample loader (workers augment and
  fbank each crop) against ours (workers crop, augmentation + fbank batched on the device);
* embedding extraction (``Embedder.embed_files``, length-bucketed batches) of generated files
  of 3-10 s (``bench/embed.py``), utterances/s and real-time factor, per encoder;
* faiss k-means on the GPU (10^6 x 192 into 10^4 clusters, 20 iterations) when faiss has GPU
  support (``faiss.get_num_gpus() > 0``), else a skipped row.

A total time budget (``--budget-s``, 420 s) skips the rows that have not started once it is
spent. The table is printed and written to ``--out`` (rewritten after every row, so a crash
leaves the rows done); the exit status is 1 when a row failed.

GPU suite (an estimated 5 minutes on one GPU, not yet measured; the budget keeps it under 8).
For a machine with a CUDA GPU, torch and torchaudio but no package index, prepare the wheels
on a machine with one, for the GPU machine's Python (here 3.12)::

    pip download speechbrain lhotse scikit-learn soundfile pyyaml tqdm numpy \\
        --python-version 3.12 --platform manylinux2014_x86_64 --only-binary=:all: -d wheels/
    rm -f wheels/torch-* wheels/torchaudio-* wheels/nvidia_* wheels/triton-*
    # optional, for the k-means row: add faiss-gpu-cu12 to the pip download line

(``pip download`` fetches torch and its CUDA libraries too, gigabytes; they are deleted
because the GPU machine keeps its own torch), carry ``wheels/`` over, then::

    bash bench/device_suite.sh --wheels wheels/ --out device_suite.md

``--data-dir DIR`` keeps the generated data for a second run, ``--rows train,embed`` runs
some groups only, ``--corpus PATH`` trains on real data (a cuts manifest, a folder of
``dino-speech prepare`` manifests or a folder of wav files).

Before that, on any CPU: ``bash bench/device_suite.sh --device cpu --quick`` (tiny models and
sizes, 10-20 s on 2 cores; ``tests/bench/test_device_suite.py`` runs it).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB, MIB = 2**30, 2**20

# What each group of rows imports beyond torch (module names).
NEEDS_DINO = ("yaml", "numpy", "soundfile")  # dino_speech.audio (noise banks)
NEEDS_DATA = ("yaml", "numpy", "soundfile", "tqdm", "lhotse")
NEEDS_EMBED = ("yaml", "numpy", "soundfile", "tqdm")
NEEDS_KMEANS = ("numpy", "faiss", "sklearn", "threadpoolctl", "tqdm")
ENCODER_NEEDS = {"ecapa": ("speechbrain",)}


class Skip(Exception):
    """A row that cannot run here; its message is the reason."""


@dataclass
class Row:
    name: str
    status: str = "ok"
    steps_s: float | None = None
    samples_s: float | None = None
    tflops: float | None = None
    peak: str = ""
    result: str = ""
    notes: str = ""

    def cells(self) -> list[str]:
        def num(x: float | None, fmt: str) -> str:
            return "" if x is None else format(x, fmt)

        return [
            self.name,
            self.status,
            num(self.steps_s, ".3g"),
            num(self.samples_s, ".4g"),
            num(self.tflops, ".3g"),
            self.peak,
            self.result,
            self.notes,
        ]


COLUMNS = [
    "measurement",
    "status",
    "steps/s",
    "samples/s",
    "TFLOP/s",
    "peak memory",
    "result",
    "notes",
]


@dataclass
class Settings:
    """Sizes for one run: the full GPU sizes, or ``--quick``'s tiny ones."""

    encoders: tuple[str, ...]
    batch: int
    out_dim: int
    global_seconds: float
    local_seconds: float
    num_local: int
    warmup: int
    steps: int
    workers: int
    prefetch: int
    pipeline_batch: int
    pipeline_batches: int
    noise_per_category: int
    noise_seconds: tuple[float, float]
    rirs: int
    embed_files: int
    embed_batch: int
    kmeans: tuple[int, int, int, int]  # n, dim, k, iterations
    bank_size: int | None = None  # noise-bank slots per category (None: the config's)
    corpus: dict[str, Any] = field(default_factory=dict)

    @property
    def real_warmup(self) -> int:
        """Untimed steps of the real-loader rows: the warm-up plus the batches the workers
        can have queued meanwhile."""
        return self.warmup + (self.workers * self.prefetch if self.workers else 0)


def make_settings(args: argparse.Namespace, cpus: int) -> Settings:
    workers = args.workers if args.workers is not None else (1 if args.quick else min(8, cpus))
    if args.quick:
        s = Settings(
            encoders=("ecapa_tiny", "resnet_tiny"),
            batch=4,
            out_dim=1024,
            global_seconds=2.0,
            local_seconds=1.0,
            num_local=2,
            warmup=1,
            steps=2,
            workers=workers,
            prefetch=1,
            pipeline_batch=4,
            pipeline_batches=2,
            noise_per_category=1,
            noise_seconds=(3.0, 6.0),
            rirs=4,
            embed_files=6,
            embed_batch=4,
            kmeans=(5000, 32, 50, 5),
            bank_size=4,
        )
    else:
        s = Settings(
            encoders=("ecapa_c512", "resnet34"),
            batch=128,
            out_dim=65536,
            global_seconds=4.0,
            local_seconds=2.0,
            num_local=4,
            warmup=3,
            steps=20,
            workers=workers,
            prefetch=2,
            pipeline_batch=128,
            pipeline_batches=8,
            noise_per_category=12,  # bench/data_pipeline.py's noise and RIRs
            noise_seconds=(5.0, 20.0),
            rirs=20,
            embed_files=400,
            embed_batch=64,
            kmeans=(1_000_000, 192, 10_000, 20),
        )
    for key in ("encoders", "batch", "steps"):
        value = getattr(args, key)
        if value is not None:
            setattr(s, key, tuple(value.split(",")) if key == "encoders" else value)
    # Enough training utterances for the real-loader rows without an epoch restart.
    needed = s.batch * (s.real_warmup + s.steps)
    per_speaker = 6 if args.quick else 25
    s.corpus = {
        "num_speakers": max(8, math.ceil(1.05 * needed / per_speaker) + 2),  # 5% spare
        "utts_per_speaker": per_speaker,
        "duration_range": (1.5, 3.0) if args.quick else (2.0, 6.0),
        "num_test_speakers": 2,
        "seed": 0,
        "num_jobs": 1 if args.quick else max(1, min(cpus, 16)),
    }
    return s


def shrink_banks(augment: Any, s: Settings) -> None:
    """``--quick``: a few noise-bank slots, so that filling the banks takes no time on a CPU."""
    if s.bank_size is not None:
        augment.bank_size = augment.synthetic_bank_size = s.bank_size


def bench_module(name: str) -> ModuleType:
    """``bench/NAME.py`` as a module (``bench`` is no package)."""
    key = f"_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


_IMPORTS: dict[str, str | None] = {}


def import_error(module: str) -> str | None:
    """None when ``module`` imports, else the reason (cached)."""
    if module not in _IMPORTS:
        try:
            importlib.import_module(module)
            _IMPORTS[module] = None
        except Exception as exc:  # a broken install is as unusable as a missing one
            _IMPORTS[module] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    return _IMPORTS[module]


def encoder_needs(name: str) -> tuple[str, ...]:
    return next((v for k, v in ENCODER_NEEDS.items() if name.startswith(k)), ())


class Suite:
    """Runs rows in order, each in its own try/except, under one time budget."""

    def __init__(self, args: argparse.Namespace, header: list[str]) -> None:
        self.args = args
        self.header = header
        self.rows: list[Row] = []
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def run(self, name: str, needs: tuple[str, ...], fn: Callable[[Row], Any]) -> Any:
        """Run ``fn(row)`` (it fills the row and may return a value for later rows)."""
        row = Row(name)
        value = None
        missing = [m for m in dict.fromkeys(needs) if import_error(m) is not None]
        if self.elapsed() > self.args.budget_s:
            row.status = f"skipped: time budget of {self.args.budget_s:g} s spent"
        elif missing:
            reasons = [import_error(m) or "" for m in missing]
            broken = [
                f"{m} ({r})" for m, r in zip(missing, reasons, strict=True) if "No module" not in r
            ]
            absent = [m for m, r in zip(missing, reasons, strict=True) if "No module" in r]
            row.status = "skipped: needs " + ", ".join(
                ([", ".join(absent) + " (not installed)"] if absent else []) + broken
            )
        else:
            print(f"[device-suite {self.elapsed():6.1f} s] {name}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                value = fn(row)
            except Skip as exc:
                row.status = f"skipped: {exc}"
            except Exception as exc:  # one failed row must not end the suite
                traceback.print_exc()
                message = f"{type(exc).__name__}: {exc}".splitlines()[0]
                row.status = "FAILED: " + message[:200]
            row.notes = (
                row.notes + "; " if row.notes else ""
            ) + f"{time.perf_counter() - t0:.1f} s"
            free_memory()
        self.rows.append(row)
        self.write()
        return value

    def table(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for row in self.rows:
            cells = [c.replace("|", "\\|").replace("\n", " ") for c in row.cells()]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def text(self) -> str:
        footer = f"total {self.elapsed():.0f} s (budget {self.args.budget_s:g} s)"
        return "\n".join(["# Device suite", "", *self.header, "", self.table(), "", footer, ""])

    def write(self) -> None:
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(self.text())
        tmp.replace(out)


def free_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class PeakMemory:
    """Peak memory of a span: CUDA's allocator peak, or the CPU's RSS high-water mark above
    the span's start (``VmHWM``, reset through ``/proc/self/clear_refs``)."""

    def __init__(self, device: Any) -> None:
        self.device = device

    def __enter__(self) -> PeakMemory:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.base = bench_module("train_step").rss_reset()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def text(self) -> str:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return f"{torch.cuda.max_memory_allocated(self.device) / GIB:.2f} GiB"
        if self.base is None:
            return "n/a"
        hwm = bench_module("train_step")._status_kb("VmHWM") * 1024
        return f"RSS +{(hwm - self.base) / MIB:.0f} MiB"


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(step: Callable[[int], None], warmup: int, steps: int, device: Any) -> float:
    """Steps per second over ``steps`` calls after ``warmup`` untimed ones."""
    for i in range(warmup):
        step(i)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    sync(device)
    return steps / (time.perf_counter() - t0)


# --------------------------------------------------------------------------- rows


def tensor_source(cfg: Any, *, seed: int, ctx: Any, gen: Any) -> Any:
    """A :class:`~dino_speech.train.crop_batches.CropBatchSource` without its loader: its own
    ``prepare`` (augmentation, fbank, SpecAugment on the device) for synthetic tensors, so that
    those rows need no lhotse (the loader is what imports it)."""
    from dino_speech.data.views import ViewMaker
    from dino_speech.train.crop_batches import CropBatchSource

    class TensorSource(CropBatchSource):
        def __init__(self) -> None:  # CropBatchSource.__init__ less the loader and sampler
            self.cfg, self.ctx, self.gen = cfg, ctx, gen
            self.views = ViewMaker(cfg, seed=seed, device=ctx.device)

    return TensorSource()


class Trainer:
    """Student, teacher, centre, optimiser (``bench/train_step.py``'s parts and config) and the
    trainer's :class:`DinoStep` for one encoder."""

    def __init__(self, encoder: str, s: Settings, device: Any) -> None:
        import torch

        from dino_speech.models.registry import build_encoder
        from dino_speech.ssl.dino import MultiCropModel, build_dino_head
        from dino_speech.train.distributed import DistContext
        from dino_speech.train.step import DinoStep

        ts = bench_module("train_step")
        args = argparse.Namespace(
            encoder=encoder,
            batch=s.batch,
            num_global=2,
            num_local=s.num_local,
            global_seconds=s.global_seconds,
            local_seconds=s.local_seconds,
            mels=80,
            out_dim=s.out_dim,
        )
        self.cfg = ts.make_config(args)
        self.cfg.data.num_workers = s.workers
        self.cfg.data.prefetch_factor = s.prefetch
        shrink_banks(self.cfg.data.augment, s)
        self.device = device
        self.ctx = DistContext(0, 1, 0, device)
        torch.manual_seed(0)
        backbone = build_encoder(encoder, feat_dim=80)
        self.params = sum(p.numel() for p in backbone.parameters())
        student = MultiCropModel(backbone, build_dino_head(backbone.embed_dim, self.cfg.dino))
        self.parts = ts.Parts(self.cfg, student, device)
        p = self.parts
        self.step_fn = DinoStep(
            self.cfg,
            p.student,
            p.teacher,
            p.center,
            p.optimizer,
            p.schedules,
            autocast=device.type == "cuda",
        )
        self.gen = torch.Generator().manual_seed(17)

    def synthetic_batch(self) -> dict[str, Any]:
        import torch

        crops, sr = self.cfg.data.crops, self.cfg.data.features.sample_rate
        g = torch.Generator().manual_seed(0)
        shape_g = (crops.num_global, self.cfg.data.batch_size, int(crops.global_seconds * sr))
        shape_l = (crops.num_local, self.cfg.data.batch_size, int(crops.local_seconds * sr))
        return {
            "global": (0.1 * torch.randn(shape_g, generator=g)).to(self.device),
            "local": (0.1 * torch.randn(shape_l, generator=g)).to(self.device),
        }


def dino_rows(suite: Suite, s: Settings, device: Any, cuts: Any) -> None:
    import torch

    cuda = device.type == "cuda"
    precision = "bf16" if cuda else "fp32"
    for encoder in s.encoders:
        label = f"DINO step {encoder}, batch {s.batch}, {precision}"
        state: dict[str, Any] = {}

        def synthetic(row: Row, encoder: str = encoder, state: dict = state) -> None:
            from torch.utils.flop_counter import FlopCounterMode

            torch.backends.cudnn.benchmark = cuda  # fixed crop sizes, as the trainer sets it
            with PeakMemory(device) as peak:
                trainer = Trainer(encoder, s, device)
                source = tensor_source(trainer.cfg.data, seed=0, ctx=trainer.ctx, gen=trainer.gen)
                batch = trainer.synthetic_batch()

                def step(i: int) -> None:
                    trainer.step_fn(source.prepare(batch, device), i)

                rate = timed_steps(step, s.warmup, s.steps, device)
            counter = FlopCounterMode(display=False)
            with counter:
                step(s.warmup + s.steps)
            flops = counter.get_total_flops()
            state["rate"], state["flops"] = rate, flops
            row.steps_s, row.samples_s = rate, rate * s.batch
            row.tflops = flops * rate / 1e12
            row.peak = peak.text()
            row.result = f"{flops / 1e12:.3g} TFLOP/step"
            row.notes = (
                f"{trainer.params / 1e6:.1f} M encoder params, K={s.out_dim}, crops "
                f"2x{s.global_seconds:g}s+{s.num_local}x{s.local_seconds:g}s, "
                f"{s.warmup}+{s.steps} steps"
            )

        def real(row: Row, encoder: str = encoder, state: dict = state) -> None:
            from dino_speech.train.crop_batches import CropBatchSource

            if cuts is None:
                raise Skip("no corpus (see the corpus row)")
            torch.backends.cudnn.benchmark = cuda
            with PeakMemory(device) as peak:
                trainer = Trainer(encoder, s, device)
                source = CropBatchSource(
                    trainer.cfg.data, seed=0, ctx=trainer.ctx, gen=trainer.gen, cuts=cuts
                )
                restarts = [0]

                def batches() -> Iterator[dict[str, Any]]:
                    epoch = 0
                    while True:
                        source.set_epoch(epoch)
                        yield from source.batches()
                        epoch += 1
                        restarts[0] += 1

                it = batches()

                def step(i: int) -> None:
                    trainer.step_fn(source.prepare(next(it), device), i)

                try:
                    rate = timed_steps(step, s.real_warmup, s.steps, device)
                finally:
                    it.close()  # stops the loader's workers
            row.steps_s, row.samples_s = rate, rate * s.batch
            row.peak = peak.text()
            if "flops" in state:
                row.tflops = state["flops"] * rate / 1e12
                row.result = f"real / synthetic = {rate / state['rate']:.2f}"
            row.notes = f"{s.workers} loader workers, {s.real_warmup}+{s.steps} steps" + (
                f", {restarts[0]} epoch restart(s) (small corpus)" if restarts[0] else ""
            )

        needs = NEEDS_DINO + encoder_needs(encoder)
        suite.run(f"{label}, synthetic tensors on {device.type}", needs, synthetic)
        suite.run(f"{label}, real loader data", needs + NEEDS_DATA, real)


def corpus_row(suite: Suite, s: Settings, args: argparse.Namespace, data_dir: Path) -> Any:
    def run(row: Row) -> Any:
        from dino_speech.data.manifests import load_cuts

        if args.corpus is not None:
            cuts = load_corpus(Path(args.corpus))
            row.notes = f"from {args.corpus}"
        else:
            from data_prep.synthetic import prepare_synthetic

            out = data_dir / "synthetic"
            t0 = time.perf_counter()
            prepare_synthetic(out, **s.corpus)
            cuts = load_cuts(out / "synthetic_cuts_train.jsonl.gz").to_eager()
            row.notes = (
                f"generated in {time.perf_counter() - t0:.1f} s with {s.corpus['num_jobs']} "
                f"job(s) in {out}"
            )
        hours = sum(c.duration for c in cuts) / 3600
        row.result = f"{len(cuts)} training utterances, {hours:.2f} h"
        return cuts

    name = "corpus: " + ("given (--corpus)" if args.corpus else "built-in synthetic")
    return suite.run(name, NEEDS_DATA, run)


def load_corpus(path: Path) -> Any:
    """A cuts manifest, a folder of ``dino-speech prepare`` manifests (the first
    ``*cuts*train*.jsonl.gz``, else ``*cuts*.jsonl.gz``) or a folder of wav files."""
    from lhotse import CutSet, Recording

    from dino_speech.data.manifests import load_cuts

    if path.is_file():
        return load_cuts(path).to_eager()
    if not path.is_dir():
        raise FileNotFoundError(f"--corpus {path}: no such file or folder")
    for pattern in ("*cuts*train*.jsonl.gz", "*cuts*.jsonl.gz"):
        found = sorted(path.glob(pattern))
        if found:
            return load_cuts(found[0]).to_eager()
    wavs = sorted(path.rglob("*.wav"))
    if not wavs:
        raise FileNotFoundError(f"--corpus {path}: no cuts manifest and no .wav files")
    return CutSet.from_cuts(Recording.from_file(p).to_cut() for p in wavs).to_eager()


def pipeline_rows(suite: Suite, s: Settings, device: Any, cuts: Any, data_dir: Path) -> None:
    state: dict[str, Any] = {}

    def setup() -> tuple[Any, Any, Any, argparse.Namespace]:
        from dino_speech.config import DataConfig

        dp = bench_module("data_pipeline")
        if "noise" not in state:
            noise_dir = data_dir / "pipeline_noise"
            if noise_dir.exists():
                shutil.rmtree(noise_dir)
            noise_dir.mkdir(parents=True)
            _, state["noise"], state["rirs"] = dp.write_corpus(
                noise_dir,
                0,
                0,
                noise_per_category=s.noise_per_category,
                noise_seconds=s.noise_seconds,
                rirs=s.rirs,
            )
        cfg = DataConfig(batch_size=s.pipeline_batch, num_workers=s.workers)
        cfg.crops.global_seconds, cfg.crops.local_seconds = s.global_seconds, s.local_seconds
        cfg.crops.num_local = s.num_local
        shrink_banks(cfg.augment, s)
        ns = argparse.Namespace(
            device=str(device),
            seed=0,
            batches=s.pipeline_batches,
            baseline_fbank="ours",
            wespeaker_config=False,
        )
        return dp, cfg, cuts, ns

    def fill(row: Row, result: dict, cfg: Any) -> None:
        crops_per_utt = cfg.crops.num_global + cfg.crops.num_local
        row.samples_s = result["rate"] / crops_per_utt
        row.result = f"{result['rate']:.0f} crops/s"
        row.notes = (
            f"batch {cfg.batch_size}, {result['crops']} crops in {result['seconds']:.1f} s, "
            f"first batch after {result['first_batch_s']:.1f} s, {cfg.num_workers} workers"
        )

    def per_sample(row: Row) -> None:
        if cuts is None:
            raise Skip("no corpus (see the corpus row)")
        dp, cfg, train, ns = setup()
        result = dp.run_per_sample(cfg, train, state["noise"], state["rirs"], ns)
        state["per_sample"] = result["rate"]
        fill(row, result, cfg)
        row.peak = "(in the workers)"

    def ours(row: Row) -> None:
        if cuts is None:
            raise Skip("no corpus (see the corpus row)")
        dp, cfg, train, ns = setup()
        with PeakMemory(device) as peak:
            result = dp.run_ours(cfg, train, state["noise"], state["rirs"], ns)
        fill(row, result, cfg)
        row.peak = peak.text()
        if "per_sample" in state:
            row.result += f", ours / per-sample = {result['rate'] / state['per_sample']:.2f}"
        row.notes += f", noise bank fill {result['bank_fill_s']:.1f} s once"

    suite.run(
        "input pipeline: per-sample loader (workers augment + fbank each crop)",
        NEEDS_DATA,
        per_sample,
    )
    suite.run(
        f"input pipeline: ours (workers crop; augment + fbank batched on {device.type})",
        NEEDS_DATA,
        ours,
    )


def embed_rows(suite: Suite, s: Settings, device: Any, data_dir: Path) -> None:
    cuda = device.type == "cuda"
    workers = min(4, s.workers) if cuda else 0

    for encoder in s.encoders:

        def run(row: Row, encoder: str = encoder) -> None:
            import torch

            from dino_speech.config import FbankConfig
            from dino_speech.embedder import Embedder
            from dino_speech.models.registry import build_encoder

            torch.backends.cudnn.benchmark = False  # lengths vary: no per-shape search
            folder = data_dir / "embed_files"
            if not (folder / "seconds").exists():  # written last: the files are complete
                folder.mkdir(parents=True, exist_ok=True)
                _, seconds = bench_module("embed").make_files(folder, s.embed_files, 0)
                (folder / "seconds").write_text(str(seconds))
            paths = sorted(folder.glob("*.wav"))
            seconds = float((folder / "seconds").read_text())
            torch.manual_seed(0)
            embedder = Embedder(
                build_encoder(encoder),
                FbankConfig(),
                device=device,
                precision="bf16" if cuda else "fp32",
            )
            with PeakMemory(device) as peak:
                embedder.embed_files(paths[:4], batch_size=s.embed_batch, progress=False)
                sync(device)
                t0 = time.perf_counter()
                X = embedder.embed_files(
                    paths, batch_size=s.embed_batch, num_workers=workers, progress=False
                )
                sync(device)
                t = time.perf_counter() - t0
            row.samples_s = len(paths) / t
            row.peak = peak.text()
            row.result = f"{len(paths) / t:.1f} utterances/s, RTF {t / seconds:.5f}"
            row.notes = (
                f"{len(paths)} files of 3-10 s ({seconds:.0f} s), batch <= {s.embed_batch}, "
                f"max {embedder.max_batch_seconds:g} s padded/batch, {workers} workers, "
                f"{'bf16' if cuda else 'fp32'}, output {tuple(X.shape)}"
            )

        precision = "bf16" if cuda else "fp32"
        suite.run(
            f"embedding extraction {encoder}, {precision}",
            NEEDS_EMBED + encoder_needs(encoder),
            run,
        )


def kmeans_row(suite: Suite, s: Settings) -> None:
    n, dim, k, niter = s.kmeans

    def run(row: Row) -> None:
        import faiss
        from sklearn.metrics import normalized_mutual_info_score

        gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        if gpus < 1:
            raise Skip("faiss has no GPU support here (faiss-cpu, or no GPU visible)")
        X, truth = bench_module("cluster").gaussian_mixture(n, dim, k, 0.5, 0)
        km = faiss.Kmeans(
            dim,
            k,
            niter=niter,
            seed=1,
            gpu=True,
            verbose=False,
            min_points_per_centroid=1,
            max_points_per_centroid=10**9,  # no subsampling: cluster all points
        )
        t0 = time.perf_counter()
        km.train(X)
        train_s = time.perf_counter() - t0
        _, labels = km.index.search(X, 1)
        total_s = time.perf_counter() - t0
        nmi = normalized_mutual_info_score(truth, labels[:, 0])
        row.result = (
            f"{train_s:.1f} s for {niter} iterations ({niter / train_s:.2f} it/s; "
            f"{total_s:.1f} s with the assignment)"
        )
        row.peak = "n/a (faiss's own allocator)"
        row.notes = f"{n} x {dim} float32 into k={k}, {gpus} GPU(s), NMI {nmi:.3f}"

    suite.run(f"faiss k-means on the GPU, {n} x {dim}, k={k}", NEEDS_KMEANS, run)


# --------------------------------------------------------------------------- main


def machine_lines(device: Any, s: Settings, args: argparse.Namespace) -> list[str]:
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    what = f"{platform.processor() or platform.machine()}, {cpus} CPUs usable"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = (
            f"{torch.cuda.get_device_name(device)} ({props.total_memory / GIB:.0f} GiB), "
            f"CUDA {torch.version.cuda}; " + what
        )
    return [
        f"- machine: {what}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads",
        f"- settings: {'--quick, ' if args.quick else ''}device {device}, encoders "
        f"{', '.join(s.encoders)}, batch {s.batch}, K={s.out_dim}, crops 2x{s.global_seconds:g}s"
        f"+{s.num_local}x{s.local_seconds:g}s, {s.workers} loader workers",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; command: "
        + " ".join(["device_suite.py", *sys.argv[1:]]),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Usually run through bench/device_suite.sh (package check, wheels).",
    )
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny models and sizes (a smoke run)")
    p.add_argument("--out", default="device_suite.md", help="Markdown table [device_suite.md]")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip rows after this [420]")
    p.add_argument("--corpus", default=None, help="cuts manifest, prepared folder or wav folder")
    p.add_argument(
        "--data-dir", default=None, help="where to generate (and keep) data [a temp folder]"
    )
    p.add_argument("--encoders", default=None, help="comma-separated [ecapa_c512,resnet34]")
    p.add_argument("--batch", type=int, default=None, help="training batch [128; --quick 4]")
    p.add_argument("--steps", type=int, default=None, help="timed training steps [20; quick 2]")
    p.add_argument("--workers", type=int, default=None, help="loader workers [min(8, CPUs)]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch's]")
    p.add_argument(
        "--rows",
        default="train,pipeline,embed,kmeans",
        help="which groups to run [train,pipeline,embed,kmeans]",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("device_suite: CUDA is not available here; use --device cpu", file=sys.stderr)
        return 2
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    if args.threads:
        torch.set_num_threads(args.threads)
    groups = {g.strip() for g in args.rows.split(",") if g.strip()}
    unknown = groups - {"train", "pipeline", "embed", "kmeans"}
    if unknown:
        print(f"device_suite: unknown --rows {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    s = make_settings(args, cpus or 1)
    suite = Suite(args, machine_lines(device, s, args))
    tmp = None
    if args.data_dir:
        data_dir = Path(args.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="device_suite_")
        data_dir = Path(tmp.name)
    try:
        cuts = None
        if groups & {"train", "pipeline"}:
            cuts = corpus_row(suite, s, args, data_dir)
        if "train" in groups:
            dino_rows(suite, s, device, cuts)
        if "pipeline" in groups:
            pipeline_rows(suite, s, device, cuts, data_dir)
        if "embed" in groups:
            embed_rows(suite, s, device, data_dir)
        if "kmeans" in groups:
            kmeans_row(suite, s)
    finally:
        if tmp is not None:
            tmp.cleanup()
    suite.write()
    print(suite.text())
    print(f"table written to {args.out}", file=sys.stderr)
    return 1 if any(r.status.startswith("FAILED") for r in suite.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
