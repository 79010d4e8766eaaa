"""The config package: shared sections, field help in the loader's errors, re-exports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

import dino_speech.config as config
from dino_speech.config import (
    AudioDataConfig,
    CropConfig,
    DataConfig,
    DinoExperimentConfig,
    FbankConfig,
    PseudoLabelConfig,
    PseudoLabelDataConfig,
    PseudoLabelTrainConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    describe_config,
    field_help,
    from_dict,
    setting,
)
from dino_speech.errors import ConfigError

# every name importers took from the single-module dino_speech.config
OLD_NAMES = [
    "AugmentConfig",
    "ClusterConfig",
    "CropConfig",
    "DataConfig",
    "DinoConfig",
    "DinoExperimentConfig",
    "EncoderConfig",
    "FbankConfig",
    "FinetuneConfig",
    "MarginConfig",
    "OptimConfig",
    "PseudoLabelConfig",
    "PseudoLabelDataConfig",
    "PseudoLabelEmbedConfig",
    "PseudoLabelEvalConfig",
    "PseudoLabelTrainConfig",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]


@dataclass
class Leaf:
    rate: float = setting(0.5, "How fast it goes.")
    mode: str = "a"


@dataclass
class Root:
    steps: int = setting(10, "Steps to run.")
    leaf: Leaf = field(default_factory=Leaf)


def test_every_old_name_is_still_exported() -> None:
    for name in OLD_NAMES:
        assert name in config.__all__ and hasattr(config, name), name


def test_data_and_train_sections_share_one_base() -> None:
    assert issubclass(DataConfig, AudioDataConfig)
    assert issubclass(PseudoLabelDataConfig, AudioDataConfig)
    assert issubclass(TrainConfig, RunConfig) and issubclass(PseudoLabelTrainConfig, RunConfig)
    shared = {f.name for f in dataclasses.fields(AudioDataConfig)}
    assert {f.name for f in dataclasses.fields(PseudoLabelDataConfig)} == shared
    assert {f.name for f in dataclasses.fields(DataConfig)} - shared == {
        "train_shar", "shar_shuffle_buffer", "drop_last", "crops", "features"
    }  # fmt: skip
    # each experiment keeps its own defaults
    assert (DataConfig().batch_size, PseudoLabelDataConfig().batch_size) == (96, 128)
    assert (TrainConfig().keep_last, PseudoLabelTrainConfig().keep_last) == (3, 2)
    assert {f.name for f in dataclasses.fields(PseudoLabelTrainConfig)} == {
        f.name for f in dataclasses.fields(RunConfig)
    }


def test_as_section_carries_the_shared_keys() -> None:
    pl = apply_overrides(
        PseudoLabelConfig(),
        ["data.batch_size=7", "data.musan_cuts=m.jsonl.gz", "data.augment.noise_prob=0.1"],
    ).data
    crops = CropConfig(num_global=1, num_local=0)
    dino = pl.as_section(DataConfig, crops=crops, features=FbankConfig(num_mel_bins=40))
    assert type(dino) is DataConfig
    assert (dino.batch_size, dino.musan_cuts, dino.augment) == (7, "m.jsonl.gz", pl.augment)
    assert dino.crops == crops and dino.features.num_mel_bins == 40
    assert (dino.train_shar, dino.drop_last) == ("", True)  # DINO-only keys: their defaults


def test_the_finetuner_data_section_is_the_shared_one() -> None:
    from dino_speech.pseudo_label.finetune import MarginFinetuner

    cfg = apply_overrides(
        PseudoLabelConfig(),
        ["data.batch_size=5", "data.num_workers=0", "data.augment_on=device",
         "data.rir_cuts=r.jsonl.gz", "finetune.crop_seconds=3"],
    )  # fmt: skip
    fake = SimpleNamespace(cfg=cfg, init=SimpleNamespace(features=FbankConfig(num_mel_bins=40)))
    data = MarginFinetuner._data_config(fake)  # type: ignore[arg-type]
    assert isinstance(data, DataConfig)
    for f in dataclasses.fields(AudioDataConfig):
        assert getattr(data, f.name) == getattr(cfg.data, f.name), f.name
    assert data.crops == CropConfig(num_global=1, global_seconds=3.0, num_local=0,
                                    local_seconds=3.0)  # fmt: skip
    assert data.features.num_mel_bins == 40


def test_fields_that_were_commented_have_help() -> None:
    for cls, name in (
        (FbankConfig, "mean_norm"),
        (DataConfig, "augment_on"),
        (DataConfig, "train_shar"),
        (TrainConfig, "sync_batchnorm"),
        (TrainConfig, "steps_per_epoch"),
        (PseudoLabelConfig, "round_overrides"),
        (config.ClusterConfig, "max_preclusters"),
        (config.AugmentConfig, "bank_size"),
        (config.ImageTrainConfig, "predictor"),
    ):
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        assert field_help(f), (cls.__name__, name)
    # the pseudo-labeling budget is per stage: its own help, not the DINO one
    budget = {f.name: f for f in dataclasses.fields(PseudoLabelTrainConfig)}["max_minutes"]
    assert "EACH fine-tuning stage" in field_help(budget)


def test_errors_show_the_help_of_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(Root(), ["leaf.rate=fast"])
    msg = "'leaf.rate' must be a number, got 'fast'. leaf.rate: How fast it goes."
    assert str(err.value) == msg
    with pytest.raises(ConfigError) as err:
        apply_overrides(Root(), ["leaf.rat=2"])
    msg = str(err.value)
    assert "did you mean 'rate'" in msg and "rate, mode" in msg
    assert msg.endswith("leaf.rate: How fast it goes.")
    with pytest.raises(ConfigError) as err:
        from_dict(Root, {"leaf": 3})
    assert str(err.value) == "'leaf' must be a mapping, got int"  # a section: no help added
    with pytest.raises(ConfigError) as err:
        apply_overrides(DinoExperimentConfig(), ["data.augment_on=gpu"])
    assert "'data.augment_on' must be one of 'auto', 'device', 'workers'" in str(err.value)
    assert "data.augment_on: Where augmentation and fbank run" in str(err.value)


def test_missing_required_key_shows_its_help() -> None:
    @dataclass
    class Needs:
        path: str = setting(help="The input file.")

    with pytest.raises(ConfigError, match="missing required config key 'path'. path: The input"):
        from_dict(Needs, {})


def test_describe_config_lists_keys_defaults_and_help() -> None:
    lines = describe_config(Root)
    assert lines == ["steps = 10: Steps to run.", "leaf.rate = 0.5: How fast it goes.",
                     "leaf.mode = a"]  # fmt: skip
    assert "data.crops.num_local = 4: Local crops per utterance (seen by the student only)." in (
        describe_config(DinoExperimentConfig)
    )
