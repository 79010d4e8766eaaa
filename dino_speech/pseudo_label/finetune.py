"""Fine-tuning an encoder with an additive angular margin softmax on pseudo-speaker labels.

One stage of hyperion ``ssl.v1``'s fine-tuning (:class:`MarginFinetuner`): the encoder starts
from an embedder package (the DINO teacher, or the previous stage's result) and a
:class:`~dino_speech.pseudo_label.margin.AAMSoftmax` classifier over the pseudo-speakers
(``cut.custom[label_key]``) is trained on top of it:

* ``"frozen"``: only the classifier, and the encoder's final embedding layer when it exposes
  one (``encoder.embedding_layer()``) and ``finetune.frozen_train_embedding`` is set, are
  trained; the rest of the encoder keeps its weights and BatchNorm statistics;
* ``"full"``: every layer, at a lower learning rate, from the frozen stage's classifier.

Every step takes one random ``finetune.crop_seconds`` crop per utterance (the DINO loader with
one global crop and no local crop: resumable sampler, per-cut seeded crop positions), then on
the training device the DINO augmentation (:class:`~dino_speech.data.augment.WaveAugment`,
SpecAugment when configured) and the init model's fbank. The margin grows linearly over
``margin.margin_warmup_epochs`` in the stage that starts the classifier from scratch.

Files in the stage directory ``OUT``: ``train.log``, ``tb/`` (loss, accuracy, lr, margin),
``checkpoints/`` (atomic; a killed stage resumes exactly from the newest), and at the end
``embedder.pt`` (an embedder package, like a DINO experiment's) and ``classifier.pt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lhotse import CutSet
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dino_speech.config import (
    CropConfig,
    DataConfig,
    PseudoLabelConfig,
    to_dict,
)
from dino_speech.errors import ConfigError, DataError, DinoSpeechError
from dino_speech.models.package import (
    save_embedder,
)
from dino_speech.pseudo_label.finetune_model import (
    MarginModel,
    build_optimizer,
    embedding_layer,
    load_classifier,
    load_init_model,
    pseudo_labels,
    save_classifier,
)
from dino_speech.pseudo_label.margin import AAMSoftmax, scheduled_margin
from dino_speech.ssl.schedules import CosineSchedule
from dino_speech.train import checkpoint as ckpt
from dino_speech.train.distributed import (
    DistContext,
    all_gather_objects,
    all_reduce_mean,
    any_rank,
    init_distributed,
)
from dino_speech.train.monitor import TrainMonitor

__all__ = [
    "FINETUNE_CHECKPOINT_FORMAT",
    "FinetuneResult",
    "MarginFinetuner",
    "TrainingDivergedError",
    "finetune_stage",
]

Stage = Literal["frozen", "full"]
FINETUNE_CHECKPOINT_FORMAT = "dino_speech/margin-finetune-checkpoint-v1"
MAX_NONFINITE_STEPS = 20


@dataclass
class FinetuneResult:
    """What a finished (or time-limited) stage did."""

    out_dir: Path
    stage: str
    steps: int
    total_steps: int
    epochs_done: int
    stopped_by_time: bool
    last_loss: float | None
    last_accuracy: float | None
    embedder: Path
    classifier: Path

    def summary(self) -> str:
        line = (
            f"fine-tuning ({self.stage}) in {self.out_dir}: {self.steps}/{self.total_steps} "
            f"steps, {self.epochs_done} epochs"
            + (" (stopped by the train.max_minutes budget)" if self.stopped_by_time else "")
        )
        if self.last_loss is not None and self.last_accuracy is not None:
            line += f"; loss {self.last_loss:.4f}, accuracy {100 * self.last_accuracy:.1f}%"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "total_steps": self.total_steps,
            "epochs_done": self.epochs_done,
            "stopped_by_time": self.stopped_by_time,
            "loss": self.last_loss,
            "accuracy": self.last_accuracy,
        }


class TrainingDivergedError(DinoSpeechError):
    """The loss or gradients stayed NaN/Inf for many steps in a row."""


class MarginFinetuner:
    """One fine-tuning stage (see the module docstring) in ``out_dir``.

    Args:
        cfg: the pseudo-labeling config (sections data, margin, finetune, train).
        stage: ``"frozen"`` or ``"full"``.
        cuts: pseudo-labelled cuts (every cut has ``custom[cfg.label_key]``), or a manifest.
        init: the encoder to start from (embedder package, DINO checkpoint or experiment).
        classifier_init: a ``classifier.pt`` of an earlier stage on the same labels, or None
            for a new classifier (then the margin is warmed up).
        resume: continue from the newest checkpoint in ``out_dir/checkpoints``.
    """

    def __init__(
        self,
        cfg: PseudoLabelConfig,
        stage: Stage,
        cuts: CutSet | str | Path,
        init: str | Path,
        out_dir: str | Path,
        *,
        classifier_init: str | Path | None = None,
        resume: bool = True,
        dist_ctx: DistContext | None = None,
        progress: bool = True,
    ) -> None:
        from dino_speech.data.manifests import filter_min_duration, load_cuts

        if stage not in ("frozen", "full"):
            raise ConfigError(f"unknown fine-tuning stage '{stage}'; valid: frozen, full")
        self.cfg, self.stage = cfg, stage
        ft, tc = cfg.finetune, cfg.train
        self.epochs = ft.frozen_epochs if stage == "frozen" else ft.full_epochs
        base_lr = ft.frozen_lr if stage == "frozen" else ft.full_lr
        _check(cfg, self.epochs, base_lr)
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.ctx = dist_ctx or init_distributed(tc.device)
        self.device = self.ctx.device
        self.progress = progress and self.ctx.is_main
        latest = ckpt.find_latest(self.ckpt_dir) if self.ckpt_dir.is_dir() else None
        if latest is not None and not resume:
            raise ConfigError(f"{self.out_dir} already holds checkpoints; resume or remove it")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        self.monitor = TrainMonitor(self.out_dir, tc.tensorboard) if self.ctx.is_main else None

        if isinstance(cuts, (str, Path)):
            cuts = load_cuts(cuts)
        cuts = filter_min_duration(cuts, cfg.data.min_duration).to_eager()
        self.labels, self.classes = pseudo_labels(cuts, cfg.label_key)
        needed = cfg.data.batch_size * self.ctx.world_size
        if len(cuts) < needed:
            raise DataError(
                f"{len(cuts)} pseudo-labelled cuts make no full batch of {cfg.data.batch_size} "
                f"x {self.ctx.world_size} process(es); lower data.batch_size"
            )

        torch.manual_seed(tc.seed)
        self.init = load_init_model(init)
        self.encoder = self.init.encoder.to(self.device)
        dim = int(self.encoder.embed_dim)
        self.classifier = AAMSoftmax.from_config(cfg.margin, dim, len(self.classes))
        self.warm_margin = classifier_init is None
        if classifier_init is not None:
            load_classifier(classifier_init, self.classifier, self.classes)
        self.classifier.to(self.device)
        self.net = MarginModel(self.encoder, self.classifier)
        self.trainable = self._select_trainable()
        self.model: nn.Module = self.net
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids)
        self.optimizer = build_optimizer(self.net, cfg)

        torch.manual_seed(tc.seed + 1 + self.ctx.rank)
        self.gen = torch.Generator()  # on the CPU: the same augmentation draws on any device
        self.gen.manual_seed(tc.seed * 1000 + 29 + self.ctx.rank)
        self._build_data(cuts)
        self.steps_per_epoch = len(self.sampler)
        if ft.steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, ft.steps_per_epoch)
        self.total_steps = self.epochs * self.steps_per_epoch
        self.lr = CosineSchedule(
            base_lr,
            base_lr * ft.final_lr_ratio,
            self.total_steps,
            min(self.total_steps, round(ft.warmup_epochs * self.steps_per_epoch)),
        )
        self.autocast = self.device.type == "cuda" and tc.precision == "bf16"

        self.step = self.epoch = self.batch_in_epoch = 0
        self.last_loss: float | None = None
        self.last_accuracy: float | None = None
        self.skipped_cuts = 0
        self._window: list[torch.Tensor] = []  # (loss, accuracy) of steps since the last log
        self._nonfinite = 0
        self._in_step = False
        if latest is not None:
            self._resume(latest)
        self._log(
            f"fine-tuning ({stage}) {self.init.encoder_cfg.name} from {self.init.path}: "
            f"{len(self.classes)} pseudo-speakers, {len(cuts)} cuts; trainable "
            f"{sum(p.numel() for p in self.trainable) / 1e6:.3f} M parameters; "
            f"{self.steps_per_epoch} steps/epoch x {self.epochs} epochs on {self.device}"
        )

    # ------------------------------------------------------------------ setup

    def _build_data(self, cuts: CutSet) -> None:
        """The loader (one crop per cut), augmentation and fbank of the init model."""
        from dino_speech.data.augment import SpecAugment, WaveAugment
        from dino_speech.data.features import Fbank
        from dino_speech.data.sampling import make_dino_loader

        cfg, seed = self.cfg, self.cfg.train.seed
        features, crop = self.init.features, cfg.finetune.crop_seconds
        data_cfg = DataConfig(
            musan_cuts=cfg.data.musan_cuts,
            rir_cuts=cfg.data.rir_cuts,
            batch_size=cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
            prefetch_factor=cfg.data.prefetch_factor,
            crops=CropConfig(num_global=1, global_seconds=crop, num_local=0, local_seconds=crop),
            augment=cfg.data.augment,
            features=features,
        )
        self.loader, self.sampler = make_dino_loader(
            data_cfg, cuts, seed=seed, rank=self.ctx.rank, world_size=self.ctx.world_size
        )
        self.wave_augment = WaveAugment(
            cfg.data.augment,
            features.sample_rate,
            noise_cuts=cfg.data.musan_cuts,
            rir_cuts=cfg.data.rir_cuts,
            seed=seed + self.ctx.rank,
        )
        aug = cfg.data.augment
        self.spec_augment = SpecAugment(aug) if aug.specaug_prob > 0 else None
        self.fbank = Fbank(features).to(self.device)

    def _select_trainable(self) -> list[nn.Parameter]:
        if self.stage == "frozen":
            self.encoder.requires_grad_(False)
            layer = embedding_layer(self.encoder)
            if self.cfg.finetune.frozen_train_embedding and layer is not None:
                layer.requires_grad_(True)
        else:
            self.encoder.requires_grad_(True)
        params = [p for p in self.net.parameters() if p.requires_grad]
        if self.stage == "full" and not any(p.requires_grad for p in self.encoder.parameters()):
            raise ConfigError(f"encoder '{self.init.encoder_cfg.name}' has no trainable parameters")
        return params

    def _train_mode(self) -> None:
        """Frozen stage: the encoder in eval mode (BatchNorm statistics stay as they are)
        except its embedding layer; full stage: everything in train mode."""
        self.net.train()
        if self.stage == "frozen":
            self.encoder.eval()
            layer = embedding_layer(self.encoder)
            if self.cfg.finetune.frozen_train_embedding and layer is not None:
                layer.train()

    # ------------------------------------------------------------------ the loop

    def fit(self) -> FinetuneResult:
        """Train until the stage's epochs are done or ``train.max_minutes`` runs out."""
        tc = self.cfg.train
        start = time.monotonic()
        budget = None if tc.max_minutes is None else 60.0 * tc.max_minutes
        out_of_time = False
        self._train_mode()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not self.progress,
            desc=f"fine-tune ({self.stage})",
            unit="step",
            dynamic_ncols=True,
        )
        try:
            while self.epoch < self.epochs and not out_of_time:
                if self.batch_in_epoch == 0:
                    self.sampler.set_epoch(self.epoch)
                for batch in self.loader:
                    if self.batch_in_epoch >= self.steps_per_epoch:
                        break
                    self._in_step = True
                    self._train_step(batch)
                    self._in_step = False
                    bar.update(1)
                    if self.last_loss is not None:
                        bar.set_postfix(loss=f"{self.last_loss:.3f}", epoch=self.epoch)
                    epoch_end = self.batch_in_epoch >= self.steps_per_epoch
                    if budget is not None:
                        out_of_time = any_rank(time.monotonic() - start > budget, self.device)
                    periodic = tc.checkpoint_every > 0 and self.step % tc.checkpoint_every == 0
                    if not epoch_end and (periodic or out_of_time):
                        self._save(ckpt.checkpoint_name(self.step))
                    if out_of_time or epoch_end:
                        break
                if self.batch_in_epoch >= self.steps_per_epoch or not out_of_time:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self._save(ckpt.checkpoint_name(self.step, epoch=self.epoch))
        except KeyboardInterrupt:
            # Inside a step the weights may be half-updated: then the last checkpoint stays
            # the resume point. Between steps the state is consistent and worth saving.
            if not self.ctx.distributed and not self._in_step:
                self._save(ckpt.checkpoint_name(self.step))
                self._log(f"interrupted at step {self.step}; checkpoint saved, rerun to resume")
            else:
                self._log(
                    f"interrupted at step {self.step}; rerun to resume from the last checkpoint"
                )
            raise
        finally:
            bar.close()
        result = FinetuneResult(
            out_dir=self.out_dir,
            stage=self.stage,
            steps=self.step,
            total_steps=self.total_steps,
            epochs_done=self.epoch,
            stopped_by_time=out_of_time and self.epoch < self.epochs,
            last_loss=self.last_loss,
            last_accuracy=self.last_accuracy,
            embedder=self.out_dir / "embedder.pt",
            classifier=self.out_dir / "classifier.pt",
        )
        self._write_outputs()
        self._log(result.summary())
        if self.monitor is not None:
            self.monitor.close()
        return result

    def _train_step(self, batch: dict[str, Any]) -> None:
        ids: list[str] = batch["cut_ids"]
        self.skipped_cuts += int(batch.get("num_skipped", 0))
        if any_rank(not ids, self.device):
            self._warn(f"step {self.step}: a batch without readable audio; step skipped")
            self.step += 1
            self.batch_in_epoch += 1
            return
        ft = self.cfg.finetune
        waves = batch["global"][0].to(self.device, non_blocking=True)  # (B, S)
        labels = torch.tensor([self.labels[i] for i in ids], device=self.device)
        with torch.no_grad():
            waves = self.wave_augment(waves, self.gen)
            feats, _ = self.fbank(waves)
            if self.spec_augment is not None:
                feats = self.spec_augment(feats, self.gen)
        epoch_pos = self.step / self.steps_per_epoch
        margin = self.cfg.margin.margin
        if self.warm_margin:
            margin = scheduled_margin(self.cfg.margin, epoch_pos)
        self.classifier.set_margin(margin)
        lr = self.lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss, cosine = self.model(feats, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = ft.clip_grad if ft.clip_grad > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, clip)
        if bool(torch.isfinite(grad_norm)):
            self.optimizer.step()
            self._nonfinite = 0
        else:
            self._nonfinite += 1
            self._warn(f"step {self.step}: non-finite loss or gradients; update skipped")
            if self._nonfinite >= MAX_NONFINITE_STEPS:
                raise TrainingDivergedError(
                    f"loss or gradients were NaN/Inf for {self._nonfinite} steps in a row; "
                    "lower finetune.frozen_lr / finetune.full_lr"
                )
        accuracy = (cosine.argmax(dim=1) == labels).float().mean()
        self._window.append(torch.stack([loss.detach().float(), accuracy]))
        self.step += 1
        self.batch_in_epoch += 1
        if self.step % self.cfg.train.log_every == 0 or self.batch_in_epoch >= (
            self.steps_per_epoch
        ):
            self._log_window(lr, margin, float(grad_norm))

    def _log_window(self, lr: float, margin: float, grad_norm: float) -> None:
        if not self._window:  # every step since the last log was skipped (same on all ranks)
            return
        mean = all_reduce_mean(torch.stack(self._window).mean(dim=0)).cpu()
        self._window = []
        self.last_loss, self.last_accuracy = float(mean[0]), float(mean[1])
        if self.monitor is not None:
            values = {
                "loss": self.last_loss,
                "accuracy": self.last_accuracy,
                "lr": lr,
                "margin": margin,
                "grad_norm": grad_norm,
                "skipped_cuts": float(self.skipped_cuts),
                "epoch": self.epoch + self.batch_in_epoch / self.steps_per_epoch,
            }
            self.monitor.scalars(self.step, values)

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        return {
            "format": FINETUNE_CHECKPOINT_FORMAT,
            "config": to_dict(self.cfg),
            "stage": self.stage,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "encoder": self.encoder.state_dict(),
            "classifier": self.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "classes": list(self.classes),
            "monitor": {
                "last_loss": self.last_loss,
                "last_accuracy": self.last_accuracy,
                "skipped_cuts": self.skipped_cuts,
            },
            "world_size": self.ctx.world_size,
        }

    def _save(self, name: str) -> None:
        # The loader counts a batch as consumed when it hands it out; the batches actually
        # trained on in this epoch are `batch_in_epoch`.
        sampler = {**self.sampler.state_dict(), "batches_done": self.batch_in_epoch}
        ranks = all_gather_objects(
            {
                "data": {
                    "sampler": sampler,
                    "augment": self.wave_augment.state_dict(),
                },
                "rng": ckpt.capture_rng(self.gen),
            }
        )
        if self.ctx.is_main:
            ckpt.save_checkpoint(self.ckpt_dir, name, {**self._state(), "ranks": ranks})
            keep = self.cfg.train.keep_last
            ckpt.prune_checkpoints(self.ckpt_dir, keep, keep)

    def _resume(self, path: Path) -> None:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
            raise DataError(f"{path}: cannot read checkpoint: {exc}") from None
        if blob.get("format") != FINETUNE_CHECKPOINT_FORMAT or blob.get("stage") != self.stage:
            raise DataError(f"{path}: not a checkpoint of a '{self.stage}' fine-tuning stage")
        if list(blob["classes"]) != self.classes:
            raise DataError(f"{path}: the checkpoint was trained on other pseudo-labels")
        self.encoder.load_state_dict(blob["encoder"])
        self.classifier.load_state_dict(blob["classifier"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.step, self.epoch = blob["step"], blob["epoch"]
        self.batch_in_epoch = blob["batch_in_epoch"]
        monitor = blob["monitor"]
        self.last_loss, self.last_accuracy = monitor["last_loss"], monitor["last_accuracy"]
        self.skipped_cuts = monitor["skipped_cuts"]
        ranks = blob["ranks"]
        if len(ranks) == self.ctx.world_size:
            mine = ranks[self.ctx.rank]
            ckpt.restore_rng(mine["rng"], self.gen)
            self.wave_augment.load_state_dict(dict(mine["data"]["augment"]))
            if self.batch_in_epoch > 0:
                self.sampler.load_state_dict(dict(mine["data"]["sampler"]))
        else:
            self._warn(
                f"checkpoint was written by {len(ranks)} processes, this run has "
                f"{self.ctx.world_size}: the interrupted epoch restarts from its beginning"
            )
            self.batch_in_epoch = 0
        self._log(f"resumed from {path} at step {self.step} (epoch {self.epoch})")

    def _write_outputs(self) -> None:
        if not self.ctx.is_main:
            return
        meta = {
            "source": "pseudo-label",
            "stage": self.stage,
            "step": self.step,
            "epoch": self.epoch,
            "init": str(self.init.path),
            "num_classes": len(self.classes),
        }
        save_embedder(
            self.out_dir / "embedder.pt",
            self.encoder,
            self.init.encoder_cfg,
            self.init.features,
            meta,
        )
        save_classifier(self.out_dir / "classifier.pt", self.classifier, self.classes)

    def _log(self, message: str) -> None:
        if self.monitor is not None:
            self.monitor.info(message)

    def _warn(self, message: str) -> None:
        if self.monitor is not None:
            self.monitor.warning(message)


def finetune_stage(
    cfg: PseudoLabelConfig,
    stage: Stage,
    cuts: CutSet | str | Path,
    init: str | Path,
    out_dir: str | Path,
    *,
    classifier_init: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    dist_ctx: DistContext | None = None,
) -> FinetuneResult:
    """Run one fine-tuning stage (see :class:`MarginFinetuner`); one process or a rank."""
    ctx = dist_ctx or init_distributed(cfg.train.device)
    try:
        return MarginFinetuner(
            cfg,
            stage,
            cuts,
            init,
            out_dir,
            classifier_init=classifier_init,
            resume=resume,
            dist_ctx=ctx,
            progress=progress,
        ).fit()
    finally:
        if dist_ctx is None:
            ctx.close()


def _check(cfg: PseudoLabelConfig, epochs: int, lr: float) -> None:
    ft, tc = cfg.finetune, cfg.train
    if epochs < 1:
        raise ConfigError(f"a fine-tuning stage needs >= 1 epoch, got {epochs}")
    if lr <= 0 or ft.crop_seconds <= 0:
        raise ConfigError("finetune learning rates and crop_seconds must be positive")
    if not 0 <= ft.final_lr_ratio <= 1 or ft.warmup_epochs < 0:
        raise ConfigError("need 0 <= finetune.final_lr_ratio <= 1 and warmup_epochs >= 0")
    if ft.steps_per_epoch is not None and ft.steps_per_epoch < 1:
        raise ConfigError(f"finetune.steps_per_epoch must be >= 1, got {ft.steps_per_epoch}")
    if tc.log_every < 1 or tc.checkpoint_every < 0 or tc.keep_last < 0:
        raise ConfigError("need train.log_every >= 1, checkpoint_every >= 0, keep_last >= 0")
    if cfg.data.batch_size < 2:
        raise ConfigError(f"data.batch_size must be >= 2, got {cfg.data.batch_size}")
