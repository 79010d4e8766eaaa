"""Fake corpora for the tests, in the official folder layouts; nothing is downloaded.

One maker per corpus, ``make_<corpus>(root, **options) -> root``, in the spirit of lhotse's
``lhotse.testing.dummies``. By default a maker writes a *fixed tree*: a few short noise clips
under the exact file names of its module's constants (``IEMOCAP_UTTS``, ``MUSAN_FILES`` ...),
for the preparer tests to check names, labels and splits against. The emotion and VoxCeleb
makers also take ``learnable=True``: a larger balanced list whose audio carries its label
(a tone per emotion, a resonance per speaker), for the recipe tests to learn something from.

Modules: :mod:`~tests.fakes.audio` (the ``wav``/``tone``/``speaker_burst`` writers),
:mod:`~tests.fakes.voxceleb`, :mod:`~tests.fakes.augmentation` (MUSAN, RIRs),
:mod:`~tests.fakes.emotion` (IEMOCAP, CREMA-D, MSP-Podcast).
"""

from tests.fakes.audio import EMOTION_HZ, SR, emotion_tone, speaker_burst, tone, wav
from tests.fakes.augmentation import MUSAN_FILES, make_musan, make_rirs
from tests.fakes.emotion import (
    CREMAD_FILES,
    IEMOCAP_UTTS,
    MSP_ROWS,
    make_cremad,
    make_iemocap,
    make_msp_podcast,
)
from tests.fakes.voxceleb import (
    VOX1_DEV_SPEAKERS,
    VOX1_TEST_SPEAKERS,
    VOX2_DEV_SPEAKERS,
    VOX2_TEST_SPEAKERS,
    make_voxceleb1,
    make_voxceleb2,
    vox_id,
    vox_utts,
)

__all__ = [
    "CREMAD_FILES",
    "EMOTION_HZ",
    "IEMOCAP_UTTS",
    "MSP_ROWS",
    "MUSAN_FILES",
    "SR",
    "VOX1_DEV_SPEAKERS",
    "VOX1_TEST_SPEAKERS",
    "VOX2_DEV_SPEAKERS",
    "VOX2_TEST_SPEAKERS",
    "emotion_tone",
    "make_cremad",
    "make_iemocap",
    "make_msp_podcast",
    "make_musan",
    "make_rirs",
    "make_voxceleb1",
    "make_voxceleb2",
    "speaker_burst",
    "tone",
    "vox_id",
    "vox_utts",
    "wav",
]
