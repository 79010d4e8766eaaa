"""The DINO training loop: one process or ``torchrun`` DDP, exact resume, time budget.

Per step (Cho et al. 2022 / Caron et al. 2021): the loader's workers return raw waveform crops;
on the training device every crop gets its own augmentation draw, then fbank; the teacher sees
the global crops, the student all crops (SpecAugment on the student's copies only); the loss
averages the cross-entropy over all pairs of different crops; the optimiser steps with the
scheduled learning rate and weight decay (the head's last layer frozen in the first epoch);
then the teacher moves towards the student (EMA, cosine momentum) and the centre towards the
teacher's batch mean.

Files in ``EXP``: ``.lock`` (while a run uses it; see :mod:`dino_speech.train.exp_lock`),
``config.yaml``, ``train.log``, ``tb/`` (TensorBoard), ``checkpoints/``
(see :mod:`dino_speech.train.checkpoint`), ``embedder.pt`` (the teacher's encoder, written
every epoch and at the end; see :mod:`dino_speech.models.embedder_file`) and ``summary.json``
(what the finished run did, and the request it finished: a rerun of that same request does
nothing; see :func:`finished_run`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dino_speech.config import DinoExperimentConfig, save_config, to_dict
from dino_speech.errors import ConfigError
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder
from dino_speech.provenance import finished, request, write_record
from dino_speech.runtime import bf16_autocast
from dino_speech.ssl.dino import DinoCenter, MultiCropModel, build_dino_head, dino_statistics
from dino_speech.ssl.schedules import DinoSchedules
from dino_speech.train import checkpoint as ckpt
from dino_speech.train.crop_batches import CropBatchSource
from dino_speech.train.distributed import DistContext, all_reduce_mean, init_distributed
from dino_speech.train.exp_lock import experiment_lock
from dino_speech.train.loop import LoopInputs, LoopSettings, ResumableLoop, TrainingDivergedError
from dino_speech.train.monitor import CollapseDetector, effective_rank, embedding_std
from dino_speech.train.step import DinoStep, StepOutput, build_optimizer
from dino_speech.train.sync_bn import convert_sync_batchnorm

__all__ = [
    "DinoTrainer",
    "TrainResult",
    "TrainingDivergedError",
    "finished_run",
    "train_dino",
    "write_untrained_embedder",
]

SUMMARY = "summary.json"


@dataclass
class TrainResult:
    """What a finished (or time-limited) run did."""

    exp_dir: Path
    steps: int
    total_steps: int  # train.epochs x steps per epoch
    planned_steps: int  # where the schedules end: total_steps, or what a fitted budget holds
    epochs_done: int
    stopped_by_time: bool
    last_loss: float | None
    collapse: str | None
    embedder: Path | None

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        values = {k: data[k] for k in cls.__dataclass_fields__}
        values["exp_dir"] = Path(values["exp_dir"])
        values["embedder"] = None if values["embedder"] is None else Path(values["embedder"])
        return cls(**values)

    def summary(self) -> str:
        lines = [
            f"DINO training in {self.exp_dir}: {self.steps}/{self.planned_steps} steps, "
            f"{self.epochs_done} epochs done"
            + (" (stopped by the train.max_minutes budget)" if self.stopped_by_time else ""),
        ]
        if self.last_loss is not None:
            lines.append(f"last loss {self.last_loss:.4f}")
        lines.append(self.collapse or "no sustained collapse of the teacher output")
        if self.embedder is not None:
            lines.append(f"embedder (teacher encoder): {self.embedder}")
        return "\n".join(lines)


class DinoTrainer(ResumableLoop):
    """Builds everything from a :class:`DinoExperimentConfig` and trains in ``exp_dir``.

    Epochs, checkpoints, resume and interrupts: :class:`~dino_speech.train.loop.ResumableLoop`.
    """

    def __init__(
        self,
        cfg: DinoExperimentConfig,
        exp_dir: str | Path,
        *,
        resume: bool = True,
        dist_ctx: DistContext | None = None,
        progress: bool = True,
    ) -> None:
        tc = cfg.train
        settings = LoopSettings(
            epochs=tc.epochs,
            log_every=tc.log_every,
            checkpoint_every=tc.checkpoint_every,
            keep_steps=tc.keep_last,
            keep_epochs=max(tc.keep_last, tc.average_last) if tc.keep_last else 0,
            max_minutes=tc.max_minutes,
            tensorboard=tc.tensorboard,
            fit_to_budget=tc.fit_to_budget,
        )
        if (
            cfg.data.crops.num_global < 1
            or cfg.data.crops.num_global + cfg.data.crops.num_local < 2
        ):
            raise ConfigError(
                "DINO needs at least one global crop and two crops per utterance "
                "(data.crops.num_global, data.crops.num_local)"
            )
        ctx = dist_ctx or init_distributed(tc.device)
        super().__init__(
            exp_dir,
            ctx,
            settings,
            checkpoint_format=ckpt.CHECKPOINT_FORMAT,
            resume=resume,
            progress=progress,
        )
        self.cfg = cfg
        self.exp_dir = self.out_dir

        # The same initial weights on every process; then per-process random streams.
        torch.manual_seed(tc.seed)
        feat_dim = cfg.data.features.num_mel_bins
        backbone = build_encoder(cfg.model.name, feat_dim=feat_dim, **cfg.model.kwargs)
        student = MultiCropModel(backbone, build_dino_head(backbone.embed_dim, cfg.dino))
        self.student = student.to(self.device)
        if self.ctx.distributed and tc.sync_batchnorm:  # student and teacher (a copy)
            self.student = convert_sync_batchnorm(self.student, self.device)
        self.teacher = copy.deepcopy(self.student)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.center = DinoCenter(cfg.dino.out_dim, cfg.dino.center_momentum).to(self.device)
        self.model: nn.Module = self.student
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.student, device_ids=ids)
        self.optimizer = build_optimizer(self.student, cfg)

        torch.manual_seed(tc.seed + 1 + self.ctx.rank)
        gen = torch.Generator()  # on the CPU: the same draws on any device
        gen.manual_seed(tc.seed * 1000 + 17 + self.ctx.rank)
        data = CropBatchSource(cfg.data, seed=tc.seed, ctx=self.ctx, gen=gen)
        inputs = LoopInputs(data, gen, data.steps_per_epoch(tc.steps_per_epoch))
        self.schedules = DinoSchedules.build(
            cfg.optim,
            cfg.dino,
            epochs=tc.epochs,
            steps_per_epoch=inputs.steps_per_epoch,
            total_batch_size=cfg.data.batch_size * self.ctx.world_size,
        )
        self.collapse = CollapseDetector(cfg.dino.out_dim, tc.collapse_patience)
        self.step_fn = DinoStep(
            cfg,
            self.student,
            self.teacher,
            self.center,
            self.optimizer,
            self.schedules,
            model=self.model,
            distributed=self.ctx.distributed,
            autocast=bf16_autocast(self.device, tc.precision),
        )
        self._start(inputs)
        if self.ctx.is_main:  # the config in use (a resume may change e.g. train.epochs)
            save_config(cfg, self.exp_dir / "config.yaml")
        self._log(
            f"{cfg.model.name}: {_count(backbone) / 1e6:.2f} M encoder + "
            f"{_count(student.head) / 1e6:.2f} M head parameters; {self.ctx.world_size} "
            f"process(es) on {self.device}"
            + (" in bf16 autocast" if self.step_fn.autocast else " in float32")
            + (" (BatchNorm synchronised)" if self.ctx.distributed and tc.sync_batchnorm else "")
            + f"; {self.steps_per_epoch} steps/epoch x "
            f"{tc.epochs} epochs; batch {cfg.data.batch_size}/process"
        )

    def fit(self) -> TrainResult:
        """Train until ``train.epochs`` are done or the ``train.max_minutes`` budget runs out."""
        started = time.monotonic()
        stopped_by_time = self._run_epochs("DINO")
        embedder = self._finish(stopped_by_time)
        result = TrainResult(
            exp_dir=self.exp_dir,
            steps=self.step,
            total_steps=self.total_steps,
            planned_steps=self.planned_steps,
            epochs_done=self.epoch,
            stopped_by_time=stopped_by_time,
            last_loss=self.last_loss,
            collapse=self.collapse.summary(),
            embedder=embedder,
        )
        self._log(result.summary().replace("\n", "; "))
        if self.ctx.is_main:
            write_record(
                self.exp_dir / SUMMARY,
                _training_request(self.cfg),
                kind="dino",
                model=self.cfg.model.name,
                seconds=round(time.monotonic() - started, 1),  # of this (last) call
                **result.to_dict(),
            )
        self._close()
        return result

    # ------------------------------------------------------------------ loop hooks

    def _train_step(self, batch: dict[str, Any]) -> StepOutput:
        views = self.data.prepare(batch, self.device)
        out = self.step_fn(views, self.step)
        self._count_nonfinite(out.updated, "lower optim.lr or raise dino.teacher_temp")
        return out

    def _after_step(self, output: StepOutput | None) -> None:
        if output is not None and (self.step % self.settings.log_every == 0 or self.step == 1):
            self._log_step(output)

    def _epoch_done(self) -> None:
        self._write_embedder()

    def _replan(self, planned_steps: int) -> None:
        self.schedules = DinoSchedules.build(
            self.cfg.optim,
            self.cfg.dino,
            epochs=self.cfg.train.epochs,
            steps_per_epoch=self.steps_per_epoch,
            total_batch_size=self.cfg.data.batch_size * self.ctx.world_size,
            total_steps=planned_steps,
        )
        self.step_fn.schedules = self.schedules

    def _log_step(self, out: StepOutput) -> None:
        # The centre already moved this step; the statistics use the updated one, which
        # differs from the loss's by (1 - m) of a batch mean: fine for monitoring.
        stats = dino_statistics(
            out.student_out,
            out.teacher_out,
            self.center.center,
            student_temp=self.cfg.dino.student_temp,
            teacher_temp=out.schedule["teacher_temp"],
        )
        skipped = torch.tensor(float(self.skipped_cuts), device=out.loss.device)
        packed = torch.stack([out.loss.detach().float(), *stats.values(), skipped])
        packed = all_reduce_mean(packed).cpu()
        self.last_loss = float(packed[0])
        entropy, marginal, kl = (float(v) for v in packed[1:4])
        warning = self.collapse.update(self.step, entropy, marginal)
        if warning:
            self._warn(warning)
        if self.monitor is None:
            return
        values = {
            "loss": self.last_loss,
            **out.schedule,
            "teacher_entropy": entropy,
            "teacher_marginal_entropy": marginal,
            "kl": kl,
            "embedding_std": embedding_std(out.teacher_embeddings),
            "effective_rank": effective_rank(out.teacher_embeddings),
            "grad_norm": float(out.grad_norm),
            **({} if out.regularizer is None else {"regularizer": float(out.regularizer)}),
            "skipped_cuts": float(packed[4]) * self.ctx.world_size,
            "epoch": self.epoch + self.batch_in_epoch / self.steps_per_epoch,
        }
        self.monitor.scalars(self.step, values)

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        return {
            "config": to_dict(self.cfg),
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "center": self.center.state_dict(),
            "monitor": {"collapse": self.collapse.state_dict()},
        }

    def _load_state(self, blob: dict[str, Any], path: Path) -> None:
        changed = _changed_keys(blob["config"], to_dict(self.cfg))
        if changed:
            self._warn(
                f"resuming with a config that differs from the checkpoint's in: "
                f"{', '.join(changed)}"
            )
        self.student.load_state_dict(blob["student"])
        self.teacher.load_state_dict(blob["teacher"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.center.load_state_dict(blob["center"])
        self.collapse.load_state_dict(blob["monitor"]["collapse"])

    def _write_embedder(self, state: dict[str, torch.Tensor] | None = None, **meta: Any) -> Path:
        path = self.exp_dir / "embedder.pt"
        if self.ctx.is_main:
            backbone = self.teacher.backbone
            if state is not None:
                backbone = copy.deepcopy(backbone)
                backbone.load_state_dict(state)
            info = {"source": "dino", "step": self.step, "epoch": self.epoch, **meta}
            save_embedder(path, backbone, self.cfg.model, self.cfg.data.features, info)
        return path

    def _finish(self, stopped_by_time: bool) -> Path | None:
        tc = self.cfg.train
        epochs = ckpt.epoch_checkpoints(self.ckpt_dir) if self.ctx.is_main else []
        if tc.average_last > 1 and len(epochs) >= 2 and not stopped_by_time:
            chosen = epochs[-tc.average_last :]
            states = [ckpt.teacher_backbone(ckpt.load_checkpoint(p)) for p in chosen]
            names = [p.name for p in chosen]
            self._log(f"embedder: teacher encoder averaged over {', '.join(names)}")
            return self._write_embedder(ckpt.average_state_dicts(states), averaged=names)
        if stopped_by_time or self.batch_in_epoch:
            return self._write_embedder()
        return self.exp_dir / "embedder.pt"  # written at the last epoch end


def train_dino(
    cfg: DinoExperimentConfig, exp_dir: str | Path, *, resume: bool = True, progress: bool = True
) -> TrainResult:
    """Train DINO as ``cfg`` says, in ``exp_dir`` (one process, or each ``torchrun`` rank)."""
    if resume:
        done = finished_run(cfg, exp_dir)
        if done is not None:
            return done
    ctx = init_distributed(cfg.train.device)
    if ctx.device.type == "cuda":
        # Crops have fixed sizes, so cuDNN's per-shape algorithm search pays off.
        torch.backends.cudnn.benchmark = True
    try:
        with experiment_lock(exp_dir, ctx):
            trainer = DinoTrainer(cfg, exp_dir, resume=resume, dist_ctx=ctx, progress=progress)
            return trainer.fit()
    finally:
        ctx.close()


def finished_run(cfg: DinoExperimentConfig, exp_dir: str | Path) -> TrainResult | None:
    """The result of a run in ``exp_dir`` that finished this same request (config and
    training manifest unchanged, embedder still there), or None: then train (or resume).

    A run stopped by ``train.max_minutes`` has finished its request too; a larger budget or
    more epochs is a new request, which resumes from the newest checkpoint."""
    exp_dir = Path(exp_dir)
    record = finished(exp_dir / SUMMARY, _training_request(cfg), [exp_dir / "embedder.pt"])
    return None if record is None or record.get("kind") != "dino" else TrainResult.from_dict(record)


def write_untrained_embedder(cfg: DinoExperimentConfig, exp_dir: str | Path) -> Path:
    """``EXP/embedder.pt`` holding the encoder as ``train_dino`` initialises it (same
    ``train.seed``, same weights), untrained: the baseline a trained model must beat, and the
    starting point of a supervised run from scratch. Left as it is when it was written from
    the same model settings already (``EXP/summary.json``), so what embeds it stays up to date.
    """
    exp_dir = Path(exp_dir)
    path = exp_dir / "embedder.pt"
    made_from = request(
        {
            "model": to_dict(cfg.model),
            "features": to_dict(cfg.data.features),
            "seed": cfg.train.seed,
        },
        [],
    )
    if finished(exp_dir / SUMMARY, made_from, [path]) is not None:
        return path
    torch.manual_seed(cfg.train.seed)
    feat_dim = cfg.data.features.num_mel_bins
    backbone = build_encoder(cfg.model.name, feat_dim=feat_dim, **cfg.model.kwargs)
    with experiment_lock(exp_dir):
        save_config(cfg, exp_dir / "config.yaml")
        info = {"source": "untrained", "step": 0, "epoch": 0, "seed": cfg.train.seed}
        save_embedder(path, backbone.eval(), cfg.model, cfg.data.features, info)
        write_record(exp_dir / SUMMARY, made_from, kind="untrained", model=cfg.model.name)
    return path


def _training_request(cfg: DinoExperimentConfig) -> dict[str, Any]:
    """What a DINO run's result depends on: the whole config and the training manifest."""
    cuts = cfg.data.train_cuts
    return request(to_dict(cfg), [cuts] if cuts and Path(cuts).is_file() else [])


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [c for k in keys for c in _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
