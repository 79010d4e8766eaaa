"""`dino-speech eer` on 10^6 trials: the line-by-line reader vs the vectorised one, and the
whole process.

Writes a Kaldi trial list and a score file of N trials (VoxCeleb-like path ids, scores in
trial order as `dino-speech score` writes them) into --work-dir, then

1. in this process, best of --repeats: reading both files and matching scores to trials with
   the line reader (`read_trials` + `read_scores` + `scores_for_trials`, the way before) and
   with `read_scored_trials` (ours) in one process and as it runs by default (a forked child
   reads the first half of the lines when two cores are free); all must give the same
   arrays; prints the ratios;
2. whole processes, --repeats each, alternating: `python -c` running the line reader and the
   metrics (the old command's work, same start-up) and `python -m dino_speech.cli.main eer`;
   prints min / median / max wall seconds of each and the ratio of medians.

    python bench/eer_cli.py [--trials 1000000] [--repeats 5] [--work-dir /tmp/eer_bench]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dino_speech.eval.trials import read_scored_trials, read_scores, read_trials, scores_for_trials

LINE_READER_PROCESS = """
import sys
from dino_speech.eval.trials import read_scores, read_trials, scores_for_trials
from dino_speech.eval.verification import verification_metrics
t = read_trials(sys.argv[1])
e, s, v = read_scores(sys.argv[2])
print(verification_metrics(scores_for_trials(t, e, s, v, sys.argv[2]), t.labels, (0.01, 0.05)))
"""


def write_files(work: Path, n: int, seed: int) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    trials, scores = work / f"trials_{n}", work / f"scores_{n}"
    if trials.is_file() and scores.is_file():
        return trials, scores
    rng = np.random.default_rng(seed)
    spk_a, spk_b = rng.integers(0, 40_000, n), rng.integers(0, 40_000, n)
    labels = rng.random(n) < 0.1
    values = (rng.normal(0.1, 0.12, n) + 0.45 * labels).astype(np.float32)
    word = np.where(labels, "target", "nontarget")
    pairs = [
        f"id{a:05d}/v{a % 97:03d}/00001.wav id{b:05d}/v{b % 89:03d}/00002.wav"
        for a, b in zip(spk_a.tolist(), spk_b.tolist(), strict=True)
    ]
    trials.write_text("".join(f"{p} {w}\n" for p, w in zip(pairs, word.tolist(), strict=True)))
    values_text = (f"{p} {s:.6f}\n" for p, s in zip(pairs, values.tolist(), strict=True))
    scores.write_text("".join(values_text))
    return trials, scores


def line_reader(trials: Path, scores: Path) -> tuple[np.ndarray, np.ndarray]:
    trial_list = read_trials(trials)
    enroll, test, values = read_scores(scores)
    return scores_for_trials(trial_list, enroll, test, values, str(scores)), trial_list.labels


def best_time(fn, repeats: int):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/eer_bench"))
    args = parser.parse_args()

    trials, scores = write_files(args.work_dir, args.trials, args.seed)
    mib = (trials.stat().st_size + scores.stat().st_size) / 2**20
    print(f"{args.trials} trials, {mib:.0f} MiB of text in {args.work_dir}")

    t_line, (s_line, l_line) = best_time(lambda: line_reader(trials, scores), args.repeats)
    t_one, (s_one, l_one) = best_time(
        lambda: read_scored_trials(trials, scores, split_min_bytes=1 << 62), args.repeats
    )
    t_fast, (s_fast, l_fast) = best_time(lambda: read_scored_trials(trials, scores), args.repeats)
    for got_scores, got_labels in [(s_one, l_one), (s_fast, l_fast)]:
        np.testing.assert_array_equal(s_line, got_scores)
        np.testing.assert_array_equal(l_line, got_labels)
    print(f"read + match, best of {args.repeats} (same arrays):")
    print(f"  line reader:                    {t_line:6.3f} s")
    print(f"  read_scored_trials, one process {t_one:6.3f} s   speed-up {t_line / t_one:.2f}x")
    print(f"  read_scored_trials (split read) {t_fast:6.3f} s   speed-up {t_line / t_fast:.2f}x")

    old = [sys.executable, "-c", LINE_READER_PROCESS, str(trials), str(scores)]
    new = [sys.executable, "-m", "dino_speech.cli.main", "eer", "--trials", str(trials)]
    new += ["--scores", str(scores)]
    times: dict[str, list[float]] = {"line reader process": [], "dino-speech eer": []}
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        times["line reader process"].append(wall(old))
        times["dino-speech eer"].append(wall(new))
    print(f"whole process, {args.repeats} runs each (min / median / max s):")
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"  {name:20s} {min(values):.2f} / {median[name]:.2f} / {max(values):.2f}")
    ratio = median["line reader process"] / median["dino-speech eer"]
    print(f"  speed-up (medians) {ratio:.2f}x")


if __name__ == "__main__":
    main()
