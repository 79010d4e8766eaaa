#!/usr/bin/env bash
# Image-domain non-contrastive SSL on scikit-learn's bundled 8x8 digits, on CPU.
#
#   stage 1: train BYOL, SimSiam, Barlow Twins and VICReg (small CNN), one folder each
#   stage 2: print one table: the four methods next to a random-init encoder and raw pixels
#   stage 3: the prediction-head study (Wen & Li 2022) on its synthetic feature model
#
# Stages 1-2 take about 2 minutes on two quiet CPU cores; stage 3 adds about 20 seconds.
# Every stage is idempotent: a finished run (its metrics.json) or table is not redone.
set -euo pipefail

stage=1              # first stage to run
stop_stage=2         # last stage to run (3 adds the predictor study)
exp_dir=exp/digits_ssl  # where runs and tables go
methods="byol simsiam barlow vicreg"  # methods to train (space-separated)
epochs=60            # training epochs per method
seed=0               # random seed of every run
num_threads=0        # torch CPU threads (0: torch default; 1 is faster on a busy machine)
study_seeds=0,1,2    # seeds of the predictor study
study_steps=2000     # SGD steps per predictor-study run
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="Train four non-contrastive SSL methods on sklearn digits and compare them."

# shellcheck source=/dev/null
. "$(dirname "$0")/../../../utils/parse_options.sh"

mkdir -p "$exp_dir"

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  for method in $methods; do
    if [ -f "$exp_dir/$method/metrics.json" ]; then
      echo "stage 1: $method already trained ($exp_dir/$method/metrics.json), skipping"
      continue
    fi
    echo "stage 1: training $method for $epochs epochs"
    start=$SECONDS
    dino-speech image train --method "$method" --dataset digits --epochs "$epochs" \
      --seed "$seed" --num-threads "$num_threads" --out-dir "$exp_dir/$method" --no-progress \
      > "$exp_dir/$method.log"
    echo "stage 1: $method done in $((SECONDS - start)) s"
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  runs=()
  for method in $methods; do
    runs+=("$exp_dir/$method")
  done
  # reading a few JSON files is instant, so the table is always rebuilt from the runs
  dino-speech image report "${runs[@]}" > "$exp_dir/results.md.tmp"
  mv "$exp_dir/results.md.tmp" "$exp_dir/results.md"
  echo "stage 2: results ($exp_dir/results.md)"
  cat "$exp_dir/results.md"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  if [ ! -s "$exp_dir/predictor_study.md" ]; then
    echo "stage 3: predictor study (seeds $study_seeds, $study_steps steps)"
    dino-speech image predictor-study --seeds "$study_seeds" --steps "$study_steps" \
      --num-threads "$num_threads" --no-progress --json-out "$exp_dir/predictor_study.json" \
      > "$exp_dir/predictor_study.md.tmp"
    mv "$exp_dir/predictor_study.md.tmp" "$exp_dir/predictor_study.md"
  fi
  echo "stage 3: predictor study ($exp_dir/predictor_study.md)"
  cat "$exp_dir/predictor_study.md"
fi
