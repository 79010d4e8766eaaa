"""``dino-speech export``: a trained embedder → TorchScript or ONNX (fbank inside)."""

from __future__ import annotations

from pathlib import Path

import click

from dino_speech.cli.options import FILE, model_option


@click.command()
@model_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["torchscript", "onnx"]),
    default="torchscript",
    show_default=True,
    help="TorchScript (traced) or ONNX (torch.onnx dynamo exporter, "
    "dynamic length; needs onnx and onnxscript).",
)
@click.option(
    "--out",
    required=True,
    type=FILE,
    help="Output file, e.g. model.pt or model.onnx.",
)
@click.option(
    "--tolerance",
    default=1e-4,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Largest allowed difference between exported and eager embeddings; the "
    "export is checked on two waveforms and removed if it fails.",
)
def export(model: Path, fmt: str, out: Path, tolerance: float) -> None:
    """Export a model that maps one waveform to its embedding.

    Input 'wave': (num_samples,) float32 mono in [-1, 1] at the model's sample rate (printed);
    output 'embedding': (D,) float32. Fbank features and mean normalisation are inside the
    graph; long audio is embedded whole (no windowing). The sample rate, embedding size and
    fbank settings are stored in the file (TorchScript extra file meta.json, ONNX metadata).

    \b
    Example:
        dino-speech export --model exp/dino_ecapa --format onnx --out exp/dino_ecapa/model.onnx
    """
    from dino_speech.export import export_embedder

    summary = export_embedder(model, out, fmt, tolerance=tolerance)
    click.echo(summary.describe())
