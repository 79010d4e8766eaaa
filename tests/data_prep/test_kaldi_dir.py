"""data_prep.kaldi_dir (``dino-speech prepare kaldi``) on tiny generated Kaldi data dirs."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch
from lhotse import SupervisionSet

from data_prep import corpus as corpus_module
from data_prep.kaldi_dir import prepare_kaldi_dir
from data_prep.splits import Split
from dino_speech.audio import read_audio, read_cut
from dino_speech.data.manifests import load_cuts, read_kaldi_list
from dino_speech.errors import DataError
from dino_speech.eval.trials import read_trials
from tests.data_prep.prepare_cli import one_error_line, run_prepare
from tests.fakes import wav


def lists(folder: Path, **files: str) -> Path:
    """Write Kaldi lists ``name=content`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_whole_files_labels_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data" / "train"
    wav(data / "audio" / "r1.wav", seconds=1.0, seed=1)  # relative to the data dir
    wav(tmp_path / "cwd_audio" / "r2.wav", seconds=1.0, seed=2)  # relative to the cwd
    wav(tmp_path / "abs" / "r3.wav", seconds=1.0, seed=3)
    (tmp_path / "abs" / "bad.wav").write_text("not audio")
    monkeypatch.chdir(tmp_path)
    lists(
        data,
        **{
            "wav.scp": f"u1 audio/r1.wav\nu2 cwd_audio/r2.wav\nu3 {tmp_path}/abs/r3.wav\n"
            f"u4 {tmp_path}/abs/bad.wav\nu5 audio/missing.wav\n",
            "utt2spk": "u1 A\nu2 A\nu3 B\nu4 B\nu5 B\n",
            "utt2emo": "u1 happy\nu2 sad\nu3 neutral\n",
            "utt2lang": "u1 en\n",
            "utt2session": "u1 s1\nu3 s2\n",
            "spk2gender": "A f\nB m\n",
            "utt2accent": "u2 scottish\n",
        },
    )
    out = tmp_path / "out"
    summary = prepare_kaldi_dir(data, out)
    cuts = {c.id: c for c in load_cuts(out / "kaldi_cuts_all.jsonl.gz")}
    assert sorted(cuts) == ["u1", "u2", "u3"]
    u1 = cuts["u1"]
    assert u1.custom == {
        "speaker": "A",
        "gender": "female",
        "emotion": "happy",
        "language": "en",
        "session": "s1",
    }
    assert cuts["u2"].custom["accent"] == "scottish" and cuts["u3"].custom["gender"] == "male"
    assert Path(u1.recording.sources[0].source) == (data / "audio" / "r1.wav").absolute()
    assert Path(cuts["u2"].recording.sources[0].source).is_file()
    assert read_kaldi_list(out / "all" / "utt2emo") == {"u1": "happy", "u2": "sad", "u3": "neutral"}
    skipped = dict(line.split("\t") for line in (out / "skipped").read_text().splitlines())
    assert sorted(skipped) == ["u4", "u5"] and "not found" in skipped["u5"]
    assert "skipped: 2" in summary
    assert "nothing to do" in prepare_kaldi_dir(data, out)
    (data / "utt2emo").write_text("u1 angry\nu2 sad\nu3 neutral\n")
    os.utime(data / "utt2emo", ns=(1, 1))  # an edit within the same mtime tick still changes
    prepare_kaldi_dir(data, out)
    assert load_cuts(out / "kaldi_cuts_all.jsonl.gz")[0].custom["emotion"] == "angry"


def test_segments_cut_the_recording(tmp_path: Path):
    data = tmp_path / "data"
    wav(data / "long.wav", seconds=4.0, seed=1)
    wav(data / "other.wav", seconds=2.0, seed=2)
    lists(
        data,
        **{
            "wav.scp": "recA long.wav\nrecB other.wav\n",
            "segments": "a-1 recA 0.5 1.5\na-2 recA 2.0 -1\nb-1 recB 0.0 1.25\n"
            "b-2 recB 1.0 3.0\nb-3 recB 1.8 2.0\n",
            "utt2spk": "a-1 A\na-2 A\nb-1 B\nb-2 B\nb-3 B\n",
        },
    )
    out = tmp_path / "out"
    prepare_kaldi_dir(data, out)
    cuts = {c.id: c for c in load_cuts(out / "kaldi_cuts_all.jsonl.gz")}
    assert sorted(cuts) == ["a-1", "a-2", "b-1"]
    a1 = cuts["a-1"]
    assert a1.recording.id == "recA" and (a1.start, a1.duration) == (0.5, 1.0)
    assert cuts["a-2"].duration == pytest.approx(2.0) and a1.supervisions[0].speaker == "A"
    whole = read_audio(data / "long.wav", sample_rate=None)
    assert torch.equal(read_cut(a1, sample_rate=None), whole[8000:24000])
    skipped = dict(line.split("\t") for line in (out / "skipped").read_text().splitlines())
    assert "after the end" in skipped["b-2"] and "min-duration" in skipped["b-3"]
    assert read_kaldi_list(out / "all" / "segments")["a-1"] == "recA 0.500 1.500"
    assert sorted(read_kaldi_list(out / "all" / "wav.scp")) == ["recA", "recB"]
    sups = {s.id: s for s in SupervisionSet.from_file(out / "kaldi_supervisions_all.jsonl.gz")}
    assert (sups["a-1"].recording_id, sups["a-1"].start, sups["a-1"].duration) == ("recA", 0.5, 1)


def test_split_trials_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data"
    scp, utt2spk = [], []
    for s in range(4):
        for u in range(3):
            utt = f"s{s}-u{u}"
            wav(data / "wav" / f"{utt}.wav", seconds=0.6, seed=10 * s + u)
            scp.append(f"{utt} wav/{utt}.wav\n")
            utt2spk.append(f"{utt} s{s}\n")
    lists(data, **{"wav.scp": "".join(scp), "utt2spk": "".join(utt2spk)})
    out = tmp_path / "out"
    prepare_kaldi_dir(data, out, name="mine", split=Split(dev_speakers=2, seed=3))
    dev = load_cuts(out / "mine_cuts_dev.jsonl.gz")
    train = load_cuts(out / "mine_cuts_train.jsonl.gz")
    assert len(dev) == 6 and len(train) == 6
    assert not {c.custom["speaker"] for c in dev} & {c.custom["speaker"] for c in train}
    trials = read_trials(out / "dev" / "trials")
    assert trials.num_targets == 6 and trials.num_nontargets == 6

    monkeypatch.setattr(corpus_module, "tqdm", functools.partial(corpus_module.tqdm, disable=True))
    args = ["--data-dir", str(data), "--out-dir", str(tmp_path / "cli"), "--dev-fraction", "0.5"]
    result = run_prepare("kaldi", *args, "--nontarget-ratio", "0.5")
    assert result.exit_code == 0, result.output
    assert "trials: 9 (6 target, 3 non-target)" in result.output
    (data / "utt2spk").unlink()
    assert "need speakers" in one_error_line(run_prepare("kaldi", *args))


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("sox in.sph -t wav - |", "piped wav.scp commands are not supported"),
        ("-", "piped"),
        ("raw.ark:1234", "ark: entries are not supported"),
    ],
)
def test_unsupported_wav_scp(tmp_path: Path, entry: str, match: str):
    data = lists(tmp_path / "data", **{"wav.scp": f"u1 {entry}\n"})
    with pytest.raises(DataError, match=match):
        prepare_kaldi_dir(data, tmp_path / "out")
    line = one_error_line(
        run_prepare("kaldi", "--data-dir", str(data), "--out-dir", str(tmp_path / "out"))
    )
    assert "write the audio to files first" in line


def test_bad_lists(tmp_path: Path):
    data = tmp_path / "data"
    with pytest.raises(DataError, match="not a directory"):
        prepare_kaldi_dir(data, tmp_path / "out")
    wav(data / "a.wav", seconds=1.0)
    lists(data)
    with pytest.raises(DataError, match="Kaldi list not found"):
        prepare_kaldi_dir(data, tmp_path / "out")
    lists(data, **{"wav.scp": "r a.wav\n", "segments": "u1 nope 0 1\n"})
    with pytest.raises(DataError, match="not in wav.scp"):
        prepare_kaldi_dir(data, tmp_path / "out")
    lists(data, segments="u1 r 1.0 0.5\n")
    with pytest.raises(DataError, match="start 1.0 and end 0.5"):
        prepare_kaldi_dir(data, tmp_path / "out")
    lists(data, segments="u1 r 0.0 0.2\n")
    with pytest.raises(DataError, match="no usable audio"):
        prepare_kaldi_dir(data, tmp_path / "out")
