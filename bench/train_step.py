"""DINO training step: ours against a straightforward reference loop, same config, one process.

Ours is the trainer's step (:class:`dino_speech.train.step.DinoStep`): fbank for each crop
group (all global crops, all local crops) in one batch, the teacher on the global group and the
student on both groups (one backbone call per group, one head call), the loss as one matrix
product over all crop pairs, a foreach EMA, bf16 autocast on CUDA (the head's last layer and
the loss in float32).
The reference is what a first implementation looks like: every crop on its own through fbank,
the teacher and the student, the loss as a Python loop over crop pairs, a per-parameter EMA, in
float32. Both start from the same weights and see the same waveforms (no augmentation, which
costs the same in both).

Prints iterations/s and peak memory of each and the ratios. Peak memory: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the resident-set high-water mark (``VmHWM``, reset
through ``/proc/self/clear_refs`` before each variant) above the resident size at its start.
With ``--device cuda`` it also prints samples/s and the achieved TFLOP/s of our step, FLOPs
counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions, forward and
backward).

    python bench/train_step.py                       # CPU: ecapa_tiny, batch 16
    python bench/train_step.py --device cuda         # ECAPA c512, batch 128, K 65536, bf16

``--precision`` instead times our step in float32 against our step in bf16 autocast on the
CPU (the recipe's ``train.precision: bf16`` where the CPU has AVX512-BF16 or AMX), alternating
for ``--repeats`` rounds, and prints each round's ratio:

    python bench/train_step.py --precision --batch 32 --num-local 2 --out-dim 256
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dino_speech.config import DinoExperimentConfig
from dino_speech.data.features import Fbank
from dino_speech.models.registry import build_encoder
from dino_speech.ssl.dino import DinoCenter, MultiCropModel, build_dino_head
from dino_speech.ssl.schedules import DinoSchedules
from dino_speech.train.crop_batches import CropViews
from dino_speech.train.step import DinoStep, build_optimizer


def make_config(args: argparse.Namespace) -> DinoExperimentConfig:
    cfg = DinoExperimentConfig()
    cfg.model.name = args.encoder
    cfg.data.batch_size = args.batch
    cfg.data.crops.num_global, cfg.data.crops.num_local = args.num_global, args.num_local
    cfg.data.crops.global_seconds = args.global_seconds
    cfg.data.crops.local_seconds = args.local_seconds
    cfg.data.features.num_mel_bins = args.mels
    cfg.dino.out_dim = args.out_dim
    cfg.optim.warmup_epochs = 0
    cfg.optim.clip_mode = "per_param"  # the reference step clips per parameter too
    cfg.dino.freeze_last_layer_epochs = 0
    return cfg


class Parts:
    """Student, teacher, centre, optimiser and schedules for one variant."""

    def __init__(self, cfg: DinoExperimentConfig, student: MultiCropModel, device: torch.device):
        self.student = copy.deepcopy(student).to(device)
        self.teacher = copy.deepcopy(student).to(device)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.center = DinoCenter(cfg.dino.out_dim, cfg.dino.center_momentum).to(device)
        self.optimizer = build_optimizer(self.student, cfg)
        self.schedules = DinoSchedules.build(
            cfg.optim,
            cfg.dino,
            epochs=1,
            steps_per_epoch=10**6,
            total_batch_size=cfg.data.batch_size,
        )


def our_step(cfg: DinoExperimentConfig, parts: Parts, fbank: Fbank, autocast: bool):
    step_fn = DinoStep(
        cfg,
        parts.student,
        parts.teacher,
        parts.center,
        parts.optimizer,
        parts.schedules,
        autocast=autocast,
    )

    def run(global_waves: torch.Tensor, local_waves: torch.Tensor, step: int) -> None:
        with torch.no_grad():
            g = fbank(global_waves.reshape(-1, global_waves.shape[-1]))[0]
            groups = [(g, None)]
            if local_waves.shape[0]:
                groups.append((fbank(local_waves.reshape(-1, local_waves.shape[-1]))[0], None))
        views = CropViews((g, None), groups, global_waves.shape[0], global_waves.shape[1])
        step_fn(views, step)

    return run


def reference_step(cfg: DinoExperimentConfig, parts: Parts, fbank: Fbank):
    st, clip = cfg.dino.student_temp, cfg.optim.clip_grad

    def run(global_waves: torch.Tensor, local_waves: torch.Tensor, step: int) -> None:
        sched = parts.schedules.values(step)
        for group in parts.optimizer.param_groups:
            group["lr"] = sched["lr"]
            if group["regularised"]:
                group["weight_decay"] = sched["weight_decay"]
        crops = [fbank(w)[0] for w in global_waves] + [fbank(w)[0] for w in local_waves]
        with torch.no_grad():
            teacher_out = [parts.teacher.head(parts.teacher.backbone(c)) for c in crops[:2]]
        student_out = [parts.student.head(parts.student.backbone(c)) for c in crops]
        center = parts.center.center
        loss, pairs = 0.0, 0
        for i, t in enumerate(teacher_out):
            q = F.softmax((t - center) / sched["teacher_temp"], dim=-1)
            for v, s in enumerate(student_out):
                if v == i:
                    continue
                loss = loss + torch.sum(-q * F.log_softmax(s / st, dim=-1), dim=-1).mean()
                pairs += 1
        loss = loss / pairs
        parts.optimizer.zero_grad()
        loss.backward()
        for p in parts.student.parameters():  # DINO's per-parameter clipping, one by one
            if p.grad is not None:
                p.grad.mul_((clip / (p.grad.norm() + 1e-6)).clamp(max=1.0))
        parts.optimizer.step()
        with torch.no_grad():
            m = sched["momentum"]
            for pt, ps in zip(parts.teacher.parameters(), parts.student.parameters(), strict=True):
                pt.mul_(m).add_((1 - m) * ps.detach())
            parts.center.update(torch.stack(teacher_out))

    return run


def rss_reset() -> int | None:
    """Reset the VmHWM high-water mark; the current RSS in bytes (None where unsupported)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kb("VmRSS") * 1024
    except OSError:
        return None


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def measure(name, run, waves, device, steps: int, warmup: int) -> tuple[float, float | None]:
    """Iterations/s and peak memory (bytes; None if unknown) of ``run``."""
    global_waves, local_waves = waves
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_reset()
    for i in range(warmup):
        run(global_waves, local_waves, i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        run(global_waves, local_waves, warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = steps / (time.perf_counter() - start)
    if device.type == "cuda":
        peak = float(torch.cuda.max_memory_allocated() - base)
    else:
        peak = None if base is None else float(_status_kb("VmHWM") * 1024 - base)
    print(
        f"{name:>10}: {rate:8.3f} it/s, peak memory "
        + ("n/a" if peak is None else f"{peak / 2**20:8.1f} MiB")
    )
    return rate, peak


def count_flops(run, waves) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        run(*waves, 0)
    return counter.get_total_flops()


def compare_precision(cfg, student, fbank, waves, device, args) -> None:
    """Our step in float32 and in bf16 autocast, from the same weights, alternating rounds."""
    from dino_speech.runtime import native_bf16_cpu

    if device.type == "cpu":
        print(
            "this CPU has bf16 arithmetic (AVX512-BF16 or AMX): "
            + ("yes" if native_bf16_cpu() else "no, bf16 is emulated")
        )
    variants = {
        name: our_step(cfg, Parts(cfg, student, device), fbank, autocast=name == "bf16")
        for name in ("fp32", "bf16")
    }
    ratios = []
    for r in range(args.repeats):
        print(f"round {r + 1}")
        rates = {
            name: measure(name, run, waves, device, args.steps, args.warmup)[0]
            for name, run in variants.items()
        }
        ratios.append(rates["bf16"] / rates["fp32"])
        print(f"speed ratio (bf16 / fp32): {ratios[-1]:.2f}x")
    ratios.sort()
    print(
        f"bf16 / fp32 over {len(ratios)} rounds: median {ratios[len(ratios) // 2]:.2f}x "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--encoder", default=None, help="[cpu: ecapa_tiny, cuda: ecapa_c512]")
    parser.add_argument("--batch", type=int, default=None, help="[cpu: 16, cuda: 128]")
    parser.add_argument("--out-dim", type=int, default=None, help="K [cpu: 4096, cuda: 65536]")
    parser.add_argument("--num-global", type=int, default=2)
    parser.add_argument("--num-local", type=int, default=4)
    parser.add_argument("--global-seconds", type=float, default=None, help="[cpu: 2, cuda: 4]")
    parser.add_argument("--local-seconds", type=float, default=None, help="[cpu: 1, cuda: 2]")
    parser.add_argument("--mels", type=int, default=80)
    parser.add_argument("--steps", type=int, default=None, help="timed steps [cpu: 30, cuda: 20]")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--precision", action="store_true", help="ours in fp32 against ours in bf16 (CPU)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of --precision")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = {
        "encoder": ("ecapa_tiny", "ecapa_c512"),
        "batch": (16, 128),
        "out_dim": (4096, 65536),
        "global_seconds": (2.0, 4.0),
        "local_seconds": (1.0, 2.0),
        "steps": (30, 20),
    }
    for key, (cpu_value, cuda_value) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, cuda_value if cuda else cpu_value)
    if args.num_global != 2:
        parser.error("the reference step is written for 2 global crops")
    cfg = make_config(args)
    torch.manual_seed(0)
    backbone = build_encoder(args.encoder, feat_dim=args.mels)
    student = MultiCropModel(backbone, build_dino_head(backbone.embed_dim, cfg.dino))
    fbank = Fbank(cfg.data.features).to(device)
    sr = cfg.data.features.sample_rate
    gen = torch.Generator().manual_seed(0)
    waves = (
        (0.1 * torch.randn(2, args.batch, int(args.global_seconds * sr), generator=gen)).to(device),
        (
            0.1
            * torch.randn(args.num_local, args.batch, int(args.local_seconds * sr), generator=gen)
        ).to(device),
    )
    print(
        f"{args.encoder}, batch {args.batch}, crops 2x{args.global_seconds:g}s + "
        f"{args.num_local}x{args.local_seconds:g}s, K={args.out_dim}, {args.mels} mels, "
        f"device {device}, {torch.get_num_threads()} CPU threads"
        + ("" if args.precision else ", ours in bf16 autocast" if cuda else ", fp32")
    )
    if args.precision:
        compare_precision(cfg, student, fbank, waves, device, args)
        return
    ours = our_step(cfg, Parts(cfg, student, device), fbank, autocast=cuda)
    ref = reference_step(cfg, Parts(cfg, student, device), fbank)
    ref_rate, ref_peak = measure("reference", ref, waves, device, args.steps, args.warmup)
    our_rate, our_peak = measure("ours", ours, waves, device, args.steps, args.warmup)
    print(f"speed ratio (ours / reference): {our_rate / ref_rate:.2f}x")
    if our_peak and ref_peak:
        print(f"peak memory ratio (ours / reference): {our_peak / ref_peak:.2f}")
    if cuda:
        flops = count_flops(ours, waves)
        print(
            f"ours: {our_rate * args.batch:.1f} samples/s, {flops / 1e12:.3f} TFLOP per step, "
            f"{flops * our_rate / 1e12:.1f} TFLOP/s achieved"
        )


if __name__ == "__main__":
    main()
