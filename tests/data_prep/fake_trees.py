"""Tiny fake copies of the official corpus layouts, for the preparer tests.

Each builder writes a handful of short generated wavs (``dino_speech.audio.write_audio``) under
the folder and file names the real corpus uses, and returns what a test needs to check the
result. Nothing is downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from dino_speech.audio import write_audio

SR = 16000


def wav(path: Path, seconds: float = 0.25, seed: int = 0, sample_rate: int = SR) -> Path:
    """A short noise wav at ``path`` (parents created)."""
    rng = np.random.default_rng(seed)
    write_audio(path, 0.05 * rng.standard_normal(int(seconds * sample_rate)), sample_rate)
    return path


# ----------------------------------------------------------------------------------- VoxCeleb

VOX1_DEV_SPEAKERS = ("id10001", "id10002", "id10003")
VOX1_TEST_SPEAKERS = ("id10270", "id10271")
VOX2_DEV_SPEAKERS = ("id00012", "id00015")
VOX2_TEST_SPEAKERS = ("id00017",)
VIDEOS = ("x6uYqmx31kE", "-8jEAjG6Se_")  # YouTube ids may hold '-' and '_'


def vox_utts(speakers: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``(speaker, video, NNNNN)`` of each fake utterance: 2 videos x 2 clips per speaker."""
    return [(s, v, f"{n:05d}") for s in speakers for v in VIDEOS for n in (1, 2)]


def vox_id(spk: str, video: str, num: str) -> str:
    return f"{spk}-{video}-{num}"


def make_voxceleb1(root: Path, *, meta: bool = True, trials: bool = True) -> Path:
    """``root/wav/idXXXXX/<yt>/NNNNN.wav`` (dev and test speakers), ``vox1_meta.csv`` and the
    six trial lists (original and cleaned Vox1-O, E and H) in the VoxCeleb form."""
    for i, (spk, video, num) in enumerate(vox_utts(VOX1_DEV_SPEAKERS + VOX1_TEST_SPEAKERS)):
        wav(root / "wav" / spk / video / f"{num}.wav", seconds=0.2 + 0.01 * i, seed=i)
    if meta:
        rows = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
        for spk in VOX1_DEV_SPEAKERS + VOX1_TEST_SPEAKERS:
            gender = "f" if spk.endswith(("1", "3")) else "m"
            split = "test" if spk in VOX1_TEST_SPEAKERS else "dev"
            rows.append(f"{spk}\tName_{spk}\t{gender}\tUSA\t{split}")
        (root / "vox1_meta.csv").write_text("\n".join(rows) + "\n")
    if trials:
        test = vox_utts(VOX1_TEST_SPEAKERS)
        every = vox_utts(VOX1_DEV_SPEAKERS + VOX1_TEST_SPEAKERS)
        write_vox_trials(root / "veri_test.txt", test, step=1)
        write_vox_trials(root / "veri_test2.txt", test, step=2)
        write_vox_trials(root / "list_test_all.txt", every, step=3)
        write_vox_trials(root / "list_test_all2.txt", every, step=4)
        write_vox_trials(root / "list_test_hard.txt", every, step=5)
        write_vox_trials(root / "list_test_hard2.txt", every, step=6)
    return root


def write_vox_trials(path: Path, utts: list[tuple[str, str, str]], step: int) -> None:
    """VoxCeleb trial list ``1|0 spk/yt/NNNNN.wav spk/yt/NNNNN.wav`` over pairs of ``utts``."""
    lines = []
    for i, a in enumerate(utts):
        for b in utts[i + 1 :: step]:
            target = int(a[0] == b[0])
            lines.append(f"{target} {a[0]}/{a[1]}/{a[2]}.wav {b[0]}/{b[1]}/{b[2]}.wav")
    path.write_text("\n".join(lines) + "\n")


def make_voxceleb2(root: Path, *, audio: str = "wav", meta: bool = True) -> Path:
    """``root/{dev,test}/<folder>/idXXXXX/<yt>/NNNNN.<ext>``.

    ``audio="m4a"`` writes the official AAC layout (``dev/aac/...m4a``; the files are dummies,
    since a preparer must refuse them before reading); ``"wav"`` the converted ``dev/wav``
    layout; ``"flac"`` ``dev/aac/...flac`` (converted in place).
    """
    folder = {"m4a": "aac", "wav": "wav", "flac": "aac"}[audio]
    for split, speakers in (("dev", VOX2_DEV_SPEAKERS), ("test", VOX2_TEST_SPEAKERS)):
        for i, (spk, video, num) in enumerate(vox_utts(speakers)):
            path = root / split / folder / spk / video / f"{num}.{audio}"
            if audio == "m4a":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\x00\x00\x00\x20ftypM4A ")
            else:
                wav(path, seconds=0.2, seed=100 + i)
    if meta:
        rows = ["VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set "]
        for spk in VOX2_DEV_SPEAKERS + VOX2_TEST_SPEAKERS:
            split = "test" if spk in VOX2_TEST_SPEAKERS else "dev"
            rows.append(f"{spk} ,n{spk[2:]} ,m ,{split} ")
        (root / "vox2_meta.csv").write_text("\n".join(rows) + "\n")
    return root


# ------------------------------------------------------------------------------ MUSAN, RIRS

MUSAN_FILES = {
    "music": {"fma": ["music-fma-0000", "music-fma-0001"], "rfm": ["music-rfm-0000"]},
    "noise": {"free-sound": ["noise-free-sound-0000", "noise-free-sound-0001"]},
    "speech": {"librivox": ["speech-librivox-0000"], "us-gov": ["speech-us-gov-0000"]},
}


def make_musan(root: Path) -> Path:
    """``root/{music,noise,speech}/<source>/<id>.wav`` with their ANNOTATIONS files;
    ``music-fma-0001`` has vocals."""
    seed = 0
    for category, sources in MUSAN_FILES.items():
        for source, ids in sources.items():
            lines = []
            for rec_id in ids:
                seed += 1
                wav(root / category / source / f"{rec_id}.wav", seconds=0.3, seed=seed)
                if category == "music":
                    vocals = "Y" if rec_id == "music-fma-0001" else "N"
                    lines.append(f"{rec_id} classical,jazz {vocals} Some_Artist")
                elif category == "speech":
                    lines.append(f"{rec_id} male english")
                else:
                    lines.append(f"{rec_id} http://example.org/{rec_id}")
            (root / category / source / "ANNOTATIONS").write_text("\n".join(lines) + "\n")
    (root / "README").write_text("MUSAN fake\n")
    return root


def make_rirs(root: Path, *, real_list: bool = True, sim_list: bool = True) -> Path:
    """``root`` = ``RIRS_NOISES`` with simulated rooms (small, medium), real RIRs (one of them
    stereo) and their ``rir_list`` files, plus isotropic and point-source noises that must not
    be taken for RIRs."""
    seed = 50
    for size in ("smallroom", "mediumroom"):
        lines = []
        for room in ("Room001", "Room002"):
            for n in (1, 2):
                seed += 1
                rel = f"simulated_rirs/{size}/{room}/{room}-{n:05d}.wav"
                wav(root / rel, seconds=0.1, seed=seed)
                lines.append(
                    f"--rir-id {size}-{room}-{n:05d} --room-id {size}-{room} RIRS_NOISES/{rel}"
                )
        if sim_list:
            (root / "simulated_rirs" / size / "rir_list").write_text("\n".join(lines) + "\n")
    real = root / "real_rirs_isotropic_noises"
    wav(real / "air_type1_air_binaural_office_0_1.wav", seconds=0.1, seed=1)
    stereo = np.random.default_rng(2).standard_normal((1600, 2)) * 0.05
    real.mkdir(parents=True, exist_ok=True)
    sf.write(str(real / "RWCP_type2_rir_cirline_e2b_imp050.wav"), stereo, SR, subtype="PCM_16")
    wav(real / "RVB2014_type1_noise_largeroom1_1.wav", seconds=0.1, seed=3)
    if real_list:
        (real / "rir_list").write_text(
            "--rir-id air_type1_air_binaural_office_0_1 --room-id air_type1_air_binaural_office "
            "RIRS_NOISES/real_rirs_isotropic_noises/air_type1_air_binaural_office_0_1.wav\n"
            "--rir-id RWCP_type2_rir_cirline_e2b_imp050 --room-id RWCP_type2_rir_cirline_e2b "
            "RIRS_NOISES/real_rirs_isotropic_noises/RWCP_type2_rir_cirline_e2b_imp050.wav\n"
        )
        (real / "noise_list").write_text(
            "--noise-id RVB2014_type1_noise_largeroom1_1 --noise-type isotropic "
            "--bg-fg-type background --room-linkage RVB2014_type1_largeroom1 "
            "RIRS_NOISES/real_rirs_isotropic_noises/RVB2014_type1_noise_largeroom1_1.wav\n"
        )
    wav(root / "pointsource_noises" / "noise-free-sound-0000.wav", seconds=0.1, seed=4)
    return root


# ------------------------------------------------------------------------------------ IEMOCAP

# (session, dialog, utterance suffix, category, [V, A, D])
IEMOCAP_UTTS = [
    (1, "Ses01F_impro01", "F000", "neu", (2.5, 2.5, 2.5)),
    (1, "Ses01F_impro01", "M000", "fru", (2.0, 3.5, 3.5)),
    (1, "Ses01F_script01_1", "F001", "exc", (4.0, 4.0, 3.0)),
    (2, "Ses02M_impro02", "M003", "ang", (1.5, 4.0, 4.0)),
    (2, "Ses02M_impro02", "F004", "xxx", (3.0, 3.0, 3.0)),
    (3, "Ses03F_impro03", "F000", "hap", (4.5, 3.0, 3.0)),
    (4, "Ses04M_script02_2", "M010", "sad", (1.5, 1.5, 2.0)),
    (5, "Ses05F_impro04", "M001", "sur", (3.5, 4.0, 3.0)),
]


def make_iemocap(root: Path) -> Path:
    """``root/Session{1..5}/sentences/wav/<dialog>/<utt>.wav`` and
    ``root/Session*/dialog/EmoEvaluation/<dialog>.txt`` in the official format, plus the
    distractions real copies have (a macOS ``._`` file, an ``Attribute`` sub-folder)."""
    by_dialog: dict[tuple[int, str], list[str]] = {}
    for i, (session, dialog, suffix, emo, (v, a, d)) in enumerate(IEMOCAP_UTTS):
        utt = f"{dialog}_{suffix}"
        sess = root / f"Session{session}"
        wav(sess / "sentences" / "wav" / dialog / f"{utt}.wav", seconds=0.2 + 0.05 * i, seed=i)
        by_dialog.setdefault((session, dialog), []).append(
            f"[{1.5 * i:.4f} - {1.5 * i + 1.2:.4f}]\t{utt}\t{emo}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n"
            "C-E1:\tNeutral state;\t()\nC-E2:\tAnger;\t()\n"
            "A-E1:\tval 3; act 2; dom  2;\t()\n\n"
        )
    for (session, dialog), blocks in by_dialog.items():
        emo_dir = root / f"Session{session}" / "dialog" / "EmoEvaluation"
        emo_dir.mkdir(parents=True, exist_ok=True)
        header = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
        (emo_dir / f"{dialog}.txt").write_text(header + "".join(blocks))
        (emo_dir / "Attribute").mkdir(exist_ok=True)
        (emo_dir / "Attribute" / f"{dialog}_atr.txt").write_text("not a label file\n")
        (emo_dir / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (
        root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "._Ses01F_impro01_F000.wav"
    ).write_bytes(b"\x00\x05\x16\x07")
    return root


# ------------------------------------------------------------------------------------ CREMA-D

CREMAD_FILES = [
    "1001_DFA_ANG_XX",
    "1001_IEO_HAP_HI",
    "1002_TIE_SAD_LO",
    "1002_IOM_NEU_XX",
    "1091_WSI_FEA_MD",
    "1091_ITS_DIS_XX",
]


def make_cremad(root: Path, *, demographics: bool = True) -> Path:
    """``root/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`` and optionally
    ``VideoDemographics.csv``."""
    for i, name in enumerate(CREMAD_FILES):
        wav(root / "AudioWAV" / f"{name}.wav", seconds=0.2 + 0.02 * i, seed=200 + i)
    if demographics:
        (root / "VideoDemographics.csv").write_text(
            "ActorID,Age,Sex,Race,Ethnicity\n"
            "1001,51,Male,Caucasian,Not Hispanic\n"
            "1002,21,Female,Caucasian,Not Hispanic\n"
            "1091,29,Female,Asian,Not Hispanic\n"
        )
    return root


# -------------------------------------------------------------------------------- MSP-Podcast

# FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
MSP_ROWS = [
    ("MSP-PODCAST_0001_0008.wav", "N", "4.2", "4.0", "4.4", "127", "Female", "Train"),
    ("MSP-PODCAST_0001_0019.wav", "H", "5.0", "5.6", "4.8", "127", "Female", "Train"),
    ("MSP-PODCAST_0002_0033.wav", "X", "3.0", "3.4", "3.2", "Unknown", "Unknown", "Train"),
    ("MSP-PODCAST_0003_0001.wav", "A", "5.8", "2.0", "5.5", "310", "Male", "Development"),
    ("MSP-PODCAST_0004_0002.wav", "S", "2.2", "2.4", "2.8", "411", "Male", "Test1"),
    ("MSP-PODCAST_0005_0003.wav", "C", "4.0", "3.0", "5.0", "512", "Female", "Test2"),
]
MSP_HEADER = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")


def make_msp_podcast(root: Path, *, labels_name: str = "labels_consensus.csv") -> Path:
    """``root/Audios/*.wav`` and ``root/Labels/labels_consensus.csv`` (official columns)."""
    for i, row in enumerate(MSP_ROWS):
        wav(root / "Audios" / row[0], seconds=0.2 + 0.02 * i, seed=300 + i)
    (root / "Labels").mkdir(parents=True, exist_ok=True)
    with (root / "Labels" / labels_name).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MSP_HEADER)
        writer.writerows(MSP_ROWS)
    return root
