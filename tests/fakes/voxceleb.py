"""Fake VoxCeleb1 and VoxCeleb2 trees in the official layouts, with the official trial lists.

Two plans. The default, a *fixed tree* for the preparer tests: a few noise clips under the
speakers of :data:`VOX1_DEV_SPEAKERS` ... :data:`VOX2_TEST_SPEAKERS` and :data:`VIDEOS`
(YouTube ids with ``-`` and ``_``). ``learnable=True``, for the recipe tests: 1.5 s
:func:`~tests.fakes.audio.speaker_burst` clips, so that speakers can be told apart, under the
``LEARNABLE_*`` speakers. Either way a speaker has 2 videos x 2 clips.
"""

from __future__ import annotations

from pathlib import Path

from tests.fakes.audio import speaker_burst, wav

VOX1_DEV_SPEAKERS = ("id10001", "id10002", "id10003")
VOX1_TEST_SPEAKERS = ("id10270", "id10271")
VOX2_DEV_SPEAKERS = ("id00012", "id00015")
VOX2_TEST_SPEAKERS = ("id00017",)
VIDEOS = ("x6uYqmx31kE", "-8jEAjG6Se_")  # YouTube ids may hold '-' and '_'

LEARNABLE_VOX1_DEV_SPEAKERS = ("id10001", "id10002")
LEARNABLE_VOX1_TEST_SPEAKERS = ("id10270", "id10271", "id10272")
LEARNABLE_VOX2_DEV_SPEAKERS = ("id00012", "id00015", "id00017", "id00019")
LEARNABLE_VIDEOS = ("x6uYqmx31kE", "8jEAjG6SegY")

# veri_test, veri_test2, list_test_all, list_test_all2, list_test_hard, list_test_hard2
TRIAL_LISTS = (
    "veri_test.txt",
    "veri_test2.txt",
    "list_test_all.txt",
    "list_test_all2.txt",
    "list_test_hard.txt",
    "list_test_hard2.txt",
)


def vox_utts(
    speakers: tuple[str, ...], videos: tuple[str, ...] = VIDEOS
) -> list[tuple[str, str, str]]:
    """``(speaker, video, NNNNN)`` of each fake utterance: 2 videos x 2 clips per speaker."""
    return [(s, v, f"{n:05d}") for s in speakers for v in videos for n in (1, 2)]


def vox_id(spk: str, video: str, num: str) -> str:
    """The utterance id the preparer gives ``spk/video/num.wav``."""
    return f"{spk}-{video}-{num}"


def write_vox_trials(path: Path, utts: list[tuple[str, str, str]], step: int) -> None:
    """VoxCeleb trial list ``1|0 spk/yt/NNNNN.wav spk/yt/NNNNN.wav`` over pairs of ``utts``
    (each utterance against every ``step``-th later one)."""
    lines = []
    for i, a in enumerate(utts):
        for b in utts[i + 1 :: step]:
            target = int(a[0] == b[0])
            lines.append(f"{target} {a[0]}/{a[1]}/{a[2]}.wav {b[0]}/{b[1]}/{b[2]}.wav")
    path.write_text("\n".join(lines) + "\n")


def make_voxceleb1(
    root: Path, *, meta: bool | None = None, trials: bool = True, learnable: bool = False
) -> Path:
    """``root/wav/idXXXXX/<yt>/NNNNN.wav`` (dev and test speakers), optionally ``vox1_meta.csv``
    and the six trial lists (original and cleaned Vox1-O on the test speakers, E and H on all).

    ``learnable``: speaker bursts (speaker k: resonance k, clip i: seed i) under the
    ``LEARNABLE_*`` speakers; trial steps 1, 1, 2, 2, 3, 3 instead of 1 ... 6. ``meta``
    defaults to the fixed tree only: without it the preparer's list of the 40 official test
    speakers (id10270 ...) splits the learnable tree.
    """
    meta = not learnable if meta is None else meta
    if learnable:
        dev, test, videos = (
            LEARNABLE_VOX1_DEV_SPEAKERS,
            LEARNABLE_VOX1_TEST_SPEAKERS,
            LEARNABLE_VIDEOS,
        )
        steps = (1, 1, 2, 2, 3, 3)
    else:
        dev, test, videos = VOX1_DEV_SPEAKERS, VOX1_TEST_SPEAKERS, VIDEOS
        steps = (1, 2, 3, 4, 5, 6)
    every = vox_utts(dev + test, videos)
    for i, (spk, video, num) in enumerate(every):
        path = root / "wav" / spk / video / f"{num}.wav"
        if learnable:
            speaker_burst(path, (dev + test).index(spk), seed=i)
        else:
            wav(path, seconds=0.2 + 0.01 * i, seed=i)
    if meta:
        rows = ["VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"]
        for spk in dev + test:
            gender = "f" if spk.endswith(("1", "3")) else "m"
            split = "test" if spk in test else "dev"
            rows.append(f"{spk}\tName_{spk}\t{gender}\tUSA\t{split}")
        (root / "vox1_meta.csv").write_text("\n".join(rows) + "\n")
    if trials:
        for name, step in zip(TRIAL_LISTS, steps, strict=True):
            utts = vox_utts(test, videos) if name.startswith("veri") else every
            write_vox_trials(root / name, utts, step)
    return root


def make_voxceleb2(
    root: Path, *, audio: str = "wav", meta: bool | None = None, learnable: bool = False
) -> Path:
    """``root/{dev,test}/<folder>/idXXXXX/<yt>/NNNNN.<ext>`` and optionally ``vox2_meta.csv``.

    ``audio="m4a"`` writes the official AAC layout (``dev/aac/...m4a``; the files are dummies,
    since a preparer must refuse them before reading); ``"wav"`` the converted ``dev/wav``
    layout; ``"flac"`` ``dev/aac/...flac`` (converted in place).

    ``learnable``: speaker bursts under the 4 ``LEARNABLE_VOX2_DEV_SPEAKERS`` (resonances 5-8,
    none shared with :func:`make_voxceleb1`'s; seeds from 20 on), no test split. ``meta``
    defaults to the fixed tree only.
    """
    meta = not learnable if meta is None else meta
    folder = {"m4a": "aac", "wav": "wav", "flac": "aac"}[audio]
    if learnable:
        splits = (("dev", LEARNABLE_VOX2_DEV_SPEAKERS),)
        videos = LEARNABLE_VIDEOS
    else:
        splits = (("dev", VOX2_DEV_SPEAKERS), ("test", VOX2_TEST_SPEAKERS))
        videos = VIDEOS
    for split, speakers in splits:
        for i, (spk, video, num) in enumerate(vox_utts(speakers, videos)):
            path = root / split / folder / spk / video / f"{num}.{audio}"
            if audio == "m4a":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\x00\x00\x00\x20ftypM4A ")
            elif learnable:
                speaker_burst(path, 5 + speakers.index(spk), seed=20 + i)
            else:
                wav(path, seconds=0.2, seed=100 + i)
    if meta:
        rows = ["VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set "]
        for split, speakers in splits:
            rows += [f"{spk} ,n{spk[2:]} ,m ,{split} " for spk in speakers]
        (root / "vox2_meta.csv").write_text("\n".join(rows) + "\n")
    return root
