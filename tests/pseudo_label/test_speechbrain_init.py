"""Pseudo-labeling from a speechbrain ECAPA model folder: the pretrained network, with its own
front end, is the encoder fine-tuned, and the result is an ordinary embedder package."""

from __future__ import annotations

from pathlib import Path

import torch
from click.testing import CliRunner
from lhotse import CutSet

from dino_speech.cli.main import cli
from dino_speech.config import PseudoLabelConfig
from dino_speech.data.manifests import cut_label, load_cuts
from dino_speech.loading import load_embedder, load_embedder_spec
from dino_speech.pseudo_label.finetune import MarginFinetuner
from dino_speech.pseudo_label.finetune_model import load_init_model
from dino_speech.train.crop_batches import CropBatchSource


def speaker_labelled(corpus: Path) -> CutSet:
    cuts = load_cuts(corpus / "synthetic_cuts_train.jsonl.gz")
    speakers = sorted({cut_label(c, "speaker") for c in cuts})
    return CutSet.from_cuts(
        c.with_custom("pseudo_speaker", speakers.index(cut_label(c, "speaker"))) for c in cuts
    )


def test_init_loads_the_speechbrain_encoder_and_front_end(
    tiny_pl_config: PseudoLabelConfig, speechbrain_folder: Path, synthetic_corpus: Path, tmp_path
) -> None:
    init = load_init_model(speechbrain_folder)
    assert init.encoder_cfg.name == "speechbrain_ecapa"
    assert init.features.frontend == "speechbrain"
    assert init.path == speechbrain_folder / "embedding_model.ckpt"
    pretrained = torch.load(init.path, weights_only=True)
    tuner = MarginFinetuner(
        tiny_pl_config,
        "full",
        speaker_labelled(synthetic_corpus),
        speechbrain_folder,
        tmp_path / "ft",
        progress=False,
    )
    # the network fine-tuned is the pretrained one, fed by speechbrain's front end
    start = {k.removeprefix("net."): v for k, v in tuner.encoder.state_dict().items()}
    assert start.keys() == pretrained.keys()
    assert all(torch.equal(start[k], pretrained[k]) for k in pretrained)
    assert isinstance(tuner.data, CropBatchSource)
    assert type(tuner.data.fbank).__name__ == "SpeechbrainFbank"
    result = tuner.fit()
    encoder, features, _, spec = load_embedder_spec(result.embedder)
    assert spec == init.encoder_cfg and features == init.features
    after = {k.removeprefix("net."): v for k, v in encoder.state_dict().items()}
    assert any(not torch.equal(after[k], pretrained[k]) for k in pretrained)


def test_pseudo_label_run_accepts_a_speechbrain_folder(
    tiny_pl_config: PseudoLabelConfig, speechbrain_folder: Path, tmp_path: Path
) -> None:
    config = tmp_path / "pl.yaml"
    from dino_speech.config import save_config

    save_config(tiny_pl_config, config)
    exp = tmp_path / "exp"
    args = ["pseudo-label", "run", "--config", str(config), "--init", str(speechbrain_folder)]
    result = CliRunner().invoke(cli, [*args, "--exp-dir", str(exp), "--rounds", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    encoder, features, meta = load_embedder(exp / "embedder.pt")
    assert type(encoder).__name__ == "SpeechbrainEcapa" and features.frontend == "speechbrain"
    assert meta["source"] == "pseudo-label"
