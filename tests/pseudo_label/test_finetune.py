"""Margin-softmax fine-tuning: learning, the frozen backbone, exact resume, outputs, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lhotse import CutSet

from dino_speech.config import PseudoLabelConfig, apply_overrides
from dino_speech.data.features import Fbank
from dino_speech.data.manifests import cut_label, load_cuts
from dino_speech.embedder import Embedder
from dino_speech.errors import DataError
from dino_speech.loading import load_embedder
from dino_speech.pseudo_label.finetune import MarginFinetuner, finetune_stage
from dino_speech.pseudo_label.finetune_model import load_init_model, pseudo_labels


def speaker_labelled(corpus: Path) -> CutSet:
    """The training cuts with their true speaker index as the pseudo-label."""
    cuts = load_cuts(corpus / "synthetic_cuts_train.jsonl.gz")
    speakers = sorted({cut_label(c, "speaker") for c in cuts})
    return CutSet.from_cuts(
        c.with_custom("pseudo_speaker", speakers.index(cut_label(c, "speaker"))) for c in cuts
    )


def states(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def training_loss(tuner: MarginFinetuner, cuts: CutSet) -> float:
    """The margin loss over the first 0.5 s of every cut, without augmentation, eval mode."""
    from dino_speech.audio import read_cut

    tuner.net.eval()
    samples = int(0.5 * 16000)
    waves = torch.stack([read_cut(c, 16000)[:samples] for c in cuts])
    feats, _ = Fbank(tuner.init.features)(waves)
    labels = torch.tensor([tuner.labels[c.id] for c in cuts])
    tuner.classifier.set_margin(tuner.cfg.margin.margin)
    loss, _ = tuner.net(feats, labels)
    return float(loss)


def test_fine_tuning_learns_the_labels(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, synthetic_corpus: Path, tmp_path: Path
) -> None:
    cfg = apply_overrides(
        tiny_pl_config,
        [
            "data.augment.noise_prob=0",
            "data.augment.reverb_prob=0",
            "finetune.full_epochs=2",
            "finetune.steps_per_epoch=null",
            "finetune.full_lr=0.05",
            "margin.margin_warmup_epochs=0",
        ],
    )
    cuts = speaker_labelled(synthetic_corpus)
    tuner = MarginFinetuner(cfg, "full", cuts, init_model, tmp_path / "ft", progress=False)
    before = training_loss(tuner, cuts)
    result = tuner.fit()
    after = training_loss(tuner, cuts)
    assert result.steps == result.total_steps == 2 * (len(cuts) // 4)
    assert after < 0.7 * before, (before, after)
    assert result.last_accuracy is not None and result.last_accuracy > 1 / 6
    log = (tmp_path / "ft" / "train.log").read_text()
    for key in ("loss=", "accuracy=", "lr=", "margin="):
        assert key in log


@pytest.mark.parametrize("train_embedding", [True, False])
def test_frozen_stage_keeps_the_backbone(
    tiny_pl_config: PseudoLabelConfig,
    init_model: Path,
    synthetic_corpus: Path,
    tmp_path: Path,
    train_embedding: bool,
) -> None:
    cfg = apply_overrides(
        tiny_pl_config, [f"finetune.frozen_train_embedding={str(train_embedding).lower()}"]
    )
    before = states(load_init_model(init_model).encoder)
    tuner = MarginFinetuner(
        cfg, "frozen", speaker_labelled(synthetic_corpus), init_model, tmp_path, progress=False
    )
    classifier_before = states(tuner.classifier)
    result = tuner.fit()
    after = states(load_embedder(result.embedder)[0])
    assert before.keys() == after.keys()
    for key in before:  # weights and BatchNorm statistics alike
        changed = not torch.equal(before[key], after[key])
        assert changed == (train_embedding and key.startswith("embedding.")), key
    assert not torch.equal(classifier_before["weight"], tuner.classifier.weight)


def test_resume_after_a_kill_continues_exactly(
    tiny_pl_config: PseudoLabelConfig,
    init_model: Path,
    synthetic_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = apply_overrides(
        tiny_pl_config, ["finetune.full_epochs=2", "data.augment.specaug_prob=0.5"]
    )
    cuts = speaker_labelled(synthetic_corpus)
    straight = MarginFinetuner(cfg, "full", cuts, init_model, tmp_path / "a", progress=False)
    straight.fit()

    original = MarginFinetuner._train_step

    def dies_at_step_5(self: MarginFinetuner, batch: dict) -> None:
        if self.step == 5:
            raise RuntimeError("killed")
        original(self, batch)

    monkeypatch.setattr(MarginFinetuner, "_train_step", dies_at_step_5)
    with pytest.raises(RuntimeError, match="killed"):
        MarginFinetuner(cfg, "full", cuts, init_model, tmp_path / "b", progress=False).fit()
    monkeypatch.setattr(MarginFinetuner, "_train_step", original)
    resumed = MarginFinetuner(cfg, "full", cuts, init_model, tmp_path / "b", progress=False)
    assert resumed.step == 4  # the periodic checkpoint before the kill
    result = resumed.fit()
    assert result.steps == 6
    for ours, theirs in (
        (resumed.encoder, straight.encoder),
        (resumed.classifier, straight.classifier),
    ):
        a, b = states(ours), states(theirs)
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert "resumed from" in (tmp_path / "b" / "train.log").read_text()


def test_stages_chain_and_write_an_embedder_package(
    tiny_pl_config: PseudoLabelConfig, init_model: Path, synthetic_corpus: Path, tmp_path: Path
) -> None:
    cuts = speaker_labelled(synthetic_corpus)
    frozen = finetune_stage(
        tiny_pl_config, "frozen", cuts, init_model, tmp_path / "f", progress=False
    )
    full = finetune_stage(
        tiny_pl_config,
        "full",
        cuts,
        frozen.embedder,
        tmp_path / "g",
        classifier_init=frozen.classifier,
        progress=False,
    )
    embedder = Embedder.from_pretrained(tmp_path / "g")
    assert embedder.meta["source"] == "pseudo-label" and embedder.meta["stage"] == "full"
    assert embedder.embed_cuts(list(cuts)[:2], progress=False)[1].shape == (2, 16)
    assert full.to_dict()["steps"] == 3

    # The classifier belongs to these labels: other labels are refused.
    relabelled = CutSet.from_cuts(
        c.with_custom("pseudo_speaker", c.custom["pseudo_speaker"] + 1) for c in cuts
    )
    with pytest.raises(DataError, match="other pseudo-labels"):
        MarginFinetuner(
            tiny_pl_config,
            "full",
            relabelled,
            frozen.embedder,
            tmp_path / "h",
            classifier_init=frozen.classifier,
            progress=False,
        )


def test_pseudo_labels_are_checked(synthetic_corpus: Path) -> None:
    cuts = speaker_labelled(synthetic_corpus)
    labels, classes = pseudo_labels(cuts, "pseudo_speaker")
    assert len(classes) == 6 and set(labels.values()) == set(range(6))
    sparse = CutSet.from_cuts(
        c.with_custom("pseudo_speaker", 10 * c.custom["pseudo_speaker"]) for c in cuts
    )
    assert pseudo_labels(sparse, "pseudo_speaker")[0] == labels  # renumbered 0..C-1
    with pytest.raises(DataError, match="has no 'cluster' label"):
        pseudo_labels(cuts, "cluster")
    one = CutSet.from_cuts(c.with_custom("pseudo_speaker", 3) for c in cuts)
    with pytest.raises(DataError, match="at least 2 classes"):
        pseudo_labels(one, "pseudo_speaker")
    bad = CutSet.from_cuts(c.with_custom("pseudo_speaker", "spk") for c in cuts)
    with pytest.raises(DataError, match="integer"):
        pseudo_labels(bad, "pseudo_speaker")


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ),
    ],
)
def test_stages_run_in_bf16(
    tiny_pl_config: PseudoLabelConfig,
    init_model: Path,
    synthetic_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    device: str,
) -> None:
    # On a CPU, bf16 as on one with bf16 arithmetic (emulated where it has none).
    monkeypatch.setattr("dino_speech.runtime.native_bf16_cpu", lambda: True)
    cfg = apply_overrides(tiny_pl_config, [f"train.device={device}", "train.precision=bf16"])
    cuts = speaker_labelled(synthetic_corpus)
    frozen = finetune_stage(cfg, "frozen", cuts, init_model, tmp_path / "f", progress=False)
    full = finetune_stage(
        cfg,
        "full",
        cuts,
        frozen.embedder,
        tmp_path / "g",
        classifier_init=frozen.classifier,
        progress=False,
    )
    assert full.steps == 3 and full.last_loss is not None
    assert load_embedder(full.embedder)[2]["stage"] == "full"
