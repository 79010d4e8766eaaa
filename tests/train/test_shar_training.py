"""DINO training from Shar shards (data.train_shar): trains, and resumes exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dino_speech.config import DinoExperimentConfig, apply_overrides
from dino_speech.data.manifests import load_cuts
from dino_speech.data.shar import write_shar
from dino_speech.errors import ConfigError
from dino_speech.train.crop_batches import CropViews
from dino_speech.train.step import DinoStep, StepOutput
from dino_speech.train.trainer import DinoTrainer, train_dino


@pytest.fixture(scope="module")
def shar_config(
    tiny_config: DinoExperimentConfig, tmp_path_factory: pytest.TempPathFactory
) -> DinoExperimentConfig:
    out = tmp_path_factory.mktemp("train_shar") / "shar"
    write_shar(load_cuts(tiny_config.data.train_cuts), out, shard_size=4, progress=False)
    return apply_overrides(
        tiny_config, ["data.train_cuts=", f"data.train_shar={out}", "data.shar_shuffle_buffer=3"]
    )


def test_training_reads_the_shards(shar_config: DinoExperimentConfig, tmp_path: Path) -> None:
    cfg = apply_overrides(shar_config, ["data.num_workers=2", "train.epochs=1"])
    result = train_dino(cfg, tmp_path / "exp", progress=False)
    assert result.steps == 4 and result.last_loss is not None
    assert (tmp_path / "exp" / "embedder.pt").is_file()


def test_train_cuts_and_train_shar_together_are_refused(
    shar_config: DinoExperimentConfig, tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(shar_config, [f"data.train_cuts={tiny_config.data.train_cuts}"])
    with pytest.raises(ConfigError, match="not both"):
        DinoTrainer(cfg, tmp_path / "exp", progress=False)


@pytest.mark.slow  # three short runs: about 10 s, more on a loaded machine
def test_a_run_stopped_inside_a_step_resumes_exactly(
    shar_config: DinoExperimentConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = apply_overrides(shar_config, ["train.steps_per_epoch=3", "train.checkpoint_every=4"])
    straight = DinoTrainer(cfg, tmp_path / "straight", progress=False)
    straight.fit()
    original = DinoStep.__call__

    def stopped_after_the_update(self: DinoStep, views: CropViews, step: int) -> StepOutput:
        out = original(self, views, step)
        if step == 5:
            raise RuntimeError("crash")
        return out

    monkeypatch.setattr(DinoStep, "__call__", stopped_after_the_update)
    with pytest.raises(RuntimeError):
        DinoTrainer(cfg, tmp_path / "exp", progress=False).fit()
    monkeypatch.setattr(DinoStep, "__call__", original)
    resumed = DinoTrainer(cfg, tmp_path / "exp", progress=False)
    assert (resumed.step, resumed.epoch, resumed.batch_in_epoch) == (4, 1, 1)
    assert resumed.fit().steps == 6
    a, b = straight.teacher.state_dict(), resumed.teacher.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(resumed.center.center, straight.center.center)


def test_two_gloo_processes_train_from_the_shards(
    shar_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    """torchrun's setting on CPU: each rank reads its own shards, the teachers stay equal."""
    import torch.multiprocessing as mp
    from test_distributed import _worker, free_port

    cfg = apply_overrides(shar_config, ["data.batch_size=2", "train.epochs=1"])
    mp.spawn(_worker, args=(2, free_port(), cfg, tmp_path), nprocs=2, join=True)
    t0 = torch.load(tmp_path / "teacher0.pt", weights_only=True)
    t1 = torch.load(tmp_path / "teacher1.pt", weights_only=True)
    for key in t0:
        assert torch.equal(t0[key], t1[key]), key
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "2 process(es)" in log
