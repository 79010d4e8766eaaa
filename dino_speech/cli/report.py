"""``dino-speech report``: the results table of a recipe, from the JSON its commands wrote."""

from __future__ import annotations

from pathlib import Path

import click

from dino_speech.cli.options import FILE


@click.command(
    epilog="""\b
Example (the rows of egs/mini/run.sh):
  dino-speech report --columns eer,min_dcf_0.01,min_dcf_0.05,emotion_f1 \\
      --row 'log-Mel statistics (logmel-stats, no training)' exp/mini/eval/baseline \\
      --row 'DINO teacher ({model}, {steps}/{planned_steps} steps)' exp/mini/eval/dino \\
      --note '{trials} test trials, cosine scoring.' --machine cpu \\
      --time 'DINO training' exp/mini/dino/summary.json --out exp/mini/results.md""",
)
@click.option(
    "--row",
    "rows",
    multiple=True,
    nargs=2,
    type=(str, click.Path(file_okay=False, path_type=Path)),
    metavar="LABEL DIR",
    help="A row: its label and the folder of its score.json / asnorm.json / whitened.json (score "
    "--json-out) and emotion.json (eval-emotion --json-out). The label may name the "
    "model's {model}, {steps}, {planned_steps}, {total_steps}, {epochs_done} (from the "
    "training run's summary.json). A row with no value (none of its files there) is "
    "left out. Repeatable; at least one.",
)
@click.option(
    "--columns",
    default="eer,min_dcf_0.01,min_dcf_0.05",
    show_default=True,
    help="Comma-separated: eer, min_dcf_0.01, min_dcf_0.05, asnorm_eer, "
    "asnorm_min_dcf_0.01, whitened_eer, emotion_f1 (one decimal), micro_f1, macro_f1, uar, folds, "
    "pseudo_labels (the clusters a round's model was fine-tuned on).",
)
@click.option(
    "--note",
    "notes",
    multiple=True,
    help="A line under the table; may name the first row's {trials}, {targets}, "
    "{nontargets}. Repeatable.",
)
@click.option(
    "--machine",
    default=None,
    metavar="DEVICE",
    help="Add 'Machine: CPU, cores, OS[, GPU], device DEVICE.' under the notes.",
)
@click.option(
    "--time",
    "times",
    multiple=True,
    nargs=2,
    type=(str, click.Path(dir_okay=False, path_type=Path)),
    metavar="LABEL FILE",
    help="Add 'LABEL N s' to the machine line's wall times; FILE is the JSON record of the "
    "command that did the work (training's summary.json, the corpus record), whose "
    "'seconds' it reads ('-' when missing). Repeatable.",
)
@click.option("--out", type=FILE, default=None, help="Also write the table to this file.")
def report(
    rows: tuple[tuple[str, Path], ...],
    columns: str,
    notes: tuple[str, ...],
    machine: str | None,
    times: tuple[tuple[str, Path], ...],
    out: Path | None,
) -> None:
    """Print a Markdown results table built from the JSON files the commands wrote."""
    from dino_speech.file_io import atomic_write_text
    from dino_speech.report import Row, results_table

    if not rows:
        raise click.UsageError("give at least one --row LABEL DIR")
    names = [c.strip() for c in columns.split(",") if c.strip()]
    table = results_table(
        [Row(label, folder) for label, folder in rows],
        names,
        notes=notes,
        machine=machine,
        times=times,
    )
    if out is not None:
        atomic_write_text(out, table)
    click.echo(table, nl=False)
