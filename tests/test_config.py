from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from dino_speech.config import (
    DinoExperimentConfig,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from dino_speech.errors import ConfigError


@dataclass
class Inner:
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    pair: tuple[float, float] = (1.0, 2.0)
    maybe: int | None = None


@dataclass
class Outer:
    name: str = "x"
    steps: int = 10
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)


def test_yaml_round_trip_of_the_experiment_config(tmp_path):
    cfg = apply_overrides(DinoExperimentConfig(), ["train.epochs=3", "model.kwargs={channels: 64}"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(DinoExperimentConfig, tmp_path / "c.yaml")
    assert again == cfg
    assert again.train.epochs == 3
    assert again.model.kwargs == {"channels": 64}
    assert isinstance(again.optim.betas, tuple)


def test_overrides_parse_values_and_coerce_types():
    cfg = apply_overrides(
        Outer(),
        [
            "steps=7",
            "inner.rate=1",
            "inner.mode=b",
            "inner.pair=[3, 4.5]",
            "flag=true",
            "tags=[p, q]",
            "inner.maybe=null",
            "name=123",
        ],
    )
    assert cfg.steps == 7
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.mode == "b"
    assert cfg.inner.pair == (3.0, 4.5)
    assert cfg.flag is True
    assert cfg.tags == ["p", "q"]
    assert cfg.inner.maybe is None
    assert cfg.name == "123"
    assert apply_overrides(Outer(), ["inner.rate=1e-3"]).inner.rate == 0.001


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as err:
        apply_overrides(Outer(), ["inner.rat=2"])
    msg = str(err.value)
    assert "inner.rat" in msg and "did you mean 'rate'" in msg
    assert "rate, mode, pair, maybe" in msg


def test_unknown_top_level_key_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\nmodle:\n  name: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(DinoExperimentConfig, path)
    msg = str(err.value)
    assert str(path) in msg and "'modle'" in msg and "did you mean 'model'" in msg
    assert "data, model, dino, optim, train" in msg


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("steps=abc", "'steps' must be an integer"),
        ("steps=1.5", "'steps' must be an integer"),
        ("flag=3", "'flag' must be true or false"),
        ("inner.mode=c", "'inner.mode' must be one of 'a', 'b'"),
        ("inner.pair=[1]", "'inner.pair' must have 2 items"),
        ("inner.rate=[1]", "'inner.rate' must be a number"),
        ("inner=3", "'inner' must be a mapping"),
        ("inner.rate.x=1", "'inner.rate' is not a section"),
        ("steps", "not of the form"),
    ],
)
def test_bad_overrides_are_config_errors(override, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        apply_overrides(Outer(), [override])
    assert fragment in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(Outer, bad)


def test_from_dict_leaves_defaults_and_to_dict_is_plain():
    cfg = from_dict(Outer, {"inner": {"rate": 2}})
    assert cfg.inner.mode == "a" and cfg.inner.rate == 2.0
    plain = to_dict(cfg)
    assert plain["inner"]["pair"] == [1.0, 2.0]
    assert plain == to_dict(from_dict(Outer, plain))


def test_required_field_must_be_present():
    @dataclass
    class Needs:
        path: str

    with pytest.raises(ConfigError, match="missing required config key 'path'"):
        from_dict(Needs, {})
    assert from_dict(Needs, {"path": "p"}).path == "p"
