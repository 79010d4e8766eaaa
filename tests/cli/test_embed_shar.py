"""``dino-speech embed --shar-dir``: embeddings from Shar shards equal those from the files."""

from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lhotse import CutSet, Recording

from dino_speech.audio import write_audio
from dino_speech.cli.main import cli
from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.data.shar import write_shar
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed_shar")
    torch.manual_seed(0)
    model = root / "exp" / "embedder.pt"
    save_embedder(
        model, build_encoder("ecapa_tiny"), EncoderConfig("ecapa_tiny"), FbankConfig(), {}
    )
    rng = np.random.default_rng(0)
    cuts = []
    for i, seconds in enumerate([1.5, 0.8, 2.5, 1.1, 2.0, 0.9, 1.3]):
        rate = 16000 if i != 3 else 8000  # resampled on reading, from a file or a shard
        path = root / "wavs" / f"u{i}.wav"
        write_audio(path, 0.1 * rng.normal(size=int(rate * seconds)), rate)
        cuts.append(Recording.from_file(path, recording_id=f"u{i}").to_cut())
    manifest = root / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    write_shar(CutSet.from_cuts(cuts), root / "shar", shard_size=2, progress=False)
    return root, model, manifest


def _embed(*args) -> None:
    result = CliRunner().invoke(cli, ["embed", "--no-progress", *map(str, args)])
    assert result.exit_code == 0, result.output


def _table(scp) -> dict[str, np.ndarray]:
    return dict(kaldiio.load_scp(str(scp)))


def test_embed_from_shards_equals_embed_from_files(setup, tmp_path) -> None:
    root, model, manifest = setup
    _embed("--model", model, "--cuts", manifest, "--out-dir", tmp_path / "files")
    _embed("--model", model, "--shar-dir", root / "shar", "--out-dir", tmp_path / "shar")
    want, got = (
        _table(tmp_path / "files" / "xvector.scp"),
        _table(tmp_path / "shar" / "xvector.scp"),
    )
    assert sorted(got) == sorted(want) and len(got) == 7
    for utt in want:
        np.testing.assert_allclose(got[utt], want[utt], atol=1e-5, err_msg=utt)


def test_shards_of_shards_then_merge_equal_one_run(setup, tmp_path) -> None:
    root, model, _ = setup
    out = tmp_path / "out"
    _embed("--model", model, "--shar-dir", root / "shar", "--out-dir", tmp_path / "one")
    for i in range(3):  # 4 Shar shards over 3 jobs: whole shards each
        _embed("--model", model, "--shar-dir", root / "shar", "--out-dir", out, "--shard", f"{i}/3")
    _embed("--merge", 3, "--out-dir", out)
    one, merged = _table(tmp_path / "one" / "xvector.scp"), _table(out / "xvector.scp")
    assert list(merged) == list(one)
    for utt in one:
        np.testing.assert_allclose(merged[utt], one[utt], atol=1e-6)


def test_a_folder_without_shards_is_a_one_line_error(setup, tmp_path) -> None:
    _, model, _ = setup
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        cli,
        [
            "embed",
            "--model",
            str(model),
            "--shar-dir",
            str(tmp_path / "empty"),
            "--out-dir",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "no Lhotse Shar shards" in result.output
