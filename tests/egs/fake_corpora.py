"""Small fake corpora in the official folder layouts, for running the egs/ recipes in tests.

Emotion corpora: every utterance is a tone whose pitch is set by its emotion (plus noise and a
random level), so a probe on log-Mel statistics can learn the emotions -- a recipe that mixes
up labels, folds or splits shows up as chance-level accuracy. VoxCeleb: noise bursts shaped
by a per-speaker filter, with the official trial list files. Nothing is downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dino_speech.audio import write_audio

SR = 16000
EMOTION_HZ = {"neutral": 180.0, "happy": 420.0, "angry": 900.0, "sad": 1800.0}


def tone(path: Path, hz: float, seed: int, seconds: float = 0.6) -> Path:
    """A noisy tone of ``hz`` at ``path`` (parents created)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    level = 10 ** rng.uniform(-1.2, -0.6)
    wave = level * np.sin(2 * np.pi * hz * (1 + 0.02 * rng.standard_normal()) * t)
    write_audio(path, (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)
    return path


def make_iemocap(root: Path, utts_per_emotion: int = 2) -> Path:
    """Five sessions, a female and a male speaker each; 4-class emotions (hap and exc both
    count as happy) plus a frustrated utterance per speaker that the 4-class part drops."""
    codes = {"neu": "neutral", "hap": "happy", "exc": "happy", "ang": "angry", "sad": "sad"}
    seed = 0
    for session in range(1, 6):
        dialog = f"Ses{session:02d}F_impro01"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
        for gender in "FM":
            labels = [c for c in codes for _ in range(utts_per_emotion)] + ["fru"]
            for i, code in enumerate(labels):
                utt = f"{dialog}_{gender}{i:03d}"
                hz = EMOTION_HZ[codes[code]] if code in codes else 300.0
                tone(
                    root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav",
                    hz,
                    seed,
                )
                lines.append(
                    f"[{i:.4f} - {i + 0.6:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]\n\n"
                )
                seed += 1
        emo_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        emo_dir.mkdir(parents=True, exist_ok=True)
        (emo_dir / f"{dialog}.txt").write_text("".join(lines))
    return root


def make_cremad(root: Path, actors: int = 6) -> Path:
    """``AudioWAV/<actor>_<sentence>_<EMO>_XX.wav``: every actor says one sentence per emotion."""
    codes = {"NEU": "neutral", "HAP": "happy", "ANG": "angry", "SAD": "sad"}
    seed = 100
    for a in range(actors):
        for sentence in ("IEO", "TIE"):
            for code, emotion in codes.items():
                tone(
                    root / "AudioWAV" / f"{1001 + a}_{sentence}_{code}_XX.wav",
                    EMOTION_HZ[emotion],
                    seed,
                )
                seed += 1
    return root


def make_msp_podcast(root: Path) -> Path:
    """``Audios/*.wav`` and ``Labels/labels_consensus.csv`` with Train, Development and Test1
    rows, including 'X' (no agreement) and 'O' (other) rows that the recipe leaves out."""
    letters = {"N": "neutral", "H": "happy", "A": "angry", "S": "sad"}
    rows = []
    seed = 200
    for split, per_class, speakers in (("Train", 6, 4), ("Development", 1, 1), ("Test1", 3, 2)):
        for letter, emotion in letters.items():
            for k in range(per_class):
                name = f"MSP-PODCAST_{seed:04d}_{k:04d}.wav"
                tone(root / "Audios" / name, EMOTION_HZ[emotion], seed)
                spk = f"{split[:2].lower()}{k % speakers}"
                rows.append((name, letter, "4.0", "4.0", "4.0", spk, "Female", split))
                seed += 1
        for letter in "XO":
            name = f"MSP-PODCAST_{seed:04d}_0000.wav"
            tone(root / "Audios" / name, 300.0, seed)
            rows.append((name, letter, "4.0", "4.0", "4.0", "Unknown", "Unknown", split))
            seed += 1
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    with (root / "Labels" / "labels_consensus.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        header = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender")
        writer.writerow((*header, "Split_Set"))
        writer.writerows(rows)
    return root


def _speaker_burst(path: Path, speaker: int, seed: int, seconds: float) -> None:
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    # a speaker is a fixed two-pole resonance on white noise
    r, theta = 0.97, 2 * np.pi * (300.0 + 150.0 * speaker) / SR
    out = lfilter(
        [1.0], [1.0, -2 * r * np.cos(theta), r * r], rng.standard_normal(int(seconds * SR))
    )
    write_audio(path, (0.05 * out / np.abs(out).max()).astype(np.float32), SR)


def make_voxceleb(root: Path, seconds: float = 1.5) -> tuple[Path, Path]:
    """``root/voxceleb1`` (2 dev + 3 test speakers, cleaned and original Vox1-O/E/H trial
    lists) and ``root/voxceleb2`` (``dev/wav``, 4 speakers): 2 videos x 2 clips a speaker."""
    vox1, vox2 = root / "voxceleb1", root / "voxceleb2"
    videos = ("x6uYqmx31kE", "8jEAjG6SegY")
    seed = 0
    test_utts, all_utts = [], []
    for s, spk in enumerate(("id10001", "id10002", "id10270", "id10271", "id10272")):
        for video in videos:
            for clip in ("00001", "00002"):
                _speaker_burst(vox1 / "wav" / spk / video / f"{clip}.wav", s, seed, seconds)
                seed += 1
                all_utts.append(f"{spk}/{video}/{clip}.wav")
                if spk >= "id10270":
                    test_utts.append(f"{spk}/{video}/{clip}.wav")
    for s, spk in enumerate(("id00012", "id00015", "id00017", "id00019")):
        for video in videos:
            for clip in ("00001", "00002"):
                _speaker_burst(
                    vox2 / "dev" / "wav" / spk / video / f"{clip}.wav", s + 5, seed, seconds
                )
                seed += 1

    def trials(utts: list[str], step: int) -> str:
        lines = []
        for i, a in enumerate(utts):
            for b in utts[i + 1 :: step]:
                lines.append(f"{int(a.split('/')[0] == b.split('/')[0])} {a} {b}\n")
        return "".join(lines)

    for name, utts, step in (
        ("veri_test.txt", test_utts, 1),
        ("veri_test2.txt", test_utts, 1),
        ("list_test_all.txt", all_utts, 2),
        ("list_test_all2.txt", all_utts, 2),
        ("list_test_hard.txt", all_utts, 3),
        ("list_test_hard2.txt", all_utts, 3),
    ):
        (vox1 / name).write_text(trials(utts, step))
    return vox1, vox2
