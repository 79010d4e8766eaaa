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
``checkpoints/`` (atomic; a killed stage resumes exactly from the newest, see
:class:`~dino_speech.train.loop.ResumableLoop`), and at the end ``embedder.pt`` (an embedder
package, like a DINO experiment's) and ``classifier.pt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lhotse import CutSet
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dino_speech.config import CropConfig, DataConfig, PseudoLabelConfig, to_dict
from dino_speech.errors import ConfigError, DataError
from dino_speech.models.embedder_file import save_embedder
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
from dino_speech.runtime import bf16_autocast
from dino_speech.ssl.schedules import CosineSchedule
from dino_speech.train.crop_batches import CropBatchSource
from dino_speech.train.distributed import DistContext, all_reduce_mean, init_distributed
from dino_speech.train.loop import LoopInputs, LoopSettings, ResumableLoop, TrainingDivergedError
from dino_speech.train.optim import clip_gradients
from dino_speech.train.sync_bn import convert_sync_batchnorm

__all__ = [
    "FINETUNE_CHECKPOINT_FORMAT",
    "FinetuneResult",
    "MarginFinetuner",
    "TrainingDivergedError",
    "finetune_stage",
]

Stage = Literal["frozen", "full"]
FINETUNE_CHECKPOINT_FORMAT = "dino_speech/margin-finetune-checkpoint-v1"


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


@dataclass
class _StepLog:
    """What one step leaves for the logged window average."""

    lr: float
    margin: float
    grad_norm: float


class MarginFinetuner(ResumableLoop):
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

    lr: CosineSchedule  # the learning rate; built by _replan, first when _start calls it

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
        ft, tc = cfg.finetune, cfg.train
        epochs = ft.frozen_epochs if stage == "frozen" else ft.full_epochs
        base_lr = ft.frozen_lr if stage == "frozen" else ft.full_lr
        _check(cfg, epochs, base_lr)
        settings = LoopSettings(
            epochs=epochs,
            log_every=tc.log_every,
            checkpoint_every=tc.checkpoint_every,
            keep_steps=tc.keep_last,
            keep_epochs=tc.keep_last,
            max_minutes=tc.max_minutes,
            tensorboard=tc.tensorboard,
            fit_to_budget=tc.fit_to_budget,
        )
        super().__init__(
            out_dir,
            dist_ctx or init_distributed(tc.device),
            settings,
            checkpoint_format=FINETUNE_CHECKPOINT_FORMAT,
            resume=resume,
            progress=progress,
        )
        self.cfg, self.stage = cfg, stage

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
        if self.ctx.distributed and tc.sync_batchnorm:
            self.encoder = convert_sync_batchnorm(self.encoder, self.device)
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
        gen = torch.Generator()  # on the CPU: the same augmentation draws on any device
        gen.manual_seed(tc.seed * 1000 + 29 + self.ctx.rank)
        data = CropBatchSource(self._data_config(), seed=tc.seed, ctx=self.ctx, gen=gen, cuts=cuts)
        steps_per_epoch = data.steps_per_epoch(ft.steps_per_epoch, "finetune.steps_per_epoch")
        self.autocast = bf16_autocast(self.device, tc.precision)
        self.last_accuracy: float | None = None
        self._window: list[torch.Tensor] = []  # (loss, accuracy) of steps since the last log
        self._start(LoopInputs(data, gen, steps_per_epoch))
        self._log(
            f"fine-tuning ({stage}) {self.init.encoder_cfg.name} from {self.init.path}: "
            f"{len(self.classes)} pseudo-speakers, {len(cuts)} cuts; trainable "
            f"{sum(p.numel() for p in self.trainable) / 1e6:.3f} M parameters; "
            f"{self.steps_per_epoch} steps/epoch x {epochs} epochs on {self.device}"
        )

    # ------------------------------------------------------------------ setup

    def _lr_schedule(self, total_steps: int) -> CosineSchedule:
        ft = self.cfg.finetune
        base_lr = ft.frozen_lr if self.stage == "frozen" else ft.full_lr
        warmup = round(ft.warmup_epochs * self.steps_per_epoch)
        final = base_lr * ft.final_lr_ratio
        return CosineSchedule(base_lr, final, total_steps, min(total_steps, warmup))

    def _replan(self, planned_steps: int) -> None:
        self.lr = self._lr_schedule(planned_steps)

    def _data_config(self) -> DataConfig:
        """The shared ``data`` keys as a DINO data section: one ``finetune.crop_seconds`` crop
        per cut, the DINO augmentation, the init model's fbank (the cuts come already filtered
        by ``data.min_duration``)."""
        crop = self.cfg.finetune.crop_seconds
        return self.cfg.data.as_section(
            DataConfig,
            crops=CropConfig(num_global=1, global_seconds=crop, num_local=0, local_seconds=crop),
            features=self.init.features,
        )

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
        self._train_mode()
        stopped_by_time = self._run_epochs(f"fine-tune ({self.stage})")
        result = FinetuneResult(
            out_dir=self.out_dir,
            stage=self.stage,
            steps=self.step,
            total_steps=self.total_steps,
            epochs_done=self.epoch,
            stopped_by_time=stopped_by_time,
            last_loss=self.last_loss,
            last_accuracy=self.last_accuracy,
            embedder=self.out_dir / "embedder.pt",
            classifier=self.out_dir / "classifier.pt",
        )
        self._write_outputs()
        self._log(result.summary())
        self._close()
        return result

    def _train_step(self, batch: dict[str, Any]) -> _StepLog:
        views = self.data.prepare(batch, self.device)
        feats, lengths = views.student[0]  # the (SpecAugmented) crop, (B, T, F)
        labels = torch.tensor([self.labels[i] for i in batch["cut_ids"]], device=self.device)
        margin = self.cfg.margin.margin
        if self.warm_margin:
            margin = scheduled_margin(self.cfg.margin, self.step / self.steps_per_epoch)
        self.classifier.set_margin(margin)
        lr = self.lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        buffers = list(self.net.buffers())
        saved = [b.clone() for b in buffers]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss, cosine = self.model(feats, labels, lengths)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(self.trainable, self.cfg.finetune.clip_grad)
        updated = bool(torch.isfinite(grad_norm))
        if updated:
            self.optimizer.step()
        else:  # the forward's BatchNorm statistics go too
            torch._foreach_copy_(buffers, saved)
        self._count_nonfinite(updated, "lower finetune.frozen_lr / finetune.full_lr")
        accuracy = (cosine.argmax(dim=1) == labels).float().mean()
        self._window.append(torch.stack([loss.detach().float(), accuracy]))
        return _StepLog(lr, margin, float(grad_norm))

    def _after_step(self, output: _StepLog | None) -> None:
        if output is None:
            return
        if self.step % self.settings.log_every and self.batch_in_epoch < self.steps_per_epoch:
            return
        if not self._window:  # every step since the last log was skipped (same on all ranks)
            return
        mean = all_reduce_mean(torch.stack(self._window).mean(dim=0)).cpu()
        self._window = []
        self.last_loss, self.last_accuracy = float(mean[0]), float(mean[1])
        if self.monitor is not None:
            values = {
                "loss": self.last_loss,
                "accuracy": self.last_accuracy,
                "lr": output.lr,
                "margin": output.margin,
                "grad_norm": output.grad_norm,
                "skipped_cuts": float(self.skipped_cuts),
                "epoch": self.epoch + self.batch_in_epoch / self.steps_per_epoch,
            }
            self.monitor.scalars(self.step, values)

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        return {
            "config": to_dict(self.cfg),
            "stage": self.stage,
            "encoder": self.encoder.state_dict(),
            "classifier": self.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "classes": list(self.classes),
            "monitor": {"last_accuracy": self.last_accuracy},
        }

    def _load_state(self, blob: dict[str, Any], path: Path) -> None:
        if blob.get("stage") != self.stage:
            raise DataError(f"{path}: not a checkpoint of a '{self.stage}' fine-tuning stage")
        if list(blob["classes"]) != self.classes:
            raise DataError(f"{path}: the checkpoint was trained on other pseudo-labels")
        self.encoder.load_state_dict(blob["encoder"])
        self.classifier.load_state_dict(blob["classifier"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.last_accuracy = blob["monitor"]["last_accuracy"]

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


def finetune_stage(
    cfg: PseudoLabelConfig,
    stage: Stage,
    cuts: CutSet | str | Path,
    init: str | Path,
    out_dir: str | Path,
    *,
    dist_ctx: DistContext | None = None,
    **kwargs: Any,
) -> FinetuneResult:
    """Run one fine-tuning stage; ``kwargs`` as :class:`MarginFinetuner` takes them
    (``classifier_init``, ``resume``, ``progress``). One process or a ``torchrun`` rank."""
    ctx = dist_ctx or init_distributed(cfg.train.device)
    try:
        return MarginFinetuner(cfg, stage, cuts, init, out_dir, dist_ctx=ctx, **kwargs).fit()
    finally:
        if dist_ctx is None:
            ctx.close()


def _check(cfg: PseudoLabelConfig, epochs: int, lr: float) -> None:
    ft = cfg.finetune
    if epochs < 1:
        raise ConfigError(f"a fine-tuning stage needs >= 1 epoch, got {epochs}")
    if lr <= 0 or ft.crop_seconds <= 0:
        raise ConfigError("finetune learning rates and crop_seconds must be positive")
    if not 0 <= ft.final_lr_ratio <= 1 or ft.warmup_epochs < 0:
        raise ConfigError("need 0 <= finetune.final_lr_ratio <= 1 and warmup_epochs >= 0")
    if cfg.data.batch_size < 2:
        raise ConfigError(f"data.batch_size must be >= 2, got {cfg.data.batch_size}")
