"""Synchronised BatchNorm on CPU/gloo: two processes normalise as one does on the whole batch."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dino_speech.train.sync_bn import AllReduceBatchNorm, convert_sync_batchnorm

SIZES = (3, 5)  # the processes' batch shares differ in size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 5 * 6, 8),
        nn.BatchNorm1d(8, affine=False),
    )
    with torch.no_grad():  # non-trivial affine parameters
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
    return net


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(sum(SIZES), 2, 5, 6, generator=gen) * 2.0 + 0.7
    w = torch.randn(sum(SIZES), 8, generator=gen)  # the loss: sum(w * out)
    return x, w


def _run(net: nn.Module, x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    net.train()
    out = net(x)
    (out * w).sum().backward()
    return {
        "out": out.detach(),
        "x_grad": x.grad,
        "bn_weight_grad": net[1].weight.grad,
        "conv_grad": net[0].weight.grad,
        **{f"state.{k}": v.clone() for k, v in net.state_dict().items()},
    }


def _worker(rank: int, port: int, out: Path) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        x, w = _data()
        lo = sum(SIZES[:rank])
        part = slice(lo, lo + SIZES[rank])
        for sync in (False, True):
            net = _model()
            if sync:
                net = convert_sync_batchnorm(net, torch.device("cpu"))
                assert isinstance(net[1], AllReduceBatchNorm)
            torch.save(_run(net, x[part], w[part]), out / f"sync{int(sync)}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both processes' results, without (``sync0-rank*.pt``) and with sync (``sync1-*``)."""
    out = tmp_path_factory.mktemp("sync_bn")
    mp.spawn(_worker, args=(free_port(), out), nprocs=2, join=True)
    return out


def _ranks(out: Path, sync: bool) -> list[dict[str, torch.Tensor]]:
    return [torch.load(out / f"sync{int(sync)}-rank{r}.pt", weights_only=True) for r in range(2)]


def test_two_processes_match_one_process_on_the_whole_batch(two_ranks: Path) -> None:
    ranks = _ranks(two_ranks, sync=True)
    x, w = _data()
    whole = _run(_model(), x, w)
    close = {"rtol": 1e-4, "atol": 1e-5}
    # Running statistics: the same on both processes and equal to one process's.
    for key in whole:
        if key.startswith("state."):
            assert torch.equal(ranks[0][key], ranks[1][key]), key
            torch.testing.assert_close(ranks[0][key], whole[key], **close, msg=key)
    assert "state.1.running_mean" in whole and "state.4.running_var" in whole
    # Outputs and input gradients: each process holds its slice of the whole batch's.
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), whole["out"], **close)
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), whole["x_grad"], **close)
    # Parameter gradients: their sum over processes (DDP averages them) is the whole batch's.
    for key in ("bn_weight_grad", "conv_grad"):
        torch.testing.assert_close(ranks[0][key] + ranks[1][key], whole[key], **close)


def test_without_sync_the_processes_differ(two_ranks: Path) -> None:
    ranks = _ranks(two_ranks, sync=False)
    x, w = _data()
    whole = _run(_model(), x, w)
    for key in ("state.1.running_mean", "state.1.running_var", "state.4.running_mean"):
        assert not torch.allclose(ranks[0][key], ranks[1][key]), key
        assert not torch.allclose(ranks[0][key], whole[key], rtol=1e-4, atol=1e-5), key
    assert not torch.allclose(ranks[0]["out"], whole["out"][: SIZES[0]], rtol=1e-4, atol=1e-5)


def test_alone_it_is_plain_batchnorm() -> None:
    plain = _model()
    converted = convert_sync_batchnorm(copy.deepcopy(plain), torch.device("cpu"))
    assert isinstance(converted[1], AllReduceBatchNorm)
    assert isinstance(converted[4], AllReduceBatchNorm) and not converted[4].affine
    x, w = _data()
    a, b = _run(plain, x, w), _run(converted, x, w)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    plain.eval()
    converted.eval()
    assert torch.equal(plain(x), converted(x))


@pytest.mark.parametrize("momentum", [None, 0.3])
def test_momentum_variants_alone(momentum: float | None) -> None:
    bn = nn.BatchNorm1d(3, momentum=momentum)
    sync = convert_sync_batchnorm(copy.deepcopy(bn), torch.device("cpu"))
    x = torch.randn(6, 3, 4)
    for _ in range(2):
        assert torch.equal(bn(x), sync(x))
    assert torch.equal(bn.running_var, sync.running_var)
