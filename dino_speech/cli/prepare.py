"""``dino-speech prepare CORPUS``: corpus folder → Lhotse manifests and Kaldi-style lists.

Each subcommand parses its options and calls the preparer in :mod:`data_prep`; the layouts,
labels and idempotency live there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

if TYPE_CHECKING:
    from data_prep.splits import Split

_Command = TypeVar("_Command", bound=Callable[..., None])


def _float_pair(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("expected two numbers 'MIN,MAX', e.g. 2,6") from None
    if not 0 < low <= high:
        raise click.BadParameter(f"need 0 < MIN <= MAX, got {value}")
    return low, high


def _names(value: str) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")`` (the preparers check the names)."""
    return tuple(name.strip() for name in value.split(",") if name.strip())


def _corpus_dir_option(help_text: str) -> Callable[[_Command], _Command]:
    """The required ``--corpus-dir`` of a corpus command: an existing folder."""
    return click.option(
        "--corpus-dir",
        required=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help=help_text,
    )


_out_dir_option = click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (created if missing) for the Lhotse manifests "
    "(<corpus>_cuts_<part>.jsonl.gz, with the recordings and supervisions beside it) and "
    "each part's Kaldi lists (<part>/wav.scp, utt2spk, ...).",
)
_num_jobs_option = click.option(
    "--num-jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Parallel processes reading audio headers.",
)


@click.group()
def prepare() -> None:
    """Prepare a corpus: write Lhotse manifests (jsonl.gz) and Kaldi-style lists.

    Every utterance becomes one cut whose id is the utterance id (the key of wav.scp, utt2spk
    and the trial lists); labels (speaker, emotion, session, ...) live in the cut's custom
    fields. Rerunning a finished preparation on the same inputs does nothing; new or removed
    audio files, edited label files or other options make it prepare again.

    \b
    Examples:
      dino-speech prepare synthetic --out-dir data/synthetic
      dino-speech prepare voxceleb --corpus-dir /corpora/voxceleb --out-dir data/voxceleb
      dino-speech prepare musan --corpus-dir /corpora/musan --out-dir data/musan
      dino-speech prepare librispeech --corpus-dir /corpora/LibriSpeech --out-dir data/libri
      dino-speech prepare kaldi --data-dir data/train --out-dir data/mine
      dino-speech prepare audio --corpus-dir my_audio --out-dir data/mine \\
        --speaker-regex '(?P<speaker>[^/]+)/[^/]+$' --dev-speakers 10
    """


@prepare.command()
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the wavs, manifests and lists are written (empty, new, or holding this corpus).",
)
@click.option(
    "--speakers",
    default=40,
    show_default=True,
    type=click.IntRange(min=4),
    help="Number of speakers (split by speaker into train and test).",
)
@click.option(
    "--utts-per-speaker",
    default=20,
    show_default=True,
    type=click.IntRange(min=2),
    help="Utterances per speaker.",
)
@click.option(
    "--duration-range",
    default="2,6",
    show_default=True,
    callback=_float_pair,
    help="Utterance length range in seconds, 'MIN,MAX' (within 0.5-60).",
)
@click.option(
    "--test-speakers",
    default=None,
    type=click.IntRange(min=2),
    help="Speakers held out for the test split [default: a quarter, at least 2].",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Random seed: the same seed gives the same corpus, for any --num-jobs.",
)
@click.option(
    "--num-jobs",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Parallel processes generating audio.",
)
def synthetic(
    out_dir: Path,
    speakers: int,
    utts_per_speaker: int,
    duration_range: tuple[float, float],
    test_speakers: int | None,
    seed: int,
    num_jobs: int,
) -> None:
    """Generate the built-in synthetic speech corpus (source-filter voices, no download).

    Each speaker has fixed voice traits (F0 level and range, vocal-tract length, glottal
    tilt, breathiness, jitter, shimmer, speaking rate), speaks random phones from one shared
    inventory in one of four emotions (neutral, happy, angry, sad), and is recorded over a few
    sessions through different channels (EQ, band limit, room, noise). Writes 16 kHz wavs,
    Lhotse manifests with speaker/emotion/session labels, Kaldi lists for the train and test
    splits (split by speaker), test/trials, and the true traits in speaker_traits.json.
    Rerunning with the same settings on a finished corpus does nothing.
    """
    from data_prep.synthetic import prepare_synthetic

    summary = prepare_synthetic(
        out_dir,
        num_speakers=speakers,
        utts_per_speaker=utts_per_speaker,
        duration_range=duration_range,
        num_test_speakers=test_speakers,
        seed=seed,
        num_jobs=num_jobs,
    )
    click.echo(summary)


_existing_dir = click.Path(exists=True, file_okay=False, path_type=Path)


@prepare.command()
@click.option(
    "--corpus-dir",
    default=None,
    type=_existing_dir,
    help="Folder holding voxceleb1/ and/or voxceleb2/ (see --vox1-dir, --vox2-dir).",
)
@click.option(
    "--vox1-dir",
    default=None,
    type=_existing_dir,
    help="VoxCeleb1 root (wav/idXXXXX/<video>/NNNNN.wav) [default: CORPUS_DIR/voxceleb1].",
)
@click.option(
    "--vox2-dir",
    default=None,
    type=_existing_dir,
    help="VoxCeleb2 root (dev/wav/idXXXXX/<video>/NNNNN.wav, converted from the "
    "official AAC) [default: CORPUS_DIR/voxceleb2].",
)
@click.option(
    "--trials-dir",
    default=None,
    type=_existing_dir,
    help="Folder with the VoxCeleb1 trial lists (veri_test.txt, veri_test2.txt, "
    "list_test_all[2].txt, list_test_hard[2].txt) [default: the VoxCeleb1 root].",
)
@_out_dir_option
@_num_jobs_option
def voxceleb(
    corpus_dir: Path | None,
    vox1_dir: Path | None,
    vox2_dir: Path | None,
    trials_dir: Path | None,
    out_dir: Path,
    num_jobs: int,
) -> None:
    """VoxCeleb1 and/or VoxCeleb2 with the Vox1-O, E and H trial lists (original and cleaned).

    Parts: vox1_dev, vox1_test, vox1 (both halves; Vox1-E and H need it), vox2_dev,
    vox2_test, as far as their audio is present. Utterance ids are
    <speaker>-<video>-<NNNNN>; the trial lists become Kaldi lists
    (utt1 utt2 target|nontarget): vox1_test/trials (Vox1-O cleaned) and
    vox1_test/trials_vox1_o_{clean,orig}, vox1/trials_vox1_{o,e,h}_{clean,orig}.

    VoxCeleb2 is distributed as AAC (.m4a), which the toolkit's audio reader cannot decode:
    convert it to 16 kHz wav or flac first (see the README).
    """
    from data_prep.voxceleb import prepare_voxceleb

    click.echo(
        prepare_voxceleb(
            out_dir,
            corpus_dir=corpus_dir,
            vox1_dir=vox1_dir,
            vox2_dir=vox2_dir,
            trials_dir=trials_dir,
            num_jobs=num_jobs,
        )
    )


@prepare.command()
@_corpus_dir_option("The MUSAN folder (music/, noise/, speech/ with their ANNOTATIONS).")
@_out_dir_option
@click.option(
    "--categories",
    default="music,noise,speech",
    show_default=True,
    help="Comma-separated MUSAN categories to include.",
)
@click.option(
    "--vocals/--no-vocals",
    default=True,
    show_default=True,
    help="Keep the music tracks that have vocals.",
)
def musan(corpus_dir: Path, out_dir: Path, categories: str, vocals: bool) -> None:
    """MUSAN noise, music and speech for augmentation (part 'all').

    Every file is one cut with custom["category"] = noise, music or speech; point
    data.musan_cuts of a training config at OUT_DIR/musan_cuts_all.jsonl.gz.
    """
    from data_prep.musan import prepare_musan

    click.echo(prepare_musan(corpus_dir, out_dir, categories=_names(categories), use_vocals=vocals))


@prepare.command()
@_corpus_dir_option(
    "The RIRS_NOISES folder (simulated_rirs/, real_rirs_isotropic_noises/), "
    "or the folder holding it."
)
@_out_dir_option
@click.option(
    "--kinds",
    default="simulated,real",
    show_default=True,
    help="Comma-separated RIR kinds to include: simulated, real.",
)
@click.option(
    "--room-sizes",
    default="small,medium,large",
    show_default=True,
    help="Comma-separated simulated room sizes to include: small, medium, large.",
)
@_num_jobs_option
def rirs(corpus_dir: Path, out_dir: Path, kinds: str, room_sizes: str, num_jobs: int) -> None:
    """Room impulse responses of RIRS_NOISES (OpenSLR 28) for reverberation (part 'all').

    The rir_list files decide what is an RIR (the real-RIR folder also holds isotropic
    noises); point data.rir_cuts of a training config at OUT_DIR/rirs_cuts_all.jsonl.gz.
    """
    from data_prep.rirs import prepare_rirs

    summary = prepare_rirs(
        corpus_dir, out_dir, kinds=_names(kinds), room_sizes=_names(room_sizes), num_jobs=num_jobs
    )
    click.echo(summary)


@prepare.command()
@_corpus_dir_option(
    "The IEMOCAP_full_release folder (Session1 ... Session5, each with sentences/wav/ and "
    "dialog/EmoEvaluation/)."
)
@_out_dir_option
@_num_jobs_option
def iemocap(corpus_dir: Path, out_dir: Path, num_jobs: int) -> None:
    """IEMOCAP: parts 'all' (original categories) and '4class' (4-class protocol).

    The four classes: neutral, happy (happy + excited), angry, sad. Speakers are
    session + gender of the speaking actor (Ses01F ...); the session is in utt2sess, for
    leave-one-session-out evaluation.
    """
    from data_prep.iemocap import prepare_iemocap

    click.echo(prepare_iemocap(corpus_dir, out_dir, num_jobs=num_jobs))


@prepare.command()
@_corpus_dir_option("The CREMA-D folder (AudioWAV/, optionally VideoDemographics.csv).")
@_out_dir_option
@_num_jobs_option
def cremad(corpus_dir: Path, out_dir: Path, num_jobs: int) -> None:
    """CREMA-D: 91 actors, 6 emotions parsed from the file names (part 'all').

    <actor>_<sentence>_<emotion>_<level>.wav, e.g. 1001_DFA_ANG_XX.wav: speaker 1001,
    emotion angry (ANG, DIS, FEA, HAP, NEU, SAD), level unspecified.
    """
    from data_prep.cremad import prepare_cremad

    click.echo(prepare_cremad(corpus_dir, out_dir, num_jobs=num_jobs))


@prepare.command("msp_podcast")
@_corpus_dir_option("The MSP-Podcast folder (Audios/, Labels/labels_consensus.csv).")
@_out_dir_option
@_num_jobs_option
def msp_podcast(corpus_dir: Path, out_dir: Path, num_jobs: int) -> None:
    """MSP-Podcast: one part per official split (train, development, test1, test2...).

    The consensus class (EmoClass) becomes custom["emotion"] (neutral, happy, angry, sad,
    surprised, contempt, disgusted, fearful, other, no_agreement); utterances of unknown
    speakers have no speaker label.
    """
    from data_prep.msp_podcast import prepare_msp_podcast

    click.echo(prepare_msp_podcast(corpus_dir, out_dir, num_jobs=num_jobs))


def _split_options(command: _Command) -> _Command:
    """The options ``prepare audio`` and ``prepare kaldi`` share: dev split, trials, minimum
    duration, parallel jobs. The command gets the split options as one ``split`` argument, a
    :class:`data_prep.splits.Split`."""
    options = [
        click.option(
            "--dev-speakers",
            default=None,
            type=click.IntRange(min=2),
            help="Hold out this many whole speakers as part 'dev' (with dev/trials); the rest "
            "is part 'train'. Without --dev-speakers/--dev-fraction: one part, 'all'.",
        ),
        click.option(
            "--dev-fraction",
            default=None,
            type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
            help="Hold out this fraction of the speakers instead (exclusive with --dev-speakers).",
        ),
        click.option(
            "--seed",
            default=0,
            show_default=True,
            type=int,
            help="Seed of the speaker split and the non-target trials.",
        ),
        click.option(
            "--min-duration",
            default=0.5,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Skip utterances shorter than this many seconds.",
        ),
        click.option(
            "--nontarget-ratio",
            default=1.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            help="Non-target trials per target trial in dev/trials (all target pairs are kept).",
        ),
        click.option(
            "--num-jobs",
            default=1,
            show_default=True,
            type=click.IntRange(min=1),
            help="Parallel processes reading the audio (every file is read once, to find "
            "unreadable, empty and NaN files).",
        ),
    ]

    @functools.wraps(command)
    def with_split(
        *,
        dev_speakers: int | None,
        dev_fraction: float | None,
        seed: int,
        nontarget_ratio: float,
        **kwargs: Any,
    ) -> None:
        from data_prep.splits import Split

        command(split=Split(dev_speakers, dev_fraction, seed, nontarget_ratio), **kwargs)

    wrapped = cast(_Command, with_split)
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def _name_option(default: str) -> Callable[[_Command], _Command]:
    """``--name``: the corpus name, prefix of the manifests."""
    return click.option(
        "--name",
        default=default,
        show_default=True,
        help="Corpus name: the prefix of the manifests, OUT/<name>_cuts_<part>.jsonl.gz.",
    )


@prepare.command()
@_corpus_dir_option("Folder holding the audio files (searched recursively, any layout).")
@_out_dir_option
@_name_option("audio")
@click.option(
    "--extensions",
    default=None,
    help="Comma-separated file endings to take, e.g. wav,flac [default: every format "
    "soundfile reads: wav, flac, ogg, mp3, aiff, ...; case-insensitive].",
)
@click.option(
    "--speaker-regex",
    default=None,
    help="Python regex with a named group 'speaker', searched in each file's path relative "
    "to --corpus-dir, e.g. '(?P<speaker>[^/]+)/[^/]+$' (the folder holding the file). "
    "Speakers serve the dev split and its trials only.",
)
@_split_options
def audio(
    corpus_dir: Path,
    out_dir: Path,
    name: str,
    extensions: str | None,
    speaker_regex: str | None,
    split: Split,
    min_duration: float,
    num_jobs: int,
) -> None:
    """Your own audio: every audio file under a folder, any layout.

    Utterance ids are the relative paths without extension ('/' -> '-', other odd characters
    -> '_'; a short hash is appended where two paths would give the same id). Files that
    cannot be read, are empty, hold NaN/Inf samples or are shorter than --min-duration are
    listed in OUT/skipped and left out. Parts: 'all', or with --dev-speakers/--dev-fraction
    'train' and 'dev' (whole speakers held out) plus OUT/dev/trials (all target pairs and
    sampled non-target pairs, 'utt1 utt2 target|nontarget').

    \b
    Example (speakers are the folders holding the files):
      dino-speech prepare audio --corpus-dir recordings/ --out-dir data/mine \\
        --speaker-regex '(?P<speaker>[^/]+)/[^/]+$' --dev-speakers 10
    """
    from data_prep.audio_folder import prepare_audio_folder

    summary = prepare_audio_folder(
        corpus_dir,
        out_dir,
        name=name,
        extensions=_names(extensions) if extensions else None,
        speaker_regex=speaker_regex,
        split=split,
        min_duration=min_duration,
        num_jobs=num_jobs,
    )
    click.echo(summary)


@prepare.command()
@click.option(
    "--data-dir",
    required=True,
    type=_existing_dir,
    help="Kaldi data directory: wav.scp (required), optionally segments, utt2spk, utt2emo, "
    "utt2lang, utt2sess, utt2gender or spk2gender, other utt2X lists.",
)
@_out_dir_option
@_name_option("kaldi")
@_split_options
def kaldi(
    data_dir: Path,
    out_dir: Path,
    name: str,
    split: Split,
    min_duration: float,
    num_jobs: int,
) -> None:
    """An existing Kaldi data directory (wav.scp, segments, utt2spk, ...).

    wav.scp must list audio files (relative paths resolve against --data-dir, then the
    working directory); piped commands and ark: offsets are not supported: write the audio
    to files first. utt2spk gives the speaker, utt2emo the emotion, utt2lang the language,
    utt2sess the session, any other utt2X custom[X]. Bad files, the split and the trials as
    in 'prepare audio'.

    \b
    Example:
      dino-speech prepare kaldi --data-dir data/train --out-dir data/mine --dev-speakers 10
    """
    from data_prep.kaldi_dir import prepare_kaldi_dir

    summary = prepare_kaldi_dir(
        data_dir,
        out_dir,
        name=name,
        split=split,
        min_duration=min_duration,
        num_jobs=num_jobs,
    )
    click.echo(summary)


@prepare.command()
@_corpus_dir_option("The LibriSpeech folder (dev-clean/, train-clean-100/, ...) or its parent.")
@_out_dir_option
@click.option(
    "--parts",
    default="",
    help="Comma-separated parts, e.g. dev-clean,test-clean [default: all present].",
)
@_num_jobs_option
def librispeech(corpus_dir: Path, out_dir: Path, parts: str, num_jobs: int) -> None:
    """LibriSpeech via Lhotse's recipe: one part per LibriSpeech part.

    Cuts carry custom["speaker"], custom["session"] (the chapter) and the transcript; the
    dev and test parts get <part>/trials (all target pairs, as many non-target pairs).
    """
    from data_prep.librispeech import prepare_librispeech_corpus

    click.echo(
        prepare_librispeech_corpus(corpus_dir, out_dir, parts=_names(parts), num_jobs=num_jobs)
    )
