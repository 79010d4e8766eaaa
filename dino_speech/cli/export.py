"""``dino-speech export``: a trained embedder → TorchScript or ONNX (fbank inside), batched
(``wave (B, S)``, ``lengths (B,)``) or one waveform at a time (``wave (S,)``)."""

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
    "dynamic batch and length; needs onnx and onnxscript).",
)
@click.option(
    "--input-form",
    type=click.Choice(["batch", "single"]),
    default="batch",
    show_default=True,
    help="batch: wave (batch, num_samples) + lengths (batch,) -> embedding (batch, D), so a "
    "server embeds many requests in one call; single: wave (num_samples,) -> embedding (D,), "
    "the interface of earlier exports.",
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
    "export is checked as described above and removed if it fails.",
)
@click.option(
    "--model-card/--no-model-card",
    default=True,
    show_default=True,
    help="Write README.md beside the exported file: a model card with a YAML header "
    "(task, library, training data from the experiment's config.yaml, embedding size, "
    "sample rate, a license placeholder to fill in) and the verification results the "
    "recipes recorded for the model (EXP/eval/NAME/*.json), if any.",
)
def export(
    model: Path, fmt: str, input_form: str, out: Path, tolerance: float, model_card: bool
) -> None:
    """Export a model that maps waveforms to embeddings (fbank inside the graph).

    \b
    --input-form batch (default):
      input  'wave'      (batch, num_samples) float32, mono in [-1, 1] at the model's
                         sample rate (printed), each row zero-padded after its audio;
                         num_samples >= 2 frames (560 at 16 kHz, 25/10 ms)
      input  'lengths'   (batch,) int64, valid samples of each row, >= 1 frame (400)
      output 'embedding' (batch, D) float32; row b equals the embedding of
                         wave[b, :lengths[b]] alone (padding is masked out)
    --input-form single:
      input  'wave'      (num_samples,) float32, mono in [-1, 1]
      output 'embedding' (D,) float32

    Batch size and length are dynamic. Fbank features and mean normalisation are inside the
    graph; long audio is embedded whole (no windowing). The sample rate, embedding size, input
    form and fbank settings are stored in the file (TorchScript extra file meta.json, ONNX
    metadata). The export is reloaded and checked against the eager model of each waveform
    alone (batch form: a padded batch of three lengths and a batch of one).

    \b
    Example:
        dino-speech export --model exp/dino_ecapa --format onnx --out exp/dino_ecapa/model.onnx
        dino-speech export --model models/spkrec-ecapa-voxceleb --out ecapa_sb.pt
    (a speechbrain ECAPA folder exports with speechbrain's own fbank and normalisation)
    """
    from dino_speech.export import export_embedder

    summary = export_embedder(
        model, out, fmt, input_form=input_form, tolerance=tolerance, model_card=model_card
    )
    click.echo(summary.describe())
