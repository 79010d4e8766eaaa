from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dino_speech import Embedder
from dino_speech.cli.main import cli
from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.errors import ConfigError, DataError
from dino_speech.export import export_embedder
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "embedder.pt"
    torch.manual_seed(0)
    save_embedder(
        path, build_encoder("ecapa_tiny"), EncoderConfig("ecapa_tiny"), FbankConfig(), {"step": 7}
    )
    return path


def _waves():
    rng = np.random.default_rng(5)
    # lengths differing from those export_embedder checks itself
    return [(0.1 * rng.normal(size=n)).astype(np.float32) for n in (11_111, 29_000)]


def _batch(waves, pad_value=0.0):
    """Rows padded with ``pad_value`` noise after each waveform (0: zero padding)."""
    rng = np.random.default_rng(9)
    lengths = np.array([len(w) for w in waves], dtype=np.int64)
    batch = (pad_value * rng.normal(size=(len(waves), lengths.max()))).astype(np.float32)
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = wave
    return batch, lengths


def _three_waves():
    rng = np.random.default_rng(6)
    return [(0.1 * rng.normal(size=n)).astype(np.float32) for n in (20_000, 5_555, 13_001)]


def _load_torchscript(path):
    extra = {"meta.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path), _extra_files=extra)
    return loaded, json.loads(extra["meta.json"])


def test_torchscript_export_is_batched_by_default(model, tmp_path):
    out = tmp_path / "m.pt"
    result = CliRunner().invoke(
        cli, ["export", "--model", str(model), "--format", "torchscript", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "input 'wave': (batch, num_samples) float32 mono at 16000 Hz" in result.output
    assert "input 'lengths': (batch,) int64" in result.output
    assert "output 'embedding': (batch, 128) float32" in result.output
    loaded, meta = _load_torchscript(out)
    assert meta["input_form"] == "batch"
    assert meta["sample_rate"] == 16000 and meta["embed_dim"] == 128
    eager = Embedder.from_pretrained(model, chunk_seconds=None)
    waves = _three_waves()
    # noisy padding: what lies past a row's length must not matter at all
    wave, lengths = _batch(waves, pad_value=0.3)
    with torch.no_grad():
        got = loaded(torch.from_numpy(wave), torch.from_numpy(lengths)).numpy()
    assert got.shape == (3, 128)
    alone = np.stack([eager.embed_array(w, 16000) for w in waves])
    np.testing.assert_allclose(got, alone, atol=1e-4)


def test_torchscript_single_form_matches_eager_embedder(model, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--model",
            str(model),
            "--format",
            "torchscript",
            "--input-form",
            "single",
            "--out",
            str(tmp_path / "m.pt"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "input 'wave': (num_samples,) float32 mono at 16000 Hz" in result.output
    loaded, meta = _load_torchscript(tmp_path / "m.pt")
    assert meta["input_form"] == "single"
    assert meta["sample_rate"] == 16000 and meta["embed_dim"] == 128
    eager = Embedder.from_pretrained(model, chunk_seconds=None)
    for wave in _waves():
        with torch.no_grad():
            got = loaded(torch.from_numpy(wave)).numpy()
        np.testing.assert_allclose(got, eager.embed_array(wave, 16000), atol=1e-4)


def _check_onnx_batch(path, eager, dim):
    """The exported batch model in onnxruntime: a mixed batch of 3 and a batch of 1."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["input_form"] == "batch" and props["embed_dim"] == str(dim)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs["wave"][0] == "tensor(float)" and inputs["lengths"][0] == "tensor(int64)"
    assert len(inputs["wave"][1]) == 2 and len(inputs["lengths"][1]) == 1
    assert isinstance(inputs["wave"][1][0], str)  # a dynamic batch, not a fixed size
    [output] = session.get_outputs()
    assert output.name == "embedding"
    waves = _three_waves()
    alone = np.stack([eager.embed_array(w, 16000) for w in waves])
    wave, lengths = _batch(waves)
    got = session.run(None, {"wave": wave, "lengths": lengths})[0]
    assert got.shape == (3, dim)
    np.testing.assert_allclose(got, alone, atol=1e-4)
    wave, lengths = _batch(waves[2:])
    got = session.run(None, {"wave": wave, "lengths": lengths})[0]
    np.testing.assert_allclose(got, alone[2:], atol=1e-4)
    return float(np.abs(got - alone[2:]).max())


def test_onnx_batch_export_of_logmel_stats(tmp_path):
    pytest.importorskip("onnxscript")
    out = tmp_path / "stats.onnx"
    summary = export_embedder("logmel-stats", out, "onnx")
    assert summary.input_form == "batch" and summary.max_abs_diff <= 1e-4
    assert len(summary.checked_lengths) == 3
    _check_onnx_batch(out, Embedder.from_pretrained("logmel-stats", chunk_seconds=None), 80)


@pytest.mark.slow
def test_onnx_batch_export_of_ecapa(model, tmp_path):
    pytest.importorskip("onnxscript")
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(
        cli, ["export", "--model", str(model), "--format", "onnx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "input 'lengths': (batch,) int64" in result.output
    _check_onnx_batch(out, Embedder.from_pretrained(model, chunk_seconds=None), 128)


def test_export_check_covers_the_batch(tmp_path):
    # logmel-stats' exported batch differs from eager by ~1e-6 (float reassociation), so a
    # zero tolerance must fail the check and leave no file behind
    out = tmp_path / "stats.pt"
    with pytest.raises(DataError, match="differs from the eager model"):
        export_embedder("logmel-stats", out, "torchscript", tolerance=0.0)
    assert not out.exists()
    summary = export_embedder("logmel-stats", out, "torchscript")
    assert 0 < summary.max_abs_diff <= 1e-4 and summary.checked_lengths[2] < 20_000


@pytest.mark.slow
def test_onnx_single_export_matches_eager_embedder(model, tmp_path):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    summary = export_embedder(model, out, "onnx", input_form="single")
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["sample_rate"] == "16000" and props["embed_dim"] == "128"
    ort = pytest.importorskip("onnxruntime")
    assert summary.max_abs_diff is not None and summary.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    eager = Embedder.from_pretrained(model, chunk_seconds=None)
    for wave in _waves():
        got = session.run(None, {"wave": wave})[0]
        np.testing.assert_allclose(got, eager.embed_array(wave, 16000), atol=1e-4)


def test_export_errors(model, tmp_path):
    with pytest.raises(ConfigError, match="valid: torchscript, onnx"):
        export_embedder(model, tmp_path / "x", "tflite")
    with pytest.raises(ConfigError, match="valid: batch, single"):
        export_embedder(model, tmp_path / "x", "onnx", input_form="stream")
    result = CliRunner().invoke(
        cli, ["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "m.pt")]
    )
    assert result.exit_code == 2 and "model not found" in result.output
    assert "Traceback" not in result.output
