"""The process's place: device resolution and the torchrun context that inference uses."""

from __future__ import annotations

import pytest
import torch

from dino_speech.errors import ConfigError
from dino_speech.runtime import (
    DistContext,
    bf16_autocast,
    native_bf16_cpu,
    resolve_device,
    torchrun_context,
)


def test_torchrun_context_reads_the_launcher_environment() -> None:
    assert torchrun_context("cpu", env={}) is None
    assert torchrun_context("cpu", env={"WORLD_SIZE": "1", "RANK": "0"}) is None
    ctx = torchrun_context("cpu", env={"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert ctx == DistContext(3, 4, 1, torch.device("cpu"))
    assert ctx.distributed and not ctx.is_main


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="invalid device"):
        resolve_device("tpu9")


@pytest.mark.parametrize(
    ("capabilities", "native"),
    [
        ({"avx512_bf16": True, "amx_bf16": False}, True),
        ({"avx512_bf16": False, "amx_bf16": True}, True),
        ({"avx512_bf16": False, "amx_bf16": False, "avx512_f": True}, False),
        ({}, False),
    ],
)
def test_bf16_autocast_on_a_cpu_only_where_it_has_bf16_arithmetic(
    monkeypatch: pytest.MonkeyPatch, capabilities: dict[str, bool], native: bool
) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    cpu = torch.device("cpu")
    assert native_bf16_cpu() is native
    assert bf16_autocast(cpu, "bf16") is native
    assert bf16_autocast(cpu, "fp32") is False
    assert bf16_autocast(torch.device("cuda", 0), "bf16") is True
    assert bf16_autocast(torch.device("cuda", 0), "fp32") is False
