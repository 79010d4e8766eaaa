"""Export a trained embedder to TorchScript or ONNX, features included.

Two input forms (``input_form``):

``"batch"`` (the default; what a deployment serving many requests wants)
    input  ``wave``:      ``(batch, samples)`` float32, mono, in [-1, 1], at the model's sample
                          rate; row ``b`` holds its waveform in ``wave[b, :lengths[b]]`` and
                          anything (zeros) after it;
    input  ``lengths``:   ``(batch,)`` int64, the valid samples of each row, each at least one
                          frame (25 ms, 400 samples at 16 kHz);
    output ``embedding``: ``(batch, D)`` float32; row ``b`` is the embedding of
                          ``wave[b, :lengths[b]]`` alone: frames past a row's length are masked,
                          its mean normalisation and pooling use its valid frames only.
    ``samples`` must be at least two frames (35 ms, 560 samples at 16 kHz).

``"single"`` (one waveform per call, the original interface)
    input  ``wave``:      ``(samples,)`` float32, mono, in [-1, 1], any length of at least one
                          frame (25 ms);
    output ``embedding``: ``(D,)`` float32.

Batch size and length are dynamic in both files. The log-Mel fbank and its mean normalisation
are part of the graph, so a deployment only resamples and mixes to mono (for a speechbrain ECAPA
model folder: speechbrain's own fbank and sentence normalisation, see
:mod:`dino_speech.models.speechbrain_ecapa`). There is no windowing
of long audio inside the graph (the Python :class:`~dino_speech.embedder.Embedder` does that); each
waveform is embedded whole.

TorchScript is produced by tracing; ONNX by ``torch.onnx.export(dynamo=True)`` (needs
``onnxscript``). After export the file is reloaded and checked against the eager model of each
waveform alone: the single form on two waveforms of different lengths, the batch form on a
zero-padded batch of three waveforms of different lengths and on a batch of one (ONNX: the graph
is validated with ``onnx.checker`` and run with ``onnxruntime`` when it is installed). Model
facts (input form, sample rate, embedding size, fbank settings) travel inside the file:
TorchScript ``_extra_files`` ``meta.json``, ONNX ``metadata_props``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dino_speech.config import to_dict
from dino_speech.data.features import build_fbank
from dino_speech.errors import ConfigError, DataError
from dino_speech.file_io import atomic_path

__all__ = [
    "EXPORT_FORMATS",
    "INPUT_FORMS",
    "BatchWaveformEmbedder",
    "ExportSummary",
    "WaveformEmbedder",
    "export_embedder",
]

EXPORT_FORMATS = ("torchscript", "onnx")
INPUT_FORMS = ("batch", "single")

# {"wave": array, ...} -> embedding(s): an exported model, reloaded
Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


class WaveformEmbedder(nn.Module):
    """``wave (S,)`` → ``embedding (D,)``: fbank + encoder of one utterance."""

    def __init__(self, fbank: nn.Module, encoder: nn.Module) -> None:
        super().__init__()
        self.fbank = fbank
        self.encoder = encoder

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        feats, _ = self.fbank(wave.unsqueeze(0))
        return self.encoder(feats)[0]


class BatchWaveformEmbedder(nn.Module):
    """``wave (B, S)``, ``lengths (B,)`` → ``embedding (B, D)``: row ``b`` embeds
    ``wave[b, :lengths[b]]`` as :class:`WaveformEmbedder` does alone (padding is masked)."""

    def __init__(self, fbank: nn.Module, encoder: nn.Module) -> None:
        super().__init__()
        self.fbank = fbank
        self.encoder = encoder

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats, frame_lengths = self.fbank(wave, lengths)
        return self.encoder(feats, frame_lengths)


@dataclass
class ExportSummary:
    """Where the export went and how closely it reproduces the eager model."""

    path: Path
    format: str
    sample_rate: int
    embed_dim: int
    max_abs_diff: float | None  # None: not run (ONNX without onnxruntime)
    checked_lengths: tuple[int, ...]
    input_form: str = "single"
    card: Path | None = None  # the model card written beside the file

    def signature(self) -> str:
        """The inputs and outputs of the exported model, in one line."""
        if self.input_form == "batch":
            return (
                f"input 'wave': (batch, num_samples) float32 mono at {self.sample_rate} Hz, "
                f"zero-padded; input 'lengths': (batch,) int64 valid samples per row; "
                f"output 'embedding': (batch, {self.embed_dim}) float32"
            )
        return (
            f"input 'wave': (num_samples,) float32 mono at {self.sample_rate} Hz; "
            f"output 'embedding': ({self.embed_dim},) float32"
        )

    def describe(self) -> str:
        where = "in one padded batch and alone" if self.input_form == "batch" else ""
        check = (
            f"max |exported - eager| = {self.max_abs_diff:.2e} on waveforms of "
            f"{', '.join(str(n) for n in self.checked_lengths)} samples {where}".rstrip()
            if self.max_abs_diff is not None
            else "graph validated by onnx.checker (onnxruntime not installed: not run)"
        )
        card = f"\nmodel card -> {self.card}" if self.card is not None else ""
        return f"{self.format} model -> {self.path}\n{self.signature()}\n{check}{card}"


def export_embedder(
    model: str | Path,
    out: str | Path,
    format: str = "torchscript",
    *,
    input_form: str = "batch",
    example_seconds: float = 3.0,
    tolerance: float = 1e-4,
    model_card: bool = True,
) -> ExportSummary:
    """Export the embedder at ``model`` (experiment dir, embedder file, checkpoint, built-in).

    Args:
        input_form: ``"batch"`` (``wave (B, S)``, ``lengths (B,)`` → ``(B, D)``) or
            ``"single"`` (``wave (S,)`` → ``(D,)``); see the module docstring.
        example_seconds: length of the example waveforms traced and checked.
        tolerance: largest allowed ``|exported - eager|`` over the checked embeddings.
        model_card: write a ``README.md`` model card beside ``out``
            (:func:`dino_speech.model_card.write_model_card`).

    Raises:
        ConfigError: unknown format or input form, or ONNX export without
            ``onnx``/``onnxscript``.
        DataError: the model cannot be loaded, or the exported model differs from the eager
            one by more than ``tolerance`` (the file is removed then).
    """
    from dino_speech.loading import load_embedder

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format '{format}'; valid: {', '.join(EXPORT_FORMATS)}")
    if input_form not in INPUT_FORMS:
        raise ConfigError(f"unknown input form '{input_form}'; valid: {', '.join(INPUT_FORMS)}")
    encoder, features, meta = load_embedder(model, "cpu")
    fbank = build_fbank(features)
    single = WaveformEmbedder(fbank, encoder).eval()
    module = single if input_form == "single" else BatchWaveformEmbedder(fbank, encoder).eval()
    sr = features.sample_rate
    info = {
        "format": "dino_speech/exported-embedder-v1",
        "input_form": input_form,
        "input": _INPUT_DOC[input_form],
        "sample_rate": sr,
        "embed_dim": int(encoder.embed_dim),
        "features": to_dict(features),
        "source": str(model),
        "meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))},
    }
    gen = torch.Generator().manual_seed(0)
    n = int(example_seconds * sr)
    lengths = (n, int(0.77 * n) + 123, int(0.21 * n) + 57)
    waves = [0.1 * torch.randn(k, generator=gen) for k in lengths]
    if input_form == "single":
        example: tuple[torch.Tensor, ...] = (waves[0],)
        checks = [{"wave": w.numpy()} for w in waves[:2]]
        lengths = lengths[:2]
    else:
        # traced on a batch of two; checked on three mixed lengths and on a batch of one
        example = _pad(waves[:2])
        checks = [_batch_inputs(waves), _batch_inputs(waves[1:2])]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _traceable(encoder):
        if format == "torchscript":
            run = _export_torchscript(module, example, out, info)
        else:
            run = _export_onnx(module, example, out, info)
    diff = None
    if run is not None:
        try:
            with torch.inference_mode():
                diff = max(_max_diff(run(inputs), single, inputs) for inputs in checks)
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
    summary = ExportSummary(out, format, sr, int(encoder.embed_dim), diff, lengths, input_form)
    if model_card:
        from dino_speech.model_card import write_model_card

        summary.card = write_model_card(
            out,
            model,
            embed_dim=summary.embed_dim,
            sample_rate=sr,
            file_entry=f"{format}, {summary.signature()}",
            usage=_USAGE[format, input_form].replace('"MODEL"', json.dumps(out.name)),
        )
    return summary


_INPUT_DOC = {
    "batch": "wave (batch, num_samples) float32 mono in [-1, 1], zero-padded; "
    "lengths (batch,) int64 valid samples per row -> embedding (batch, D) float32",
    "single": "wave (num_samples,) float32 mono in [-1, 1] -> embedding (D,) float32",
}


_USAGE = {
    ("onnx", "batch"): """```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("MODEL", providers=["CPUExecutionProvider"])
# waves: list of 1-D float32 arrays at the model's sample rate
lengths = np.array([len(w) for w in waves], dtype=np.int64)
batch = np.zeros((len(waves), lengths.max()), dtype=np.float32)
for row, w in enumerate(waves):
    batch[row, : len(w)] = w
embeddings = session.run(None, {"wave": batch, "lengths": lengths})[0]  # (batch, D)
```""",
    ("onnx", "single"): """```python
import onnxruntime as ort
session = ort.InferenceSession("MODEL", providers=["CPUExecutionProvider"])
embedding = session.run(None, {"wave": wave})[0]  # wave (num_samples,) float32 -> (D,)
```""",
    ("torchscript", "batch"): """```python
import torch
model = torch.jit.load("MODEL")
embeddings = model(batch, lengths)  # (B, S) float32 zero-padded, (B,) int64 -> (B, D)
```""",
    ("torchscript", "single"): """```python
import torch
model = torch.jit.load("MODEL")
embedding = model(wave)  # (num_samples,) float32 -> (D,)
```""",
}


def _pad(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D waveforms → zero-padded ``(B, max S)`` float32 and ``(B,)`` int64 lengths."""
    lengths = torch.tensor([w.shape[0] for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : wave.shape[0]] = wave
    return batch, lengths


def _batch_inputs(waves: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
    wave, lengths = _pad(waves)
    return {"wave": wave.numpy(), "lengths": lengths.numpy()}


def _max_diff(got: np.ndarray, single: nn.Module, inputs: dict[str, np.ndarray]) -> float:
    """``max |got - eager|``, the eager embedding taken of each waveform alone."""
    wave = torch.from_numpy(inputs["wave"])
    if "lengths" not in inputs:
        return float(np.abs(got - single(wave).numpy()).max())
    if got.shape[0] != wave.shape[0]:
        raise ValueError(f"{wave.shape[0]} waveforms in, {got.shape[0]} embeddings out")
    alone = [single(w[:n]).numpy() for w, n in zip(wave, inputs["lengths"].tolist(), strict=True)]
    return float(np.abs(got - np.stack(alone)).max())


def _traceable(encoder: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Around a trace: speechbrain's ECAPA masks made batch-size independent (if in use)."""
    sb_ecapa = sys.modules.get("speechbrain.lobes.models.ECAPA_TDNN")
    if sb_ecapa is not None and any(isinstance(m, sb_ecapa.ECAPA_TDNN) for m in encoder.modules()):
        from dino_speech.models.ecapa import traceable_masks

        return traceable_masks()
    return contextlib.nullcontext()


@contextlib.contextmanager
def _quiet_loggers(names: Sequence[str] = ("onnxscript", "onnx_ir")) -> Iterator[None]:
    """The ONNX optimiser logs every rewrite at INFO; keep only its warnings during export."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _export_torchscript(
    module: nn.Module, example: tuple[torch.Tensor, ...], out: Path, info: dict[str, Any]
) -> Runner:
    with torch.no_grad(), warnings.catch_warnings():
        # Shape-dependent Python branches are fixed at trace time; the check against the
        # eager model on other lengths (and batch sizes) catches any that would change the result.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        traced = torch.jit.trace(module, example, check_trace=False)
        with atomic_path(out) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files={"meta.json": json.dumps(info)})
        loaded = torch.jit.load(str(out))

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return loaded(*(torch.from_numpy(v) for v in inputs.values())).numpy()

    return run


def _export_onnx(
    module: nn.Module, example: tuple[torch.Tensor, ...], out: Path, info: dict[str, Any]
) -> Runner | None:
    try:
        import onnx
        import onnxscript  # noqa: F401 - required by the dynamo exporter
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs the 'onnx' and 'onnxscript' packages ({exc.name} is missing)"
        ) from None
    fbank = module.fbank
    max_samples = 4 * 3600 * fbank.cfg.sample_rate  # four hours
    if len(example) == 1:
        samples = torch.export.Dim("samples", min=fbank.frame_length, max=max_samples)
        names, dynamic = ["wave"], {"wave": {0: samples}}
    else:
        # The fbank graph is exported for two frames or more (the exporter specialises a
        # single frame); rows may still hold as little as one frame of valid audio.
        min_samples = fbank.frame_length + fbank.frame_shift
        samples = torch.export.Dim("samples", min=min_samples, max=max_samples)
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        names = ["wave", "lengths"]
        dynamic = {"wave": {0: batch, 1: samples}, "lengths": {0: batch}}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_loggers():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            dynamic_shapes=dynamic,
            input_names=names,
            output_names=["embedding"],
            external_data=False,
        )
    proto = program.model_proto
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(out) as tmp:
        onnx.save(proto, str(tmp))
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return session.run(None, inputs)[0]

    return run
