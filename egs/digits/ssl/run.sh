#!/usr/bin/env bash
# Image-domain non-contrastive SSL on scikit-learn's bundled 8x8 digits, on CPU.
#
#   stage 1: train BYOL, SimSiam, Barlow Twins and VICReg (small CNN), one folder each
#   stage 2: print one table: the four methods next to a random-init encoder and raw pixels
#   stage 3: the prediction-head study (Wen & Li 2022) on its synthetic feature model
#
# Stages 1-2 take about 2 minutes on two quiet CPU cores; stage 3 adds about 20 seconds.
# `image train` does nothing for a method already trained with the same settings (its
# metrics.json), so a rerun only prints the table; stage 3 runs the study again each time.
# Settings: the options below, as shortcuts of `dino-speech image train` (no config YAML;
# configs/image_simsiam.yaml shows the same keys as a file).
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

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

check_arguments "$@"
absolute_dirs exp_dir

if run_stage 1; then
  for method in $methods; do
    echo "stage 1: $method, $epochs epochs -> $exp_dir/$method"
    dino-speech image train --method "$method" --dataset digits --epochs "$epochs" \
      --seed "$seed" --num-threads "$num_threads" --out-dir "$exp_dir/$method" \
      "${progress[@]}"
  done
fi

if run_stage 2; then
  echo "stage 2: results ($exp_dir/results.md)"
  runs=()
  for method in $methods; do
    runs+=("$exp_dir/$method")
  done
  dino-speech image report "${runs[@]}" | tee "$exp_dir/results.md"
fi

if run_stage 3; then
  echo "stage 3: predictor study (seeds $study_seeds, $study_steps steps)"
  dino-speech image predictor-study --seeds "$study_seeds" --steps "$study_steps" \
    --num-threads "$num_threads" "${progress[@]}" \
    --json-out "$exp_dir/predictor_study.json" | tee "$exp_dir/predictor_study.md"
fi
