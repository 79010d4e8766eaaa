from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from lhotse import CutSet, Recording, RecordingSet

from dino_speech import Embedder
from dino_speech.audio import write_audio
from dino_speech.cli.main import cli
from dino_speech.config import EncoderConfig, FbankConfig
from dino_speech.embedding_io import read_embeddings
from dino_speech.models.embedder_file import save_embedder
from dino_speech.models.registry import build_encoder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    torch.manual_seed(0)
    save_embedder(
        root / "exp" / "embedder.pt",
        build_encoder("ecapa_tiny"),
        EncoderConfig("ecapa_tiny"),
        FbankConfig(),
        {},
    )
    rng = np.random.default_rng(0)
    names = []
    for i, seconds in enumerate([1.5, 0.8, 2.5, 1.1, 2.0]):
        rate = 16000 if i != 3 else 8000  # any sample rate
        write_audio(root / "wavs" / f"u{i}.wav", 0.1 * rng.normal(size=int(rate * seconds)), rate)
        names.append(f"u{i}")
    (root / "wav.scp").write_text("".join(f"{n} wavs/{n}.wav\n" for n in names))  # relative
    embedder = Embedder.from_pretrained(root / "exp")
    want = {n: embedder.embed_file(root / "wavs" / f"{n}.wav") for n in names}
    return root, names, want


def _run(args, cwd=None):
    return CliRunner().invoke(cli, ["embed", *map(str, args)], catch_exceptions=False)


def _check(scp, names, want):
    table = kaldiio.load_scp(str(scp))
    assert list(table) == names
    for n in names:
        np.testing.assert_allclose(table[n], want[n], atol=1e-5)


def test_wav_scp_relative_paths_resolve_from_cwd(setup, monkeypatch, tmp_path):
    root, names, want = setup
    monkeypatch.chdir(root)
    result = _run(
        [
            "--model",
            "exp",
            "--wav-scp",
            "wav.scp",
            "--out-dir",
            tmp_path / "o",
            "--batch-size",
            "2",
            "--num-workers",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 embeddings of dimension 128" in result.output
    _check(tmp_path / "o" / "xvector.scp", names, want)
    assert (tmp_path / "o" / "xvector.ark").is_file()


def test_files_and_cuts(setup, tmp_path):
    root, names, want = setup
    files = [root / "wavs" / f"{n}.wav" for n in names]
    assert (
        _run(
            ["--model", root / "exp", *files, "--out-dir", tmp_path / "f", "--num-workers", "0"]
        ).exit_code
        == 0
    )
    _check(tmp_path / "f" / "xvector.scp", names, want)
    recs = RecordingSet.from_recordings(
        Recording.from_file(f, recording_id=n) for n, f in zip(names, files, strict=True)
    )
    cuts = CutSet.from_manifests(recordings=recs)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    assert (
        _run(
            [
                "--model",
                root / "exp",
                "--cuts",
                tmp_path / "cuts.jsonl.gz",
                "--out-dir",
                tmp_path / "c",
                "--num-workers",
                "0",
            ]
        ).exit_code
        == 0
    )
    ids, X = read_embeddings(tmp_path / "c")
    assert ids == [c.id for c in cuts]
    np.testing.assert_allclose(X, np.stack([want[n] for n in names]), atol=1e-5)


def test_shards_then_merge_equal_one_run(setup, tmp_path, monkeypatch):
    root, names, want = setup
    monkeypatch.chdir(root)
    for i in range(3):
        result = _run(
            [
                "--model",
                "exp",
                "--wav-scp",
                "wav.scp",
                "--out-dir",
                tmp_path / "s",
                "--shard",
                f"{i}/3",
                "--num-workers",
                "0",
            ]
        )
        assert result.exit_code == 0, result.output
        assert "--merge 3" in result.output
    assert not (tmp_path / "s" / "xvector.scp").exists()
    result = _run(["--merge", "3", "--out-dir", tmp_path / "s"])
    assert result.exit_code == 0 and "merged 3 shards: 5 embeddings" in result.output
    _check(tmp_path / "s" / "xvector.scp", names, want)
    assert not (tmp_path / "s" / "shards").exists()  # shards removed after the merge


def test_bad_audio_error_and_skip(setup, tmp_path, monkeypatch):
    root, names, want = setup
    monkeypatch.chdir(root)
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    (tmp_path / "wav.scp").write_text(
        f"u0 {root}/wavs/u0.wav\nbroken {tmp_path}/bad.wav\nu2 {root}/wavs/u2.wav\n"
    )
    runner = CliRunner()
    args = [
        "embed",
        "--model",
        "exp",
        "--wav-scp",
        str(tmp_path / "wav.scp"),
        "--out-dir",
        str(tmp_path / "o"),
        "--num-workers",
        "0",
        "--no-progress",
    ]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "bad.wav" in result.output
    assert not (tmp_path / "o" / "xvector.scp").exists()
    result = runner.invoke(cli, [*args, "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad audio files" in result.stderr and "bad.wav" in result.stderr
    assert (tmp_path / "o" / "skipped").read_text().startswith("broken ")
    _check(tmp_path / "o" / "xvector.scp", ["u0", "u2"], want)


def test_usage_errors(setup, tmp_path):
    root, _, _ = setup
    runner = CliRunner()
    for args, message in [
        (["--model", root / "exp", "--out-dir", tmp_path], "exactly one of"),
        (
            [
                "--model",
                root / "exp",
                "--wav-scp",
                root / "wav.scp",
                "--out-dir",
                tmp_path,
                "--shard",
                "3/3",
            ],
            "0 <= i < N",
        ),
        (["--merge", "2", "--out-dir", tmp_path / "none"], "2 of 2 shards are missing"),
        # a missing file argument is named before the model is loaded
        (["--model", root / "exp", root / "none.wav", "--out-dir", tmp_path], "none.wav"),
        (
            ["--model", root / "nope", "--wav-scp", root / "wav.scp", "--out-dir", tmp_path],
            "model not found",
        ),
    ]:
        result = runner.invoke(cli, ["embed", *map(str, args)])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    (tmp_path / "pipe.scp").write_text("a sox x.wav -t wav - |\n")
    result = runner.invoke(
        cli,
        [
            "embed",
            "--model",
            str(root / "exp"),
            "--wav-scp",
            str(tmp_path / "pipe.scp"),
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "only 'UTT PATH' lines" in result.output


@pytest.mark.slow
def test_torchrun_style_two_processes_merge(setup, tmp_path):
    """Two processes with torchrun's environment; rank 0 merges after the barrier."""
    root, names, want = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dino_speech.cli.main",
                    "embed",
                    "--model",
                    "exp",
                    "--wav-scp",
                    "wav.scp",
                    "--out-dir",
                    str(tmp_path / "d"),
                    "--device",
                    "cpu",
                    "--num-workers",
                    "0",
                    "--no-progress",
                ],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    _check(tmp_path / "d" / "xvector.scp", names, want)
    assert not (tmp_path / "d" / "shards").exists()


def test_silent_audio_warns_naming_the_file(setup, tmp_path, caplog):
    root, names, want = setup
    write_audio(tmp_path / "zeros.wav", np.zeros(16000), 16000)
    write_audio(tmp_path / "hum.wav", 3e-5 * np.ones(16000), 16000)  # one PCM step: -90 dBFS
    (tmp_path / "wav.scp").write_text(
        f"quiet {tmp_path}/zeros.wav\nu0 {root}/wavs/u0.wav\nhum {tmp_path}/hum.wav\n"
    )
    args = ["--model", root / "exp", "--wav-scp", tmp_path / "wav.scp"]
    with caplog.at_level(logging.WARNING, logger="dino_speech"):
        result = _run([*args, "--out-dir", tmp_path / "o", "--num-workers", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    silent = [r.getMessage() for r in caplog.records if "near-silent" in r.getMessage()]
    assert len(silent) == 2, silent
    assert silent[0].startswith(f"quiet ({tmp_path}/zeros.wav): ") and "-inf dBFS" in silent[0]
    assert silent[1].startswith("hum (") and "its embedding is noise" in silent[1]
    assert not any("u0" in m for m in silent)
    # Still embedded: the warning does not drop the file.
    assert list(kaldiio.load_scp(str(tmp_path / "o" / "xvector.scp"))) == ["quiet", "u0", "hum"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dino_speech"):
        Embedder.from_pretrained(root / "exp").embed_file(root / "wavs" / "u0.wav")
        Embedder.from_pretrained(root / "exp").embed_file(tmp_path / "zeros.wav")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [str(tmp_path / "zeros.wav")]


def test_a_rerun_of_the_same_request_does_nothing(setup, tmp_path):
    root, names, want = setup
    out = tmp_path / "o"
    parts = [tmp_path / "a.scp", tmp_path / "b.scp"]
    lines = [f"{n} {root / 'wavs' / n}.wav\n" for n in names]
    parts[0].write_text("".join(lines[:2]))
    parts[1].write_text("".join(lines[2:]))
    args = ["--model", root / "exp", "--wav-scp", parts[0], "--wav-scp", parts[1],
            "--out-dir", out, "--num-workers", "0"]  # fmt: skip
    first = _run(args)
    assert first.exit_code == 0 and "wrote 5 embeddings" in first.output, first.output
    _check(out / "xvector.scp", names, want)  # both lists, in order, in one output
    record = (out / "embed.json").read_text()
    assert str((root / "exp").resolve()) in record and '"written": 5' in record
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = _run(args)
    assert again.exit_code == 0 and "embeddings up to date" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert "wrote 5" in _run([*args, "--force"]).output
    # a changed input list is another request
    parts[1].write_text("".join(lines[2:4]))
    changed = _run(args)
    assert "wrote 4 embeddings" in changed.output
    _check(out / "xvector.scp", names[:4], want)


def test_sample_draws_a_seeded_subset_in_list_order(setup, tmp_path):
    root, names, want = setup
    scp = tmp_path / "all.scp"
    scp.write_text("".join(f"{n} {root / 'wavs' / n}.wav\n" for n in names))
    drawn = []
    for seed, folder in ((0, "s0"), (0, "s0b"), (1, "s1")):
        args = ["--model", root / "exp", "--wav-scp", scp, "--sample", 3, "--seed", seed,
                "--out-dir", tmp_path / folder, "--num-workers", "0"]  # fmt: skip
        assert _run(args).exit_code == 0
        drawn.append(list(kaldiio.load_scp(str(tmp_path / folder / "xvector.scp"))))
    assert len(drawn[0]) == 3 and drawn[0] == drawn[1] and drawn[0] != drawn[2]
    assert drawn[0] == [n for n in names if n in drawn[0]]  # the list's order
    line = _run(["--model", root / "exp", "--wav-scp", scp, "--wav-scp", scp,
                 "--out-dir", tmp_path / "dup", "--num-workers", "0"]).output  # fmt: skip
    assert f"utterance {names[0]} is in both" in line


def test_pooled_layer_is_part_of_the_request(setup, tmp_path, monkeypatch):
    root, names, want = setup
    monkeypatch.chdir(root)  # wav.scp paths are relative to the working directory
    out = tmp_path / "p"
    args = ["--model", root / "exp", "--wav-scp", root / "wav.scp", "--out-dir", out]
    args += ["--num-workers", "0", "--no-progress"]
    result = CliRunner().invoke(cli, ["embed", *map(str, [*args, "--layer", "pooled"])])
    assert result.exit_code == 0, result.output
    assert "dimension 384" in result.output
    assert {v.shape for v in kaldiio.load_scp(str(out / "xvector.scp")).values()} == {(384,)}
    # the same out dir with the embedding layer is a new request, not "up to date"
    result = CliRunner().invoke(cli, ["embed", *map(str, args)])
    assert result.exit_code == 0 and "up to date" not in result.output
    _check(out / "xvector.scp", names, want)
