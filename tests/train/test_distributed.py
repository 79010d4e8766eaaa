"""DDP on CPU with the gloo backend: two processes train, their teachers stay identical."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from dino_speech.config import DinoExperimentConfig, apply_overrides, save_config
from dino_speech.train.checkpoint import find_latest, load_checkpoint
from dino_speech.train.distributed import init_distributed
from dino_speech.train.trainer import DinoTrainer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, cfg: DinoExperimentConfig, out: Path) -> None:
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
    }
    torch.set_num_threads(1)
    os.environ.update(env)
    ctx = init_distributed("cpu")
    try:
        trainer = DinoTrainer(cfg, out / "exp", dist_ctx=ctx, progress=False)
        trainer.fit()
        torch.save(trainer.teacher.state_dict(), out / f"teacher{rank}.pt")
        torch.save(trainer.student.state_dict(), out / f"student{rank}.pt")
    finally:
        ctx.close()


def test_two_gloo_processes_keep_identical_teachers(
    tiny_config: DinoExperimentConfig, tmp_path: Path
) -> None:
    cfg = apply_overrides(tiny_config, ["data.batch_size=2", "train.epochs=1"])
    mp.spawn(_worker, args=(2, free_port(), cfg, tmp_path), nprocs=2, join=True)
    t0 = torch.load(tmp_path / "teacher0.pt", weights_only=True)
    t1 = torch.load(tmp_path / "teacher1.pt", weights_only=True)
    for key in t0:
        assert torch.equal(t0[key], t1[key]), key
    s0 = torch.load(tmp_path / "student0.pt", weights_only=True)
    s1 = torch.load(tmp_path / "student1.pt", weights_only=True)
    # train.sync_batchnorm (on by default): the student's BatchNorm statistics are those of
    # the global batch, the same on both processes.
    assert any("running_mean" in key for key in s0)
    for key in s0:
        assert torch.equal(s0[key], s1[key]), key
    latest = find_latest(tmp_path / "exp" / "checkpoints")
    assert latest is not None
    blob = load_checkpoint(latest)
    assert blob["world_size"] == 2 and len(blob["ranks"]) == 2
    # Each process has its own random streams (augmentation, crops come from the sampler).
    r0, r1 = (r["rng"]["augment"] for r in blob["ranks"])
    assert not torch.equal(r0, r1)
    # The sampler position is the next batch to train: after the epoch, the next epoch's first.
    positions = [
        (r["data"]["sampler"]["epoch"], r["data"]["sampler"]["batches_done"]) for r in blob["ranks"]
    ]
    assert positions == [(1, 0), (1, 0)]
    mid = load_checkpoint(tmp_path / "exp" / "checkpoints" / "step-00000003.pt")
    assert [r["data"]["sampler"]["batches_done"] for r in mid["ranks"]] == [3, 3]


@pytest.mark.slow
def test_torchrun_cli(tiny_config: DinoExperimentConfig, tmp_path: Path) -> None:
    cfg = apply_overrides(tiny_config, ["data.batch_size=2", "train.epochs=1"])
    save_config(cfg, tmp_path / "cfg.yaml")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(free_port()), "-m", "dino_speech.cli.main", "train", "dino",
        "--config", str(tmp_path / "cfg.yaml"), "--exp-dir", str(tmp_path / "exp"), "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in (tmp_path / "exp" / "train.log").read_text()
    assert (tmp_path / "exp" / "embedder.pt").is_file()
