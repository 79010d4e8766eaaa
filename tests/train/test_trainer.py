"""The DINO trainer end to end on a tiny corpus: files, exact resume, time budget, collapse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from dino_speech.config import DinoExperimentConfig, apply_overrides, load_config
from dino_speech.errors import ConfigError
from dino_speech.loading import load_embedder
from dino_speech.train.checkpoint import load_checkpoint
from dino_speech.train.crop_batches import CropBatchSource, CropViews
from dino_speech.train.step import DinoStep, StepOutput
from dino_speech.train.trainer import DinoTrainer, train_dino


def teacher_state(trainer: DinoTrainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.teacher.state_dict().items()}


def test_training_writes_the_experiment(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    cfg = apply_overrides(tiny_config, ["train.tensorboard=true", "train.keep_last=1"])
    exp = tmp_path / "exp"
    result = train_dino(cfg, exp, progress=False)
    assert result.steps == result.total_steps == 8 and result.epochs_done == 2
    assert not result.stopped_by_time
    assert load_config(DinoExperimentConfig, exp / "config.yaml") == cfg
    log = (exp / "train.log").read_text()
    for key in ("loss=", "teacher_entropy=", "kl=", "embedding_std=", "effective_rank=", "lr="):
        assert key in log
    assert list((exp / "tb").glob("events.out.tfevents.*"))
    names = sorted(p.name for p in (exp / "checkpoints").glob("*.pt"))
    assert names == ["epoch-0002.pt", "step-00000006.pt"]  # keep_last=1 of each kind
    # The embedder is the teacher's encoder, also when read from a checkpoint.
    encoder, fbank, meta = load_embedder(exp / "embedder.pt")
    assert fbank == cfg.data.features and meta["step"] == 8
    from_ckpt, _, _ = load_embedder(exp / "checkpoints" / "epoch-0002.pt")
    feats = torch.randn(2, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(encoder(feats), from_ckpt(feats))
    blob = load_checkpoint(exp / "checkpoints" / "epoch-0002.pt")
    assert blob["step"] == 8 and blob["epoch"] == 2 and blob["batch_in_epoch"] == 0
    assert set(blob["ranks"][0]) == {"data", "rng"}
    assert "augment" in blob["ranks"][0]["rng"]


@pytest.fixture(scope="module")
def straight(
    tiny_config: DinoExperimentConfig, tmp_path_factory: pytest.TempPathFactory
) -> DinoTrainer:
    """The tiny run trained without interruption (checkpoints do not change the result)."""
    trainer = DinoTrainer(tiny_config, tmp_path_factory.mktemp("straight"), progress=False)
    trainer.fit()
    return trainer


def assert_same_training(resumed: DinoTrainer, straight: DinoTrainer) -> None:
    a, b = teacher_state(straight), teacher_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(resumed.center.center, straight.center.center)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_run_stopped_inside_a_step_resumes_exactly(
    error: type[BaseException],
    tiny_config: DinoExperimentConfig,
    straight: DinoTrainer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A crash or Ctrl-C after step 6's update was applied but before the step counted: a
    # checkpoint now would hold a half-finished step and a loader position one batch ahead.
    cfg = apply_overrides(tiny_config, ["train.checkpoint_every=5"])
    original = DinoStep.__call__

    def stopped_after_the_update(self: DinoStep, views: CropViews, step: int) -> StepOutput:
        out = original(self, views, step)
        if step == 6:
            raise error
        return out

    monkeypatch.setattr(DinoStep, "__call__", stopped_after_the_update)
    with pytest.raises(error):
        DinoTrainer(cfg, tmp_path / "exp", progress=False).fit()
    monkeypatch.setattr(DinoStep, "__call__", original)
    assert not (tmp_path / "exp" / "checkpoints" / "step-00000006.pt").exists()
    # The newest complete checkpoint is the mid-epoch one of step 5 (epoch 1, batch 1).
    resumed = DinoTrainer(cfg, tmp_path / "exp", progress=False)
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (5, 1, 1)
    assert resumed.fit().steps == 8
    assert "resumed from" in (tmp_path / "exp" / "train.log").read_text()
    assert_same_training(resumed, straight)


def test_ctrl_c_between_steps_saves_the_batches_trained(
    tiny_config: DinoExperimentConfig,
    straight: DinoTrainer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ctrl-C once the loader has handed out (and counted) epoch 1's third batch, before the
    # trainer starts on it: the checkpoint must say two batches of epoch 1 are done.
    cfg = apply_overrides(tiny_config, ["train.checkpoint_every=0"])
    original = CropBatchSource.batches

    def interrupted_on_the_third_batch(self: CropBatchSource) -> Iterator[dict]:
        for i, batch in enumerate(original(self)):
            if self.sampler.epoch == 1 and i == 2:
                assert self.sampler.state_dict()["batches_done"] == 3
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(CropBatchSource, "batches", interrupted_on_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        DinoTrainer(cfg, tmp_path / "exp", progress=False).fit()
    monkeypatch.setattr(CropBatchSource, "batches", original)
    blob = load_checkpoint(tmp_path / "exp" / "checkpoints" / "step-00000006.pt")
    assert (blob["step"], blob["epoch"], blob["batch_in_epoch"]) == (6, 1, 2)
    assert blob["ranks"][0]["data"]["sampler"]["batches_done"] == 2
    resumed = DinoTrainer(cfg, tmp_path / "exp", progress=False)
    assert resumed.step == 6
    resumed.fit()
    assert_same_training(resumed, straight)


def test_runs_with_different_seeds_differ(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    # Guards the resume test: equal teachers must not come from a run that never moves.
    one = DinoTrainer(tiny_config, tmp_path / "a", progress=False)
    before = teacher_state(one)
    one.fit()
    other = DinoTrainer(
        apply_overrides(tiny_config, ["train.seed=1"]), tmp_path / "b", progress=False
    )
    other.fit()
    after, alt = teacher_state(one), teacher_state(other)
    key = "backbone.embedding.weight"
    assert not torch.allclose(after[key], before[key])
    assert not torch.allclose(after[key], alt[key])


def test_time_budget_stops_cleanly(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    cfg = apply_overrides(tiny_config, ["train.max_minutes=0.00001"])
    result = train_dino(cfg, tmp_path / "exp", progress=False)
    assert result.stopped_by_time and result.steps == 1
    assert (tmp_path / "exp" / "embedder.pt").is_file()
    assert (tmp_path / "exp" / "checkpoints" / "step-00000001.pt").is_file()
    assert "max_minutes" in result.summary()


def test_no_resume_refuses_an_existing_experiment(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(tiny_config, ["train.epochs=1"])
    train_dino(cfg, tmp_path / "exp", progress=False)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train_dino(cfg, tmp_path / "exp", resume=False, progress=False)
    # Resuming a finished run does nothing more.
    assert train_dino(cfg, tmp_path / "exp", progress=False).steps == 4


def test_uniform_teacher_is_reported_as_collapse(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        tiny_config,
        [
            "dino.teacher_temp=1000.0",
            "dino.warmup_teacher_temp=1000.0",
            "train.log_every=1",
            "train.collapse_patience=3",
        ],
    )
    result = train_dino(cfg, tmp_path / "exp", progress=False)
    assert result.collapse is not None and "COLLAPSED (uniform)" in result.collapse
    assert "DINO COLLAPSE" in (tmp_path / "exp" / "train.log").read_text()


def test_average_last_epochs(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    cfg = apply_overrides(tiny_config, ["train.average_last=2", "train.keep_last=1"])
    trainer = DinoTrainer(cfg, tmp_path / "exp", progress=False)
    trainer.fit()
    _, _, meta = load_embedder(tmp_path / "exp")
    assert meta["averaged"] == ["epoch-0001.pt", "epoch-0002.pt"]
    ckpts = [load_checkpoint(tmp_path / "exp" / "checkpoints" / n) for n in meta["averaged"]]
    expected = (
        ckpts[0]["teacher"]["backbone.embedding.weight"]
        + ckpts[1]["teacher"]["backbone.embedding.weight"]
    ) / 2
    blob = torch.load(tmp_path / "exp" / "embedder.pt", weights_only=True)
    torch.testing.assert_close(blob["state_dict"]["embedding.weight"], expected)


def test_keep_last_zero_keeps_every_checkpoint(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    # average_last must not turn "keep all" into "keep the last average_last epochs".
    cfg = apply_overrides(
        tiny_config,
        [
            "train.epochs=3",
            "train.steps_per_epoch=2",
            "train.checkpoint_every=1",
            "train.keep_last=0",
            "train.average_last=2",
        ],
    )
    train_dino(cfg, tmp_path / "exp", progress=False)
    names = sorted(p.name for p in (tmp_path / "exp" / "checkpoints").glob("*.pt"))
    epochs = ["epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"]
    assert names == [*epochs, "step-00000001.pt", "step-00000003.pt", "step-00000005.pt"]


def test_training_in_worker_mode_does_not_depend_on_the_workers(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    # data.augment_on=workers: each batch's draws derive from its position, not the worker
    teachers = []
    for workers in (0, 2):
        cfg = apply_overrides(
            tiny_config, ["data.augment_on=workers", f"data.num_workers={workers}"]
        )
        trainer = DinoTrainer(cfg, tmp_path / f"w{workers}", progress=False)
        trainer.fit()
        teachers.append(trainer.teacher.state_dict())
    for key, value in teachers[0].items():
        torch.testing.assert_close(teachers[1][key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_and_resumes_on_cuda_in_bf16(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        tiny_config, ["train.device=cuda", "train.precision=bf16", "train.log_every=1"]
    )
    first = train_dino(apply_overrides(cfg, ["train.epochs=1"]), tmp_path / "exp", progress=False)
    assert first.steps == 4 and first.last_loss is not None
    assert torch.isfinite(torch.tensor(first.last_loss))
    result = train_dino(cfg, tmp_path / "exp", progress=False)  # resumes for epoch 2
    assert result.steps == 8 and result.epochs_done == 2
    encoder, _, meta = load_embedder(tmp_path / "exp")
    assert meta["step"] == 8 and next(encoder.parameters()).device.type == "cpu"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_follows_its_bf16_arithmetic(
    tiny_config: DinoExperimentConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    native: bool,
) -> None:
    # Emulated where the CPU lacks bf16: only the choice is patched, the arithmetic is real.
    monkeypatch.setattr("dino_speech.runtime.native_bf16_cpu", lambda: native)
    cfg = apply_overrides(tiny_config, ["train.precision=bf16", "train.epochs=1"])
    trainer = DinoTrainer(cfg, tmp_path / "exp", progress=False)
    assert trainer.step_fn.autocast is native
    conv = next(
        m
        for m in trainer.student.backbone.modules()
        if isinstance(m, torch.nn.modules.conv._ConvNd)
    )
    seen: list[torch.dtype] = []
    conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    result = trainer.fit()
    assert result.steps == 4 and torch.isfinite(torch.tensor(result.last_loss))
    assert set(seen) == {torch.bfloat16 if native else torch.float32}
    assert all(p.dtype == torch.float32 for p in trainer.teacher.parameters())


class _StepClock:
    """A clock for the training loop that advances one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("fit", [True, False])
def test_budget_fitted_schedule_ends_with_the_budget(
    tiny_config: DinoExperimentConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fit: bool,
) -> None:
    # 50 epochs x 4 steps planned, 30 "seconds" of budget at one "second" per step.
    monkeypatch.setattr("dino_speech.train.loop._clock", _StepClock())
    cfg = apply_overrides(
        tiny_config,
        ["train.epochs=50", "train.max_minutes=0.5", f"train.fit_to_budget={str(fit).lower()}"],
    )
    trainer = DinoTrainer(cfg, tmp_path / "exp", progress=False)
    result = trainer.fit()
    assert result.stopped_by_time and result.total_steps == 200
    lr = trainer.schedules.lr
    if fit:
        # The plan shrank to what the budget holds and the run ended on it, at the final lr.
        assert trainer.planned_steps == result.planned_steps == result.steps == lr.total_steps
        assert f"{result.steps}/{result.steps} steps" in result.summary()
        assert 20 <= result.steps < 30
        assert lr(result.steps) == pytest.approx(cfg.optim.min_lr)
        blob = load_checkpoint(tmp_path / "exp" / "checkpoints" / f"step-{result.steps:08d}.pt")
        assert blob["planned_steps"] == result.steps
    else:
        # Cut off by the budget, mid-schedule, with the learning rate still high.
        assert result.steps == 31 and lr.total_steps == 200  # the first step past 30 s
        assert lr(result.steps) > 0.5 * cfg.optim.lr


def test_a_finished_request_is_not_trained_again(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    import json

    exp = tmp_path / "exp"
    cfg = apply_overrides(tiny_config, ["train.epochs=1"])
    first = train_dino(cfg, exp, progress=False)
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["kind"] == "dino" and summary["model"] == cfg.model.name
    assert summary["steps"] == first.steps == 4 and summary["seconds"] >= 0
    stamps = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()}
    again = train_dino(cfg, exp, progress=False)
    assert again == first
    assert {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file()} == stamps
    # more epochs are a new request: it resumes from the newest checkpoint
    more = train_dino(apply_overrides(cfg, ["train.epochs=2"]), exp, progress=False)
    assert more.steps == 8 and json.loads((exp / "summary.json").read_text())["steps"] == 8


def test_a_run_stopped_by_its_budget_has_finished_its_request(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    exp = tmp_path / "exp"
    cfg = apply_overrides(tiny_config, ["train.max_minutes=0.00001"])
    assert train_dino(cfg, exp, progress=False).steps == 1
    assert train_dino(cfg, exp, progress=False).steps == 1  # not another budget's worth
    longer = train_dino(apply_overrides(cfg, ["train.max_minutes=null"]), exp, progress=False)
    assert longer.steps == longer.total_steps == 8
