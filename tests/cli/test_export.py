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
from dino_speech.errors import ConfigError
from dino_speech.export import export_embedder
from dino_speech.models.package import save_embedder
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


def test_torchscript_export_matches_eager_embedder(model, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "export",
            "--model",
            str(model),
            "--format",
            "torchscript",
            "--out",
            str(tmp_path / "m.pt"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "input 'wave': (num_samples,) float32 mono at 16000 Hz" in result.output
    extra = {"meta.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    meta = json.loads(extra["meta.json"])
    assert meta["sample_rate"] == 16000 and meta["embed_dim"] == 128
    eager = Embedder.from_pretrained(model, chunk_seconds=None)
    for wave in _waves():
        with torch.no_grad():
            got = loaded(torch.from_numpy(wave)).numpy()
        np.testing.assert_allclose(got, eager.embed_array(wave, 16000), atol=1e-4)


@pytest.mark.slow
def test_onnx_export_matches_eager_embedder(model, tmp_path):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    summary = export_embedder(model, out, "onnx")
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
    result = CliRunner().invoke(
        cli, ["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "m.pt")]
    )
    assert result.exit_code == 2 and "model not found" in result.output
    assert "Traceback" not in result.output
