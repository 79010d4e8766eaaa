"""The vectorised reader of trial lists and score files must give what the line reader gives.

Every file here is read both ways: ``read_scored_trials`` (fast path where the file allows it)
and the line-by-line ``_records`` path reached through ``read_trials`` / ``read_scores`` on a
copy with a comment line prepended (a ``#`` always takes the line reader).
"""

from __future__ import annotations

import numpy as np
import pytest

from dino_speech.errors import DataError
from dino_speech.eval import trials as trials_module
from dino_speech.eval.trials import (
    _file_bytes,
    _line_cuts,
    _score_columns,
    _three_columns,
    _trial_columns,
    read_scored_trials,
    read_scores,
    read_trials,
    scores_for_trials,
)


def _line_reader(tmp_path, trials_text: str, scores_text: str):
    (tmp_path / "t_slow").write_text("# line reader\n" + trials_text)
    (tmp_path / "s_slow").write_text("# line reader\n" + scores_text)
    trials = read_trials(tmp_path / "t_slow")
    enroll, test, values = read_scores(tmp_path / "s_slow")
    return scores_for_trials(trials, enroll, test, values, "s"), trials.labels


def _both(tmp_path, trials_text: str, scores_text: str):
    (tmp_path / "t").write_text(trials_text)
    (tmp_path / "s").write_text(scores_text)
    fast = read_scored_trials(tmp_path / "t", tmp_path / "s")
    slow = _line_reader(tmp_path, trials_text, scores_text)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    return fast


def _random_files(seed: int, n: int, voxceleb: bool):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 50, n), rng.integers(0, 50, n)
    labels = rng.random(n) < 0.3
    scores = rng.normal(size=n) + labels
    word = {True: "target", False: "nontarget"}
    lines, score_lines = [], []
    for i, j, y, s in zip(a.tolist(), b.tolist(), labels.tolist(), scores.tolist(), strict=True):
        pair = f"id{i}/u.wav id{j}/v.wav" if voxceleb else f"u{i} v{j}"
        lines.append(f"{int(y)} {pair}\n" if voxceleb else f"{pair} {word[y]}\n")
        score_lines.append(f"{pair} {s!r}\n")
    return "".join(lines), "".join(score_lines), scores, labels


@pytest.mark.parametrize("voxceleb", [False, True])
def test_random_lists_in_both_forms_read_exactly(tmp_path, voxceleb):
    trials, scores_text, scores, labels = _random_files(0, 500, voxceleb)
    # pairs repeat (50 x 50 ids, 500 trials) with different scores: only the in-order path
    # may take them, so compare with the truth rather than the pair-joining line reader
    (tmp_path / "t").write_text(trials)
    (tmp_path / "s").write_text(scores_text)
    got_scores, got_labels = read_scored_trials(tmp_path / "t", tmp_path / "s")
    np.testing.assert_array_equal(got_scores, scores)  # repr round-trips float64 exactly
    np.testing.assert_array_equal(got_labels, labels)
    # the fast path was taken
    assert _three_columns(_file_bytes(tmp_path / "t", "trial list")) is not None


@pytest.mark.parametrize(
    "trials_text",
    [
        "a b target\nc d nontarget\n",
        "a b target\nc d nontarget",  # no final newline
        "a\tb target\nc d\tnontarget\n",  # tabs
        "a b target\r\nc d nontarget\r\n",  # CRLF: line reader
        "a  b target\n\nc d nontarget\n",  # double space, blank line: line reader
        "1 a b\n0 c d\n",  # VoxCeleb form
        "a b target\n0 c d\n",  # both forms mixed: line reader
    ],
)
def test_every_layout_gives_the_line_readers_answer(tmp_path, trials_text):
    scores, labels = _both(tmp_path, trials_text, "a b 0.5\nc d -1.25\n")
    assert scores.tolist() == [0.5, -1.25] and labels.tolist() == [True, False]


def test_scores_in_another_order_are_joined_by_pair(tmp_path):
    scores, labels = _both(tmp_path, "a b target\nc d nontarget\n", "c d 2\nx y 9\na b 1\n")
    assert scores.tolist() == [1.0, 2.0] and labels.tolist() == [True, False]


def test_fields_that_add_up_but_lines_that_do_not_are_refused(tmp_path):
    # 2 + 4 fields: every third field still looks like a label and a score, so only the
    # check of where the newlines fall tells these files from well-formed ones
    (tmp_path / "t").write_text("a b\ntarget c d nontarget\n")
    (tmp_path / "s").write_text("a b\n1.0 c d 2.0\n")
    assert _three_columns(_file_bytes(tmp_path / "t", "trial list")) is None
    assert _three_columns(_file_bytes(tmp_path / "s", "score file")) is None
    with pytest.raises(DataError, match="t:1: expected 'UTT1 UTT2 target"):
        read_scored_trials(tmp_path / "t", tmp_path / "s")


def test_bad_files_raise_what_the_line_reader_raises(tmp_path):
    (tmp_path / "t").write_text("a b target\nc d nontarget\n")
    (tmp_path / "s").write_text("a b 0.5\nc d high\n")
    with pytest.raises(DataError, match="s:2: expected 'UTT1 UTT2 SCORE'"):
        read_scored_trials(tmp_path / "t", tmp_path / "s")
    (tmp_path / "s").write_text("a b 0.5\nc e 1\n")
    with pytest.raises(DataError, match="1 of 2 trials have no score .*first: c d"):
        read_scored_trials(tmp_path / "t", tmp_path / "s")
    (tmp_path / "t").write_text("a b target\nc d maybe\n")
    with pytest.raises(DataError, match="t:2: expected"):
        read_scored_trials(tmp_path / "t", tmp_path / "s")
    with pytest.raises(DataError, match="score file not found"):
        read_scored_trials(tmp_path / "t", tmp_path / "nope")


def test_control_bytes_inside_a_field_take_the_line_reader(tmp_path):
    (tmp_path / "t").write_bytes(b"a\x01x b target\nc d nontarget\n")
    assert _three_columns(_file_bytes(tmp_path / "t", "trial list")) is None
    trials = read_trials(tmp_path / "t")
    assert trials.enroll == ["a\x01x", "c"]


def test_column_parsers_reject_what_they_cannot_read(tmp_path):
    (tmp_path / "t").write_text("a b target\nc d 1\n")
    assert _trial_columns(_three_columns(_file_bytes(tmp_path / "t", "trial list"))) is None
    (tmp_path / "s").write_text("a b 0.5\nc d x\n")
    assert _score_columns(_three_columns(_file_bytes(tmp_path / "s", "score file"))) is None


@pytest.fixture
def two_cores(monkeypatch):
    """The split read on any machine, with the line reader made to fail the test if reached."""
    monkeypatch.setattr(trials_module, "_free_cores", lambda: 2)

    def no_line_reader(path):
        raise AssertionError(f"the line reader was reached for {path}")

    monkeypatch.setattr(trials_module, "read_trials", no_line_reader)


@pytest.mark.parametrize("voxceleb", [False, True])
def test_a_forked_child_reads_the_first_half_exactly(tmp_path, two_cores, voxceleb):
    trials, scores_text, scores, labels = _random_files(3, 2001, voxceleb)
    (tmp_path / "t").write_text(trials)
    (tmp_path / "s").write_text(scores_text)
    got_scores, got_labels = read_scored_trials(tmp_path / "t", tmp_path / "s", split_min_bytes=0)
    np.testing.assert_array_equal(got_scores, scores)
    np.testing.assert_array_equal(got_labels, labels)


def test_halves_that_do_not_match_take_the_line_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(trials_module, "_free_cores", lambda: 2)
    pairs = [f"u{i} v{i}" for i in range(400)]
    (tmp_path / "t").write_text(
        "".join(f"{p} {'target' if i % 3 else 'nontarget'}\n" for i, p in enumerate(pairs))
    )
    # out of order in the second half only: the child's half matches, this process's not
    order = list(range(300)) + list(range(399, 299, -1))
    (tmp_path / "s").write_text("".join(f"{pairs[i]} {i}\n" for i in order))
    got, labels = read_scored_trials(tmp_path / "t", tmp_path / "s", split_min_bytes=0)
    assert got.tolist() == list(range(400)) and labels.sum() == 266
    (tmp_path / "t").write_text("a b target\nc d nontarget\ne f target\ng h nontarget\n")
    for bad_line, text in [
        (1, "a b high\nc d 1\ne f 2\ng h 3\n"),  # in the child's half
        (4, "a b 0\nc d 1\ne f 2\ng h high\n"),  # in this process's half
    ]:
        (tmp_path / "s").write_text(text)
        with pytest.raises(DataError, match=f"s:{bad_line}: expected 'UTT1 UTT2 SCORE'"):
            read_scored_trials(tmp_path / "t", tmp_path / "s", split_min_bytes=0)
    (tmp_path / "s").write_text("e f 2\ng h 3\na b 0\nc d 1\n")  # the halves swapped
    got, labels = read_scored_trials(tmp_path / "t", tmp_path / "s", split_min_bytes=0)
    assert got.tolist() == [0.0, 1.0, 2.0, 3.0] and labels.tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    ("trial_line", "score_line"),
    [
        (lambda i: f"u{i} v{i} target\n", lambda i: f"u{i} v{i} {i / 7!r}\n"),
        # long score lines first, short ones after: the proportional guess is far off
        (
            lambda i: f"u{i} v{i} target\n",
            lambda i: f"u{i} v{i} {'9' * (60 if i < 15000 else 1)}\n",
        ),
    ],
)
@pytest.mark.parametrize("walk", [10_000, 0])  # step line by line, or find all newlines
def test_both_texts_are_cut_after_the_same_line(monkeypatch, trial_line, score_line, walk):
    monkeypatch.setattr(trials_module, "_MAX_LINE_WALK", walk)
    n = 30_000
    data_t = "".join(map(trial_line, range(n))).encode()
    data_s = "".join(map(score_line, range(n))).encode()
    cut_t, cut_s, first = _line_cuts(data_t, data_s)
    assert data_t[:cut_t].count(b"\n") == data_s[:cut_s].count(b"\n") == first
    assert data_t[cut_t - 1 : cut_t] == data_s[cut_s - 1 : cut_s] == b"\n"
    assert abs(first - n / 2) < n / 4
    assert _line_cuts(b"a b target\n", b"a b 1\n") is None  # one line: nothing to cut
