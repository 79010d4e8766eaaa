"""Fake MUSAN and RIRS_NOISES trees (the augmentation corpora) in the official layouts.

Noise clips only: the preparer tests check which files are found and how they are labelled,
not what they sound like.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tests.fakes.audio import SR, wav

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
