"""Tests for the synthetic corpus: the generator's physics, the corpus layout, determinism,
idempotency and the ``prepare synthetic`` command."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from data_prep.synth.channel import Channel, apply_channel, sample_channel
from data_prep.synth.phones import articulate
from data_prep.synth.plan import make_trials, plan_corpus, render_utterance
from data_prep.synth.source_filter import _voiced_source, synthesise
from data_prep.synth.voice import (
    EMOTIONS,
    SpeakerTraits,
    UtteranceVoice,
    realise_voice,
    sample_speaker_traits,
)
from data_prep.synthetic import prepare_synthetic
from dino_speech.audio import audio_info, read_audio
from dino_speech.data.manifests import cut_label, load_cuts, read_kaldi_list
from dino_speech.errors import ConfigError, DataError
from tests.data_prep.prepare_cli import one_error_line, run_prepare

SR = 16000
TINY = {"num_speakers": 4, "utts_per_speaker": 3, "duration_range": (0.6, 1.0)}


def _voice(**changes: float) -> UtteranceVoice:
    base = UtteranceVoice(
        f0_mean_hz=120.0,
        f0_range_st=2.0,
        formant_scale=1.0,
        tilt_db_oct=-1.0,
        breathiness_db=-25.0,
        jitter_pct=0.5,
        shimmer_pct=3.0,
        speaking_rate=1.0,
        open_quotient=0.6,
        effort_db=0.0,
        accent_db=2.0,
    )
    return replace(base, **changes)


def _clean(voice: UtteranceVoice, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A channel-free utterance; the same seed gives the same phone sequence."""
    tracks = articulate(voice, int(seconds * SR), SR, np.random.default_rng(seed))
    return synthesise(tracks, voice, SR, np.random.default_rng(seed + 1))


# --- the generator --------------------------------------------------------------------------


def test_realised_f0_follows_the_voice() -> None:
    for f0 in (100.0, 220.0):
        wave = _clean(_voice(f0_mean_hz=f0, f0_range_st=0.5, jitter_pct=0.2), seconds=2.0)
        # autocorrelation pitch of the loudest 40 ms frames (vowels)
        frames = wave[: len(wave) // 640 * 640].reshape(-1, 640)
        loud = frames[np.argsort((frames**2).sum(1))[-10:]]
        estimates = []
        for frame in loud:
            ac = np.correlate(frame, frame, "full")[639:]
            lo, hi = SR // 400, SR // 60
            estimates.append(SR / (lo + np.argmax(ac[lo:hi])))
        assert np.median(estimates) == pytest.approx(f0, rel=0.1)


def test_formant_scale_shifts_the_spectrum() -> None:
    # the same phones from a longer vocal tract: the spectral envelope moves down in frequency
    spectra = []
    for scale in (1.0, 1.25):
        wave = _clean(_voice(formant_scale=scale, f0_mean_hz=100.0), seconds=3.0)
        frames = wave[: len(wave) // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
        spectra.append(np.log((np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(0) + 1e-12))
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    logf = np.linspace(np.log(300.0), np.log(4000.0), 400)
    a, b = (np.interp(logf, np.log(freqs[1:]), s[1:]) for s in spectra)
    a, b = a - a.mean(), b - b.mean()
    shifts = np.arange(-60, 61)
    step = logf[1] - logf[0]
    corr = [np.dot(a[60:-60], np.roll(b, -k)[60:-60]) for k in shifts]
    best = shifts[int(np.argmax(corr))] * step
    assert best == pytest.approx(np.log(1.25), abs=0.06)


def test_jitter_perturbs_glottal_periods() -> None:
    f0 = np.full(SR * 2, 125.0)

    def period_spread(jitter: float) -> float:
        _, open_phase = _voiced_source(f0, _voice(jitter_pct=jitter), SR, np.random.default_rng(0))
        starts = np.flatnonzero(open_phase[1:] & ~open_phase[:-1])
        periods = np.diff(starts)
        return float(periods.std() / periods.mean())

    assert period_spread(0.0) < 0.005  # only the sample grid
    assert period_spread(2.0) == pytest.approx(0.02, rel=0.3)


def test_emotions_change_prosody_on_top_of_the_speaker() -> None:
    traits = sample_speaker_traits(np.random.default_rng(3))
    voices = {e: realise_voice(traits, e, np.random.default_rng(i)) for i, e in enumerate(EMOTIONS)}
    assert voices["angry"].f0_mean_hz > voices["neutral"].f0_mean_hz > voices["sad"].f0_mean_hz
    assert voices["happy"].f0_range_st > voices["sad"].f0_range_st
    assert voices["sad"].speaking_rate < voices["angry"].speaking_rate
    assert voices["angry"].tilt_db_oct > voices["sad"].tilt_db_oct
    for v in voices.values():  # the vocal tract stays the speaker's
        assert v.formant_scale == pytest.approx(traits.formant_scale, rel=0.05)
    with pytest.raises(ValueError, match="unknown emotion 'bored'"):
        realise_voice(traits, "bored", np.random.default_rng(0))


def test_speaker_traits_are_spread_and_plausible() -> None:
    traits = [sample_speaker_traits(np.random.default_rng(i)) for i in range(200)]
    f0 = np.array([t.f0_mean_hz for t in traits])
    assert f0.min() > 60 and f0.max() < 400
    assert {t.sex for t in traits} == {"female", "male"}
    female = np.array([t.sex == "female" for t in traits])
    assert np.median(f0[female]) > 1.5 * np.median(f0[~female])
    for name in SpeakerTraits.numeric_names():
        values = np.array([getattr(t, name) for t in traits])
        assert values.std() > 0.03 * abs(values.mean()), name


def _band_energy(wave: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(wave)) ** 2
    freqs = np.fft.rfftfreq(len(wave), 1 / SR)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


def test_channel_band_limit_noise_and_level() -> None:
    rng = np.random.default_rng(0)
    speech = _clean(_voice(), seconds=2.0)
    wide = replace(sample_channel(rng), rt60_s=0.0, snr_db=60.0, level_dbfs=-20.0)
    wide = replace(wide, band="wideband", highpass_hz=50.0, lowpass_hz=7800.0, filter_order=6)
    wide = replace(wide, hum_hz=0.0)
    phone = replace(wide, band="telephone", highpass_hz=300.0, lowpass_hz=3400.0)
    y_wide = apply_channel(speech, wide, SR, np.random.default_rng(1))
    y_phone = apply_channel(speech, phone, SR, np.random.default_rng(1))
    assert y_wide.shape == speech.shape
    ratio_wide = _band_energy(y_wide, 5000, 8000) / _band_energy(y_wide, 300, 3400)
    ratio_phone = _band_energy(y_phone, 5000, 8000) / _band_energy(y_phone, 300, 3400)
    assert ratio_phone < 0.01 * ratio_wide
    # active level as requested; a vocal-effort gain adds to it
    frames = y_wide[: len(y_wide) // 320 * 320].reshape(-1, 320)
    power = (frames**2).mean(1)
    active = np.sqrt(power[power > power.max() * 1e-3].mean())
    assert 20 * np.log10(active) == pytest.approx(-20.0, abs=0.5)
    louder = apply_channel(speech, wide, SR, np.random.default_rng(1), gain_db=6.0)
    assert np.abs(louder).max() == pytest.approx(2 * np.abs(y_wide).max(), rel=0.01)
    # noise fills the pauses at the requested SNR (over active speech; flat channel, white noise)
    flat = Channel(
        (0.0,) * 5, (0.0,) * 5, 0.0, (), "wideband", 20.0, 7950.0, 8, 0.0, 0.0, 0.0, 10.0, -20.0
    )
    noisy = apply_channel(speech, flat, SR, np.random.default_rng(1))
    quiet = np.abs(speech) < 1e-6
    assert quiet.sum() > SR // 20  # the utterance has silent lead/trail
    clean_floor = np.sqrt(np.mean(y_wide[quiet] ** 2))
    noise_floor = np.sqrt(np.mean(noisy[quiet] ** 2))
    assert noise_floor > 30 * clean_floor
    frames = noisy[: len(noisy) // 320 * 320].reshape(-1, 320)
    power = (frames**2).mean(1)
    active = np.sqrt(power[power > power.max() * 1e-3].mean())
    assert 20 * np.log10(active / noise_floor) == pytest.approx(10.0, abs=1.5)


def test_render_is_deterministic_per_seed() -> None:
    plan = plan_corpus(3, 2, (0.8, 1.2), 2, seed=5)
    a, info_a = render_utterance(plan.utterances[1], 5)
    b, info_b = render_utterance(plan.utterances[1], 5)
    assert np.array_equal(a, b) and info_a == info_b
    c, _ = render_utterance(plan_corpus(3, 2, (0.8, 1.2), 2, seed=6).utterances[1], 6)
    assert not np.array_equal(a[: len(c)], c[: len(a)])
    # more utterances per speaker leave the existing speakers' voices alone
    bigger = plan_corpus(3, 4, (0.8, 1.2), 2, seed=5)
    assert bigger.speakers == plan.speakers
    assert isinstance(plan.utterances[0].channel, Channel)


def test_make_trials() -> None:
    utt2spk = {f"s{s}-{u}": f"s{s}" for s in range(3) for u in range(4)}
    trials = make_trials(utt2spk, seed=0)
    targets = [t for t in trials if t[2] == "target"]
    nontargets = [t for t in trials if t[2] == "nontarget"]
    assert len(targets) == 3 * 6 and len(nontargets) == len(targets)
    assert len(set(trials)) == len(trials) and trials == sorted(trials)
    for a, b, label in trials:
        assert a < b and (utt2spk[a] == utt2spk[b]) == (label == "target")
    assert make_trials(utt2spk, seed=0) == trials
    # fewer non-target pairs exist than targets: all of them are taken
    lopsided = {**{f"a-{u}": "a" for u in range(6)}, "b-0": "b"}
    assert sum(t[2] == "nontarget" for t in make_trials(lopsided, 0)) == 6
    with pytest.raises(DataError, match="at least two speakers"):
        make_trials({"a-0": "a", "a-1": "a"}, 0)
    with pytest.raises(DataError, match="at least two utterances"):
        make_trials({"a-0": "a", "b-0": "b"}, 0)


# --- the prepared corpus --------------------------------------------------------------------


def test_corpus_layout_and_labels(synthetic_corpus: Path) -> None:
    out = synthetic_corpus
    record = json.loads((out / "corpus.json").read_text())
    assert record["complete"] and record["settings"]["num_speakers"] == 8
    train = load_cuts(out / "synthetic_cuts_train.jsonl.gz")
    test = load_cuts(out / "synthetic_cuts_test.jsonl.gz")
    assert len(train) == 6 * 6 and len(test) == 2 * 6
    train_spk = {cut_label(c, "speaker") for c in train}
    test_spk = {cut_label(c, "speaker") for c in test}
    assert len(train_spk) == 6 and len(test_spk) == 2 and not train_spk & test_spk
    emotions = set()
    for cut in [*train, *test]:
        spk = cut.custom["speaker"]
        assert spk.startswith("spk") and len(spk) == 7
        assert cut.id == cut.recording.id and cut.id.startswith(f"{spk}-") and len(cut.id) == 12
        assert cut.supervisions[0].speaker == spk
        assert cut.custom["session"].startswith(f"{spk}-s")
        assert cut.custom["emotion"] in EMOTIONS
        emotions.add(cut.custom["emotion"])
        assert 1.5 <= cut.duration <= 3.0
        path = Path(cut.recording.sources[0].source)
        assert path == out / "wavs" / spk / f"{cut.id}.wav"
        assert audio_info(path) == (SR, cut.recording.num_samples, 1)
    assert len(emotions) >= 3
    sessions = {c.custom["session"] for c in train if c.custom["speaker"] == "spk0000"} or {
        c.custom["session"] for c in test if c.custom["speaker"] == "spk0000"
    }
    assert len(sessions) == 2  # 6 utterances -> 2 sessions

    for part, cuts in (("train", train), ("test", test)):
        lists = out / part
        assert read_kaldi_list(lists / "utt2spk") == {c.id: c.custom["speaker"] for c in cuts}
        assert read_kaldi_list(lists / "utt2emo") == {c.id: c.custom["emotion"] for c in cuts}
        assert read_kaldi_list(lists / "utt2sess") == {c.id: c.custom["session"] for c in cuts}
        wav_scp = read_kaldi_list(lists / "wav.scp")
        assert wav_scp == {c.id: c.recording.sources[0].source for c in cuts}
        assert (lists / "spk2utt").is_file()
    wave = read_audio(out / "wavs" / "spk0000" / "spk0000-0000.wav")
    assert 0.001 < float(wave.abs().max()) <= 1.0


def test_trials_cover_test_speakers(synthetic_corpus: Path) -> None:
    test_spk = read_kaldi_list(synthetic_corpus / "test" / "utt2spk")
    lines = (synthetic_corpus / "test" / "trials").read_text().splitlines()
    trials = [tuple(line.split()) for line in lines]
    assert all(len(t) == 3 for t in trials)
    targets = {(a, b) for a, b, lab in trials if lab == "target"}
    expected = {(a, b) for a in test_spk for b in test_spk if a < b and test_spk[a] == test_spk[b]}
    assert targets == expected and len(targets) == 2 * 15
    nontargets = [(a, b) for a, b, lab in trials if lab == "nontarget"]
    assert len(nontargets) == len(targets)
    assert all(test_spk[a] != test_spk[b] for a, b in nontargets)


def test_speaker_traits_file(synthetic_corpus: Path) -> None:
    truth = json.loads((synthetic_corpus / "speaker_traits.json").read_text())
    assert truth["trait_names"] == SpeakerTraits.numeric_names()
    speakers = truth["speakers"]
    assert sorted(speakers) == [f"spk{i:04d}" for i in range(8)]
    test_spk = set(read_kaldi_list(synthetic_corpus / "test" / "utt2spk").values())
    for spk, entry in speakers.items():
        assert entry["part"] == ("test" if spk in test_spk else "train")
        assert set(entry["traits"]) == {"sex", *truth["trait_names"]}
        assert len(entry["sessions"]) == 2
    realised = json.loads((synthetic_corpus / "utterance_traits.json").read_text())
    assert len(realised) == 48
    some = realised["spk0003-0002"]
    assert some["speaker"] == "spk0003" and some["emotion"] in EMOTIONS
    f0 = speakers["spk0003"]["traits"]["f0_mean_hz"]
    assert some["voice"]["f0_mean_hz"] == pytest.approx(f0, rel=0.3)


def test_same_seed_same_corpus_and_idempotent(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    summary = prepare_synthetic(a, seed=3, **TINY)
    assert "speakers: 4 (2 train, 2 test)" in summary and "utterances: 12" in summary
    prepare_synthetic(b, seed=3, **TINY)
    wavs = sorted(p.relative_to(a) for p in (a / "wavs").rglob("*.wav"))
    assert len(wavs) == 12
    assert all((a / w).read_bytes() == (b / w).read_bytes() for w in wavs)
    assert (a / "test" / "trials").read_text() == (b / "test" / "trials").read_text()
    assert (a / "speaker_traits.json").read_text() == (b / "speaker_traits.json").read_text()

    stamp = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    again = prepare_synthetic(a, seed=3, **TINY)
    assert "already complete" in again and "nothing to do" in again
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()} == stamp

    with pytest.raises(DataError, match="made with other settings"):
        prepare_synthetic(a, seed=4, **TINY)

    # a lost file makes the corpus incomplete: it is generated again, identically
    lost = a / wavs[0]
    lost.unlink()
    prepare_synthetic(a, seed=3, **TINY)
    assert lost.read_bytes() == (b / wavs[0]).read_bytes()

    c = tmp_path / "c"
    prepare_synthetic(c, seed=4, **TINY)
    assert (a / wavs[0]).read_bytes() != (c / wavs[0]).read_bytes()


def test_interrupted_run_is_redone(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    prepare_synthetic(out, seed=1, **TINY)
    record = json.loads((out / "corpus.json").read_text())
    record["complete"] = False  # as a killed run leaves it
    (out / "corpus.json").write_text(json.dumps(record))
    (out / "wavs" / "spk0000" / "stale.wav").write_bytes(b"junk")
    summary = prepare_synthetic(out, seed=1, **TINY)
    assert "written to" in summary
    assert not (out / "wavs" / "spk0000" / "stale.wav").exists()
    record = json.loads((out / "corpus.json").read_text())
    assert record["complete"]
    # a corpus from an older generator version is regenerated, not refused
    record["settings"]["generator_version"] = 0
    (out / "corpus.json").write_text(json.dumps(record))
    assert "written to" in prepare_synthetic(out, seed=1, **TINY)
    assert json.loads((out / "corpus.json").read_text())["settings"]["generator_version"] > 0


def test_refuses_foreign_directories_and_bad_settings(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(DataError, match="not empty and holds no synthetic corpus"):
        prepare_synthetic(tmp_path, **TINY)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    with pytest.raises(DataError, match="is not a directory"):
        prepare_synthetic(tmp_path / "mine.txt", **TINY)
    out = tmp_path / "new"
    bad = [
        ({"num_speakers": 2}, "at least 3 speakers"),
        ({"utts_per_speaker": 1}, "at least 2 utterances"),
        ({"duration_range": (2.0, 1.0)}, "duration range"),
        ({"duration_range": (0.1, 1.0)}, "duration range"),
        ({"num_test_speakers": 4}, "between 2 and 3"),
        ({"num_test_speakers": 1}, "between 2 and 3"),
        ({"num_jobs": 0}, "num_jobs"),
    ]
    for change, message in bad:
        with pytest.raises(ConfigError, match=message):
            prepare_synthetic(out, **{**TINY, **change})
    assert not out.exists()


@pytest.mark.slow
def test_num_jobs_does_not_change_the_output(tmp_path: Path) -> None:
    prepare_synthetic(tmp_path / "serial", seed=2, **TINY)
    prepare_synthetic(tmp_path / "parallel", seed=2, num_jobs=2, **TINY)
    serial, parallel = (
        sorted(p.relative_to(tmp_path / run) for p in (tmp_path / run / "wavs").rglob("*.wav"))
        for run in ("serial", "parallel")
    )
    assert len(serial) == 12 and parallel == serial  # the same files, every utterance's
    for wav in (tmp_path / "serial" / "wavs").rglob("*.wav"):
        twin = tmp_path / "parallel" / wav.relative_to(tmp_path / "serial")
        assert wav.read_bytes() == twin.read_bytes()
    for name in ("speaker_traits.json", "utterance_traits.json"):
        assert (tmp_path / "serial" / name).read_text() == (
            tmp_path / "parallel" / name
        ).read_text()


def test_cli_prepare_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["--out-dir", str(out), "--speakers", "4"]
    args += ["--utts-per-speaker", "2", "--duration-range", "0.6,0.8", "--test-speakers", "2"]
    result = run_prepare("synthetic", *args)
    assert result.exit_code == 0, result.output
    assert "Synthetic corpus written to" in result.output
    assert len(load_cuts(out / "synthetic_cuts_test.jsonl.gz")) == 4
    again = run_prepare("synthetic", *args)
    assert again.exit_code == 0 and "nothing to do" in again.output
    clash = run_prepare("synthetic", *args[:-2], "--test-speakers", "3")
    assert "other settings" in one_error_line(clash)
    help_text = run_prepare("synthetic", "--help").output
    for option in ("--out-dir", "--speakers", "--duration-range", "--seed", "--num-jobs"):
        assert option in help_text


def test_copy_of_corpus_is_still_complete(synthetic_corpus: Path, tmp_path: Path) -> None:
    """Manifests hold absolute wav paths; a copied corpus keeps pointing at the originals."""
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_corpus, copy)
    settings = json.loads((copy / "corpus.json").read_text())["settings"]
    kwargs = {
        "num_speakers": settings["num_speakers"],
        "utts_per_speaker": settings["utts_per_speaker"],
        "duration_range": tuple(settings["duration_range"]),
        "num_test_speakers": settings["num_test_speakers"],
        "seed": settings["seed"],
    }
    assert "nothing to do" in prepare_synthetic(copy, **kwargs)


def test_channel_sessions_differ(synthetic_corpus: Path) -> None:
    truth = json.loads((synthetic_corpus / "speaker_traits.json").read_text())
    sessions = [s for e in truth["speakers"].values() for s in e["sessions"].values()]
    assert len(sessions) == 16
    assert len({(s["band"], round(s["snr_db"], 2), round(s["lowpass_hz"])) for s in sessions}) == 16
    realised = json.loads((synthetic_corpus / "utterance_traits.json").read_text())
    same_session = [r for r in realised.values() if r["session"] == "spk0001-s0"]
    assert len(same_session) == 3
    # a session shares its band limit but each recording perturbs level and noise
    assert len({r["channel"]["band"] for r in same_session}) == 1
    assert len({r["channel"]["snr_db"] for r in same_session}) == 3
