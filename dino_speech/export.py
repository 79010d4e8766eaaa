"""Export a trained embedder to TorchScript or ONNX, features included.

The exported module maps ONE waveform to its embedding:

    input  ``wave``:      ``(S,)`` float32, mono, in [-1, 1], at the model's sample rate,
                          any length of at least one frame (25 ms);
    output ``embedding``: ``(D,)`` float32.

The log-Mel fbank and its mean normalisation are part of the graph, so a deployment only
resamples and mixes to mono. There is no windowing of long audio inside the graph (the Python
:class:`~dino_speech.api.Embedder` does that); the whole waveform is embedded at once.

TorchScript is produced by tracing; ONNX by ``torch.onnx.export(dynamo=True)`` with a dynamic
length (needs ``onnxscript``). After export the file is reloaded and checked against the eager
model on two waveforms of different lengths (ONNX: the graph is validated with
``onnx.checker`` and run with ``onnxruntime`` when it is installed). Model facts (sample rate,
embedding size, fbank settings) travel inside the file: TorchScript ``_extra_files``
``meta.json``, ONNX ``metadata_props``.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dino_speech.config import to_dict
from dino_speech.data.features import Fbank
from dino_speech.errors import ConfigError, DataError

__all__ = ["EXPORT_FORMATS", "ExportSummary", "WaveformEmbedder", "export_embedder"]

EXPORT_FORMATS = ("torchscript", "onnx")


class WaveformEmbedder(nn.Module):
    """``wave (S,)`` → ``embedding (D,)``: fbank + encoder of one utterance."""

    def __init__(self, fbank: Fbank, encoder: nn.Module) -> None:
        super().__init__()
        self.fbank = fbank
        self.encoder = encoder

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        feats, _ = self.fbank(wave.unsqueeze(0))
        return self.encoder(feats)[0]


@dataclass
class ExportSummary:
    """Where the export went and how closely it reproduces the eager model."""

    path: Path
    format: str
    sample_rate: int
    embed_dim: int
    max_abs_diff: float | None  # None: not run (ONNX without onnxruntime)
    checked_lengths: tuple[int, ...]

    def describe(self) -> str:
        check = (
            f"max |exported - eager| = {self.max_abs_diff:.2e} on waveforms of "
            f"{', '.join(str(n) for n in self.checked_lengths)} samples"
            if self.max_abs_diff is not None
            else "graph validated by onnx.checker (onnxruntime not installed: not run)"
        )
        return (
            f"{self.format} model -> {self.path}\n"
            f"input 'wave': (num_samples,) float32 mono at {self.sample_rate} Hz; "
            f"output 'embedding': ({self.embed_dim},) float32\n{check}"
        )


def export_embedder(
    model: str | Path,
    out: str | Path,
    format: str = "torchscript",
    *,
    example_seconds: float = 3.0,
    tolerance: float = 1e-4,
) -> ExportSummary:
    """Export the embedder at ``model`` (experiment dir, embedder file or checkpoint).

    Raises:
        ConfigError: unknown format, or ONNX export without ``onnx``/``onnxscript``.
        DataError: the model cannot be loaded, or the exported model differs from the eager
            one by more than ``tolerance`` (the file is removed then).
    """
    from dino_speech.models.package import load_embedder

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format '{format}'; valid: {', '.join(EXPORT_FORMATS)}")
    encoder, features, meta = load_embedder(model, "cpu")
    module = WaveformEmbedder(Fbank(features), encoder).eval()
    sr = features.sample_rate
    info = {
        "format": "dino_speech/exported-embedder-v1",
        "input": "wave (num_samples,) float32 mono in [-1, 1]",
        "sample_rate": sr,
        "embed_dim": int(encoder.embed_dim),
        "features": to_dict(features),
        "source": str(model),
        "meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))},
    }
    gen = torch.Generator().manual_seed(0)
    lengths = (int(example_seconds * sr), int(0.77 * example_seconds * sr) + 123)
    waves = [0.1 * torch.randn(n, generator=gen) for n in lengths]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "torchscript":
        run = _export_torchscript(module, waves[0], out, info)
    else:
        run = _export_onnx(module, waves[0], out, info)
    diff = None
    if run is not None:
        try:
            with torch.inference_mode():
                diff = max(float(np.abs(run(w.numpy()) - module(w).numpy()).max()) for w in waves)
        except Exception as exc:
            out.unlink(missing_ok=True)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"the exported {format} model fails to run: {reason}") from None
        if not diff <= tolerance:
            out.unlink(missing_ok=True)
            raise DataError(
                f"the exported {format} model differs from the eager model by {diff:.3g} "
                f"(> {tolerance:g}); nothing written"
            )
    return ExportSummary(out, format, sr, int(encoder.embed_dim), diff, lengths)


def _export_torchscript(
    module: nn.Module, example: torch.Tensor, out: Path, info: dict[str, Any]
) -> Any:
    tmp = out.with_name(f".{out.name}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        # Shape-dependent Python branches are fixed at trace time; the check against the
        # eager model on another length catches any that would change the result.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={"meta.json": json.dumps(info)})
        tmp.replace(out)
        loaded = torch.jit.load(str(out))

    def run(wave: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return loaded(torch.from_numpy(wave)).numpy()

    return run


def _export_onnx(module: nn.Module, example: torch.Tensor, out: Path, info: dict[str, Any]) -> Any:
    try:
        import onnx
        import onnxscript  # noqa: F401 - required by the dynamo exporter
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs the 'onnx' and 'onnxscript' packages ({exc.name} is missing)"
        ) from None
    max_samples = 4 * 3600 * module.fbank.cfg.sample_rate  # four hours
    samples = torch.export.Dim("samples", min=module.fbank.frame_length, max=max_samples)
    tmp = out.with_name(f".{out.name}.tmp")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            dynamic_shapes={"wave": {0: samples}},
            input_names=["wave"],
            output_names=["embedding"],
            external_data=False,
        )
    proto = program.model_proto
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(wave: np.ndarray) -> np.ndarray:
        return session.run(None, {"wave": wave.astype(np.float32)})[0]

    return run
