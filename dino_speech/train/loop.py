"""The resumable epoch/step loop shared by DINO training and margin fine-tuning.

:class:`ResumableLoop` owns what both trainers do the same way: the output directory and its
``checkpoints/``, the position (step, epoch, batch within the epoch), the epochs and the time
budget, periodic and end-of-epoch checkpoints (every process contributes its sampler and
random state, the main process writes), exact resume, the progress bar, ``train.log`` and
TensorBoard, the count of skipped cuts and of non-finite steps in a row, and Ctrl-C.

Interrupts. A checkpoint is only ever written between steps: a ``KeyboardInterrupt`` that
lands inside a step (or inside the bookkeeping that closes an epoch) may have left the model
half-updated, so the last checkpoint stays the resume point; one that lands between steps saves
the current state, with the batches actually trained as the sampler's position. Under DDP
nothing is saved on an interrupt (the other processes may not reach the collective).

A subclass builds its models, then hands the loop what it iterates, a :class:`LoopInputs`
(the :class:`~dino_speech.train.crop_batches.CropBatchSource`, the generator of its augmentation and
the batches per epoch), to :meth:`_start`, which resumes from the newest checkpoint; it
implements :meth:`_train_step`, :meth:`_state` and :meth:`_load_state` (plus optionally
:meth:`_after_step`, :meth:`_epoch_done` and :meth:`_replan`); its ``fit`` calls
:meth:`_run_epochs`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from dino_speech.errors import ConfigError, DataError, TrainingDivergedError
from dino_speech.train import checkpoint as ckpt
from dino_speech.train.crop_batches import CropBatchSource
from dino_speech.train.distributed import (
    DistContext,
    all_gather_objects,
    any_rank,
    min_over_ranks,
)
from dino_speech.train.monitor import TrainMonitor

__all__ = [
    "MAX_NONFINITE_STEPS",
    "LoopInputs",
    "LoopSettings",
    "ResumableLoop",
    "TrainingDivergedError",
]

MAX_NONFINITE_STEPS = 20
# Budget-fitted schedules: the step time is measured from this many steps after the start
# (the first steps pay for worker start-up and allocator warm-up), over a sliding window; the
# plan is revised every REPLAN_EVERY steps and aims at BUDGET_MARGIN of the remaining time
# (the end-of-run checkpoint and embedder take a few seconds).
BUDGET_SETTLE_STEPS = 10
REPLAN_EVERY = 10
PLAN_WINDOW = 10  # revisions the step time is measured over (the last 100 steps)
BUDGET_MARGIN = 0.97
_clock = time.monotonic  # the loop's clock (a test steps it by hand)


@dataclass(frozen=True)
class LoopSettings:
    """How long to train and how often to log and checkpoint.

    ``keep_steps`` / ``keep_epochs``: how many step / epoch checkpoints to keep (0: all).
    ``max_minutes``: wall-clock budget of one :meth:`ResumableLoop._run_epochs` (None: none).
    ``fit_to_budget``: with ``max_minutes``, fit the schedules to the budget: the run's planned
    length (:attr:`ResumableLoop.planned_steps`) is re-estimated from the measured step time
    as training goes, so the learning-rate (and every other) schedule ends when the budget
    does instead of being cut off mid-way at a high learning rate.
    """

    epochs: int
    log_every: int
    checkpoint_every: int
    keep_steps: int
    keep_epochs: int
    max_minutes: float | None
    tensorboard: bool
    fit_to_budget: bool = False

    def check(self) -> None:
        if self.epochs < 1 or self.log_every < 1:
            raise ConfigError(
                f"need at least one epoch and log_every >= 1, got {self.epochs} and "
                f"{self.log_every}"
            )
        if self.checkpoint_every < 0 or self.keep_steps < 0 or self.keep_epochs < 0:
            raise ConfigError("need train.checkpoint_every >= 0 and train.keep_last >= 0")


@dataclass(frozen=True)
class LoopInputs:
    """What the loop iterates, handed to :meth:`ResumableLoop._start`.

    ``data``: the batches; ``gen``: the CPU generator the data's augmentation draws from (its
    state is saved in every checkpoint and restored on resume); ``steps_per_epoch``: batches
    per epoch (the same on every process).
    """

    data: CropBatchSource
    gen: torch.Generator
    steps_per_epoch: int


class ResumableLoop:
    """Base class of the trainers (see the module docstring).

    Args:
        out_dir: where ``train.log``, ``tb/`` and ``checkpoints/`` go.
        ctx: this process's place in (possibly distributed) training.
        settings: epochs, logging and checkpoint cadence, time budget.
        checkpoint_format: the ``"format"`` of this trainer's checkpoints.
        resume: continue from the newest checkpoint in ``out_dir`` (else refuse to run where
            checkpoints exist).
        progress: show a progress bar (main process only).
    """

    # Set by _start, from its LoopInputs.
    data: CropBatchSource
    gen: torch.Generator
    steps_per_epoch: int

    def __init__(
        self,
        out_dir: str | Path,
        ctx: DistContext,
        settings: LoopSettings,
        *,
        checkpoint_format: str,
        resume: bool,
        progress: bool,
    ) -> None:
        settings.check()
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.ctx = ctx
        self.device = ctx.device
        self.settings = settings
        self.checkpoint_format = checkpoint_format
        self.progress = progress and ctx.is_main
        self._latest = ckpt.find_latest(self.ckpt_dir) if self.ckpt_dir.is_dir() else None
        if self._latest is not None and not resume:
            raise ConfigError(
                f"{self.out_dir} already holds checkpoints; resume it or choose a new directory"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        self.monitor = TrainMonitor(self.out_dir, settings.tensorboard) if ctx.is_main else None
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.skipped_cuts = 0
        self.last_loss: float | None = None
        self._nonfinite = 0
        self._mid_update = False
        self._planned: int | None = None
        self._started = False

    def _start(self, inputs: LoopInputs) -> None:
        """Take the loop's inputs, let :meth:`_replan` build the schedules for the run's
        length, and continue from the newest checkpoint if there is one. A subclass calls it
        once, at the end of building (its models, optimiser and schedules exist)."""
        if self._started:
            raise RuntimeError("ResumableLoop._start called twice")
        self.data, self.gen = inputs.data, inputs.gen
        self.steps_per_epoch = inputs.steps_per_epoch
        self._started = True
        self._replan(self.planned_steps)
        self._resume_latest()

    @property
    def total_steps(self) -> int:
        return self.settings.epochs * self.steps_per_epoch

    @property
    def planned_steps(self) -> int:
        """The step at which the schedules end: ``total_steps``, or less where a budget-fitted
        run (``fit_to_budget``) expects its time to run out first."""
        return self.total_steps if self._planned is None else self._planned

    def _set_planned(self, steps: int) -> None:
        steps = max(self.step + 1, min(self.total_steps, steps))
        if steps != self.planned_steps:
            self._planned = steps
            self._replan(steps)

    # ------------------------------------------------------------------ subclass hooks

    def _train_step(self, batch: dict[str, Any]) -> Any:
        """One update on a non-empty loader batch; returns what :meth:`_after_step` logs."""
        raise NotImplementedError

    def _after_step(self, output: Any) -> None:
        """Called after every step (``output`` is None for a skipped empty batch), once the
        position counts it; logging goes here."""

    def _epoch_done(self) -> None:
        """Called after each end-of-epoch checkpoint."""

    def _replan(self, planned_steps: int) -> None:
        """The run will end at ``planned_steps``: rebuild the schedules to end there. Called by
        :meth:`_start` with :attr:`total_steps`, again when the checkpoint it resumes from
        holds another plan, and whenever a budget-fitted run revises its plan."""

    def _state(self) -> dict[str, Any]:
        """The trainer's own checkpoint entries (models, optimiser, config, ``monitor``)."""
        raise NotImplementedError

    def _load_state(self, blob: dict[str, Any], path: Path) -> None:
        """Restore what :meth:`_state` saved; raise DataError when ``blob`` does not fit."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the loop

    def _run_epochs(self, desc: str) -> bool:
        """Train until the epochs are done or the time budget is spent; True when the budget
        stopped it before the last epoch ended."""
        if not self._started:
            raise RuntimeError(f"{type(self).__name__} never called _start(LoopInputs(...))")
        s = self.settings
        budget = None if s.max_minutes is None else 60.0 * s.max_minutes
        start = _clock()
        fit = budget is not None and s.fit_to_budget
        marks: deque[tuple[int, float]] = deque(maxlen=PLAN_WINDOW + 1)  # (step, time)
        out_of_time = False
        self._mid_update = False
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            disable=not self.progress,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
        )
        try:
            while self.epoch < s.epochs and not out_of_time:
                if self.batch_in_epoch == 0:
                    self.data.set_epoch(self.epoch)
                for batch in self.data.batches():
                    if self.batch_in_epoch >= self.steps_per_epoch:
                        break
                    self._mid_update = True
                    output = self._step_or_skip(batch)
                    self.step += 1
                    self.batch_in_epoch += 1
                    self._mid_update = False
                    self._after_step(output)
                    bar.update(1)
                    if self.last_loss is not None:
                        bar.set_postfix(loss=f"{self.last_loss:.3f}", epoch=self.epoch)
                    epoch_end = self.batch_in_epoch >= self.steps_per_epoch
                    if budget is not None:
                        now = _clock()
                        out_of_time = any_rank(now - start > budget, self.device)
                        if fit:
                            self._plan_budget(marks, now, start, budget)
                            out_of_time = out_of_time or self.step >= self.planned_steps
                    periodic = s.checkpoint_every > 0 and self.step % s.checkpoint_every == 0
                    if not epoch_end and (periodic or out_of_time):
                        self._save(ckpt.checkpoint_name(self.step))
                    if out_of_time or epoch_end:
                        break
                if self.batch_in_epoch >= self.steps_per_epoch or not out_of_time:
                    if self.batch_in_epoch < self.steps_per_epoch:
                        self._warn(
                            f"epoch {self.epoch} ended after {self.batch_in_epoch} of "
                            f"{self.steps_per_epoch} expected batches"
                        )
                    self._mid_update = True
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    self._mid_update = False
                    self._save(ckpt.checkpoint_name(self.step, epoch=self.epoch))
                    self._epoch_done()
        except KeyboardInterrupt:
            if self.ctx.distributed or self._mid_update:
                self._log(
                    f"interrupted at step {self.step}; rerun to resume from the last checkpoint"
                )
            else:
                self._save(ckpt.checkpoint_name(self.step))
                self._log(f"interrupted at step {self.step}; checkpoint saved, rerun to resume")
            raise
        finally:
            bar.close()
        return out_of_time and self.epoch < s.epochs

    def _plan_budget(
        self, marks: deque[tuple[int, float]], now: float, start: float, budget: float
    ) -> None:
        """Revise :attr:`planned_steps` from the recent step time.

        ``marks`` holds ``(step, time)`` every REPLAN_EVERY steps after the first
        BUDGET_SETTLE_STEPS; the step time is measured over the last PLAN_WINDOW of them, so a
        stall (a suspended machine, a burst of load) stops counting once it is that far back.
        """
        if self.step < BUDGET_SETTLE_STEPS or (marks and self.step - marks[-1][0] < REPLAN_EVERY):
            return
        marks.append((self.step, now))
        if len(marks) < 2:
            return
        seconds_per_step = (now - marks[0][1]) / (self.step - marks[0][0])
        left = BUDGET_MARGIN * (budget - (now - start))
        planned = self.step + int(max(0.0, left) / seconds_per_step)
        self._set_planned(int(min_over_ranks(float(planned), self.device)))

    def _step_or_skip(self, batch: dict[str, Any]) -> Any:
        self.skipped_cuts += int(batch.get("num_skipped", 0))
        empty = len(batch["cut_ids"]) == 0
        if any_rank(empty, self.device) if self.ctx.distributed else empty:
            # Every cut of the batch was unreadable (on some process): no update anywhere.
            self._warn(f"step {self.step}: a batch without readable audio; step skipped")
            return None
        return self._train_step(batch)

    def _count_nonfinite(self, updated: bool, hint: str) -> None:
        """Track skipped non-finite steps; TrainingDivergedError after too many in a row."""
        if updated:
            self._nonfinite = 0
            return
        self._nonfinite += 1
        self._warn(f"step {self.step}: non-finite loss or gradients; update skipped")
        if self._nonfinite >= MAX_NONFINITE_STEPS:
            raise TrainingDivergedError(
                f"loss or gradients were NaN/Inf for {self._nonfinite} steps in a row "
                f"(step {self.step}); {hint}"
            )

    # ------------------------------------------------------------------ checkpoints

    def _save(self, name: str) -> None:
        """Every process contributes its sampler and RNG state; the main process writes."""
        ranks = all_gather_objects(
            {
                "data": self.data.state_dict(self.epoch, self.batch_in_epoch),
                "rng": ckpt.capture_rng(self.gen),
            }
        )
        if not self.ctx.is_main:
            return
        state = self._state()
        blob = {
            **state,
            "format": self.checkpoint_format,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "planned_steps": self._planned,
            "world_size": self.ctx.world_size,
            "monitor": {
                **state.get("monitor", {}),
                "skipped_cuts": self.skipped_cuts,
                "last_loss": self.last_loss,
            },
            "ranks": ranks,
        }
        previous = ckpt.find_latest(self.ckpt_dir)
        path = ckpt.save_checkpoint(self.ckpt_dir, name, blob)
        s = self.settings
        # The one before the newest stays, whatever keep_last says: the fallback of a resume
        # that finds the newest damaged.
        protect = [previous] if previous is not None and previous != path else []
        ckpt.prune_checkpoints(self.ckpt_dir, s.keep_steps, s.keep_epochs, protect=protect)

    def _resume_latest(self) -> None:
        """Continue from the newest checkpoint, if there is one (part of :meth:`_start`)."""
        if self._latest is None:
            return
        path, blob = self._read_resume_checkpoint()
        self._load_state(blob, path)
        self.step, self.epoch = blob["step"], blob["epoch"]
        self.batch_in_epoch = blob["batch_in_epoch"]
        planned = blob.get("planned_steps")
        if planned is not None:
            self._set_planned(int(planned))
        monitor = blob["monitor"]
        self.skipped_cuts, self.last_loss = monitor["skipped_cuts"], monitor["last_loss"]
        ranks = blob["ranks"]
        if len(ranks) == self.ctx.world_size:
            mine = ranks[self.ctx.rank]
            ckpt.restore_rng(mine["rng"], self.gen)
            self.data.load_state_dict(mine["data"], sampler=self.batch_in_epoch > 0)
        else:
            self._warn(
                f"checkpoint was written by {len(ranks)} processes, this run has "
                f"{self.ctx.world_size}: the random streams restart and the interrupted epoch "
                "restarts from its beginning, so the resume is not exact"
            )
            self.batch_in_epoch = 0
        self._log(f"resumed from {path} at step {self.step} (epoch {self.epoch})")

    def _read_resume_checkpoint(self) -> tuple[Path, dict[str, Any]]:
        """The newest readable checkpoint and its contents.

        A newest file that cannot be read (truncated, corrupt) is not deleted: the main
        process moves it aside as ``NAME.unreadable`` (so no later save overwrites it and no
        later resume tries it again) and the run resumes from the previous one, with a warning
        naming both. DataError when no checkpoint can be read.
        """
        what = "checkpoint of this trainer"
        candidates = ckpt.resume_candidates(self.ckpt_dir) or [self._latest]
        first_error: DataError | None = None
        bad: list[Path] = []
        for path in candidates:
            try:
                blob = ckpt.load_checkpoint(path, self.checkpoint_format, what)
            except DataError as exc:
                first_error = first_error or exc
                bad.append(path)
                continue
            if bad:
                kept = [self._set_aside(p) for p in bad]
                self._warn(
                    f"cannot read the newest checkpoint {bad[0]} ({_reason(first_error)}); "
                    f"resuming from the previous one, {path}, instead; the unreadable file "
                    f"was kept as {', '.join(str(k) for k in kept)}"
                )
            return path, blob
        assert first_error is not None
        raise first_error

    def _set_aside(self, path: Path) -> Path:
        target = path.with_name(path.name + ".unreadable")
        if not self.ctx.is_main:
            return target
        n = 1
        while target.exists():
            target = path.with_name(f"{path.name}.unreadable.{n}")
            n += 1
        try:
            path.rename(target)
        except OSError:
            return path  # stays where it is (a later save of that name replaces it)
        return target

    # ------------------------------------------------------------------ logging

    def _log(self, message: str) -> None:
        if self.monitor is not None:
            self.monitor.info(message)

    def _warn(self, message: str) -> None:
        if self.monitor is not None:
            self.monitor.warning(message)

    def _close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()


def _reason(error: DataError | None) -> str:
    """The reason of a load error, without the path it starts with."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
    text = text.split(": ", 1)[1] if ": " in text else text
    return text if len(text) <= 200 else text[:197] + "..."
