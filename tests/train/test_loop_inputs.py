"""ResumableLoop takes what it iterates as one LoopInputs, through _start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from dino_speech.runtime import DistContext
from dino_speech.train.loop import LoopInputs, LoopSettings, ResumableLoop

SETTINGS = LoopSettings(
    epochs=3,
    log_every=1,
    checkpoint_every=0,
    keep_steps=0,
    keep_epochs=0,
    max_minutes=None,
    tensorboard=False,
)


class _Loop(ResumableLoop):
    def __init__(self, out_dir: Path) -> None:
        ctx = DistContext(0, 1, 0, torch.device("cpu"))
        super().__init__(
            out_dir, ctx, SETTINGS, checkpoint_format="test", resume=True, progress=False
        )
        self.replans: list[int] = []

    def _replan(self, planned_steps: int) -> None:
        self.replans.append(planned_steps)


def test_start_attaches_the_inputs_and_plans_the_run(tmp_path: Path) -> None:
    loop = _Loop(tmp_path)
    source: Any = object()  # no checkpoint to resume: the source is not touched
    gen = torch.Generator()
    loop._start(LoopInputs(source, gen, steps_per_epoch=5))
    assert loop.data is source and loop.gen is gen and loop.steps_per_epoch == 5
    assert loop.total_steps == loop.planned_steps == 15
    assert loop.replans == [15]  # the schedules are built for the run's length
    with pytest.raises(RuntimeError, match="twice"):
        loop._start(LoopInputs(source, gen, steps_per_epoch=5))
    loop._close()


def test_a_loop_that_never_started_refuses_to_run(tmp_path: Path) -> None:
    loop = _Loop(tmp_path)
    with pytest.raises(RuntimeError, match="_start"):
        loop._run_epochs("test")
    loop._close()
