"""A speechbrain ECAPA model folder as a model: embeddings equal speechbrain's own, errors name
the file, the folder works wherever a model is accepted (embed, export, packages)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from dino_speech import Embedder
from dino_speech.cli.main import cli
from dino_speech.embedding_io import read_embeddings
from dino_speech.errors import DataError
from dino_speech.export import export_embedder
from dino_speech.loading import load_embedder, load_embedder_spec, resolve_model_path
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.speechbrain_ecapa import read_hyperparams

LENGTHS = (16_000, 23_456, 8_123, 40_000)


@pytest.fixture(scope="module")
def speechbrain_model(speechbrain_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """Speechbrain's own EncoderClassifier of the folder, loaded without any network."""
    from speechbrain.inference.speaker import EncoderClassifier
    from speechbrain.utils.fetching import LocalStrategy

    return EncoderClassifier.from_hparams(
        source=str(speechbrain_folder),
        savedir=str(tmp_path_factory.mktemp("sb_savedir")),
        overrides={"pretrained_path": str(speechbrain_folder)},
        local_strategy=LocalStrategy.NO_LINK,
        run_opts={"device": "cpu"},
    )


def _waves() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(n, generator=gen) for n in LENGTHS]


@torch.no_grad()
def _reference(classifier, waves) -> np.ndarray:
    """speechbrain's embedding of each waveform alone."""
    return np.stack([classifier.encode_batch(w[None])[0, 0].numpy() for w in waves])


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def test_embeddings_equal_speechbrains(speechbrain_folder, speechbrain_model):
    waves = _waves()
    want = _reference(speechbrain_model, waves)
    embedder = Embedder.from_pretrained(speechbrain_folder, chunk_seconds=None)
    assert embedder.embed_dim == 24 and embedder.sample_rate == 16000
    alone = np.stack([embedder.embed_array(w.numpy(), 16000) for w in waves])
    batched = embedder._embed_waves(waves, batch_size=len(waves))  # one zero-padded batch
    assert np.abs(alone - want).max() <= 1e-4
    assert np.abs(batched - want).max() <= 1e-4
    assert np.abs(want).max() > 0.05  # not trivially equal


def test_noise_past_the_lengths_does_not_matter(speechbrain_folder):
    encoder, features, _ = load_embedder(speechbrain_folder)
    from dino_speech.data.features import build_fbank

    fbank = build_fbank(features)
    short, other = _waves()[2], _waves()[1]
    batch = 0.5 * torch.randn(2, other.shape[0])
    batch[0, : short.shape[0]], batch[1] = short, other
    with torch.no_grad():
        got = encoder(*fbank(batch, torch.tensor([short.shape[0], other.shape[0]])))
        alone = encoder(*fbank(short[None]))
    torch.testing.assert_close(got[:1], alone, atol=1e-5, rtol=1e-4)


def test_folder_resolves_to_its_checkpoint(speechbrain_folder):
    assert resolve_model_path(speechbrain_folder) == speechbrain_folder / "embedding_model.ckpt"
    # the checkpoint file itself loads with the folder's hyperparams.yaml
    encoder, features, meta, spec = load_embedder_spec(speechbrain_folder / "embedding_model.ckpt")
    assert spec.name == "speechbrain_ecapa" and spec.kwargs["embed_dim"] == 24
    assert features.frontend == "speechbrain" and features.num_mel_bins == 80
    assert meta["source"] == str(speechbrain_folder)


def test_saved_as_an_embedder_package_it_embeds_the_same(speechbrain_folder, tmp_path):
    encoder, features, meta, spec = load_embedder_spec(speechbrain_folder)
    save_embedder(tmp_path / "embedder.pt", encoder, spec, features, meta)
    wave = _waves()[0].numpy()
    a = Embedder.from_pretrained(speechbrain_folder).embed_array(wave, 16000)
    b = Embedder.from_pretrained(tmp_path / "embedder.pt").embed_array(wave, 16000)
    np.testing.assert_array_equal(a, b)


def test_hyperparams_are_read_without_running_anything(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "hyperparams.yaml").write_text(
        f"n: 4\nboom: !apply:pathlib.Path.touch [!new:pathlib.Path [{str(marker)!r}]]\n"
        "m: !ref <n> * 2\npath: !ref <n>/x.ckpt\n"
    )
    hp = read_hyperparams(tmp_path / "hyperparams.yaml")
    assert not marker.exists()
    assert hp["m"] == 8 and hp["path"] == "4/x.ckpt"


def _cli_error(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_missing_checkpoint_is_one_line_naming_it(speechbrain_folder, tmp_path):
    folder = _copy(speechbrain_folder, tmp_path)
    (folder / "embedding_model.ckpt").unlink()
    with pytest.raises(DataError, match="embedding_model.ckpt: missing"):
        Embedder.from_pretrained(folder)
    wav = tmp_path / "a.wav"
    sf.write(wav, _waves()[0].numpy(), 16000)
    line = _cli_error(["embed", "--model", str(folder), str(wav), "--out-dir", str(tmp_path / "e")])
    assert str(folder / "embedding_model.ckpt") in line and "missing" in line


def test_mismatched_checkpoint_is_one_line_naming_it(speechbrain_folder, tmp_path):
    folder = _copy(speechbrain_folder, tmp_path)
    hp = folder / "hyperparams.yaml"
    hp.write_text(hp.read_text().replace("lin_neurons: 24", "lin_neurons: 48"))
    with pytest.raises(DataError, match="embedding_model.ckpt: does not fit"):
        load_embedder(folder)
    line = _cli_error(["export", "--model", str(folder), "--out", str(tmp_path / "m.pt")])
    assert str(folder / "embedding_model.ckpt") in line and "size mismatch" in line
    assert not (tmp_path / "m.pt").exists()


def test_unreadable_checkpoint_and_norm_stats_name_the_file(speechbrain_folder, tmp_path):
    folder = _copy(speechbrain_folder, tmp_path)
    (folder / "mean_var_norm_emb.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="mean_var_norm_emb.ckpt: cannot read"):
        load_embedder(folder)
    (folder / "mean_var_norm_emb.ckpt").unlink()  # optional
    load_embedder(folder)
    (folder / "embedding_model.ckpt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="embedding_model.ckpt: cannot read"):
        load_embedder(folder)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("std_norm: False\n\nembedding", "std_norm: True\n\nembedding", "std_norm: True"),
        ("n_mels: !ref <n_mels>", "n_mels: !ref <n_mels>\n    deltas: True", "deltas"),
        ("input_size: !ref <n_mels>", "input_size: 40", "input_size 40 differs"),
        ("ECAPA_TDNN.ECAPA_TDNN", "ECAPA_TDNN.Classifier", "supported: speechbrain"),
    ],
)
def test_unsupported_hyperparams_name_the_file(speechbrain_folder, tmp_path, old, new, message):
    folder = _copy(speechbrain_folder, tmp_path)
    hp = folder / "hyperparams.yaml"
    text = hp.read_text()
    assert old in text
    hp.write_text(text.replace(old, new, 1))
    with pytest.raises(DataError, match="hyperparams.yaml: ") as info:
        load_embedder(folder)
    assert message in str(info.value)


def test_cli_embed_with_a_speechbrain_folder(speechbrain_folder, speechbrain_model, tmp_path):
    waves = _waves()[:3]
    paths = []
    for i, wave in enumerate(waves):
        paths.append(tmp_path / "wavs" / f"utt{i}.wav")
        paths[-1].parent.mkdir(exist_ok=True)
        sf.write(paths[-1], wave.numpy(), 16000, subtype="FLOAT")
    out = tmp_path / "emb"
    result = CliRunner().invoke(
        cli,
        ["embed", "--model", str(speechbrain_folder), *map(str, paths), "--out-dir", str(out)]
        + ["--num-workers", "0", "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    assert "3 embeddings of dimension 24" in result.output
    ids, got = read_embeddings(out / "xvector.scp")
    want = _reference(speechbrain_model, waves)
    order = [ids.index(f"utt{i}") for i in range(3)]
    assert np.abs(got[order] - want).max() <= 1e-4


def test_torchscript_export_matches_speechbrain(speechbrain_folder, speechbrain_model, tmp_path):
    summary = export_embedder(speechbrain_folder, tmp_path / "m.pt", model_card=False)
    assert summary.max_abs_diff is not None and summary.max_abs_diff <= 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        loaded = torch.jit.load(str(tmp_path / "m.pt"))
    waves = _waves()[:3]
    lengths = torch.tensor([w.shape[0] for w in waves])
    batch = torch.zeros(3, int(lengths.max()))
    for row, wave in enumerate(waves):
        batch[row, : wave.shape[0]] = wave
    with torch.no_grad():
        got = loaded(batch, lengths).numpy()
    assert np.abs(got - _reference(speechbrain_model, waves)).max() <= 1e-4


@pytest.mark.slow
def test_onnx_export_matches_speechbrain(speechbrain_folder, speechbrain_model, tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    summary = export_embedder(speechbrain_folder, tmp_path / "m.onnx", "onnx", model_card=False)
    assert summary.max_abs_diff is not None and summary.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    waves = _waves()[:3]
    lengths = np.array([w.shape[0] for w in waves], dtype=np.int64)
    batch = np.zeros((3, lengths.max()), dtype=np.float32)
    for row, wave in enumerate(waves):
        batch[row, : wave.shape[0]] = wave.numpy()
    got = session.run(None, {"wave": batch, "lengths": lengths})[0]
    assert np.abs(got - _reference(speechbrain_model, waves)).max() <= 1e-4
