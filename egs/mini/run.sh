#!/usr/bin/env bash
# The main job, on CPU and the built-in synthetic corpus (no download): learn speaker
# embeddings without labels with DINO, refine them with one round of pseudo-labeling, and
# measure them on speaker verification and emotion recognition.
#
#   stage 0: generate the synthetic corpus (dino-speech prepare synthetic)
#   stage 1: baseline: embed with the built-in logmel-stats model, score the test trials
#   stage 2: DINO training with configs/mini.yaml (time budget: --dino-minutes)
#   stage 3: embed with the DINO teacher, score the test trials (EER, minDCF)
#   stage 4: pseudo-labeling (cluster the embeddings, margin-softmax fine-tuning)
#   stage 5: embed with the pseudo-labeled model, score the test trials
#   stage 6: emotion probe (eval-emotion) on the embeddings of all utterances, train + test,
#            with speaker-independent folds (--groups utt2spk), for every model above
#   stage 7: print the results table and write it to EXP_DIR/results.md
#
# Embeddings cover every utterance (train + test); scoring uses the test trials.
# Run it from anywhere; relative paths are taken from the working directory:
#   egs/mini/run.sh                  # everything, five to eight minutes on 2 CPU cores
#   egs/mini/run.sh --stage 3        # resume from stage 3
# Every command skips work it has done with the same inputs and settings, so a rerun of a
# finished recipe only prints the table; delete an output (or EXP_DIR) to redo it.
# Configs: configs/mini.yaml (DINO) and configs/pseudo_label_mini.yaml.
set -euo pipefail

stage=0                 # first stage to run
stop_stage=7            # last stage to run
data_dir=data/synthetic # where the synthetic corpus is generated
exp_dir=exp/mini        # where models, embeddings, scores and results.md go
nj=2                    # parallel jobs: corpus generation processes, audio reader workers
device=cpu              # cpu, cuda, or auto (CUDA when available)
speakers=40             # corpus: number of speakers (split into train and test)
utts_per_speaker=20     # corpus: utterances per speaker
duration_range=2,6      # corpus: utterance length range in seconds, MIN,MAX
test_speakers=""        # corpus: speakers held out for testing (empty: a quarter)
seed=0                  # corpus seed
dino_config=""          # DINO config (empty: configs/mini.yaml of this repository)
dino_minutes=5          # DINO training time budget in minutes (train.max_minutes)
dino_overrides=""       # extra KEY=VALUE overrides of the DINO config, space-separated
pl_config=""            # pseudo-label config (empty: configs/pseudo_label_mini.yaml)
pl_rounds=1             # pseudo-labeling rounds
pl_minutes=""           # time budget of each fine-tuning stage in minutes (empty: none)
pl_overrides=""         # extra KEY=VALUE overrides of the pseudo-label config, space-separated
classifier=logreg       # emotion probe: logreg or mlp
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="The mini recipe: DINO, pseudo-labeling, speaker verification and emotion
recognition on the built-in synthetic corpus, on CPU (stages: see the top of $0)."

# shellcheck source-path=SCRIPTDIR source=../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../utils/stage_lib.sh"

check_arguments "$@"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dino_config=${dino_config:-$repo/configs/mini.yaml}
pl_config=${pl_config:-$repo/configs/pseudo_label_mini.yaml}
read -r -a dino_extra <<< "$dino_overrides"
read -r -a pl_extra <<< "$pl_overrides"
absolute_dirs data_dir exp_dir
eval_dir=$exp_dir/eval
trials=$data_dir/test/trials
# embeddings cover every utterance (train + test), for the emotion probe
wav_lists=(--wav-scp "$data_dir/train/wav.scp" --wav-scp "$data_dir/test/wav.scp")

if run_stage 0; then
  echo "stage 0: synthetic corpus in $data_dir ($speakers speakers x $utts_per_speaker utts)"
  dino-speech prepare synthetic --out-dir "$data_dir" --speakers "$speakers" \
    --utts-per-speaker "$utts_per_speaker" --duration-range "$duration_range" \
    ${test_speakers:+--test-speakers "$test_speakers"} --seed "$seed" --num-jobs "$nj"
fi

if run_stage 1; then
  echo "stage 1: baseline: mean + std of 40 log-Mel bands (built-in model logmel-stats)"
  dino-speech embed --model logmel-stats "${wav_lists[@]}" --out-dir "$eval_dir/baseline" \
    --device "$device" --num-workers "$nj" "${progress[@]}"
  dino-speech score --trials "$trials" --embeddings "$eval_dir/baseline/xvector.scp" \
    --det-plot "$eval_dir/baseline/score.png" --json-out "$eval_dir/baseline/score.json"
fi

if run_stage 2; then
  echo "stage 2: DINO training ($dino_config, at most $dino_minutes min) -> $exp_dir/dino"
  dino-speech train dino --config "$dino_config" --exp-dir "$exp_dir/dino" --device "$device" \
    --max-minutes "$dino_minutes" ${quiet[@]+"${quiet[@]}"} \
    "data.train_cuts=$data_dir/synthetic_cuts_train.jsonl.gz" ${dino_extra[@]+"${dino_extra[@]}"}
fi

if run_stage 3; then
  echo "stage 3: DINO teacher embeddings and scores"
  dino-speech embed --model "$exp_dir/dino" "${wav_lists[@]}" --out-dir "$eval_dir/dino" \
    --device "$device" --num-workers "$nj" "${progress[@]}"
  dino-speech score --trials "$trials" --embeddings "$eval_dir/dino/xvector.scp" \
    --det-plot "$eval_dir/dino/score.png" --json-out "$eval_dir/dino/score.json"
fi

if run_stage 4; then
  echo "stage 4: $pl_rounds pseudo-labeling round(s) ($pl_config) -> $exp_dir/pl"
  dino-speech pseudo-label run --config "$pl_config" --init "$exp_dir/dino" \
    --exp-dir "$exp_dir/pl" --rounds "$pl_rounds" --device "$device" \
    ${pl_minutes:+--max-minutes "$pl_minutes"} ${quiet[@]+"${quiet[@]}"} \
    "data.train_cuts=$data_dir/synthetic_cuts_train.jsonl.gz" \
    "eval.cuts=$data_dir/synthetic_cuts_test.jsonl.gz" "eval.trials=$trials" \
    ${pl_extra[@]+"${pl_extra[@]}"}
fi

if run_stage 5; then
  echo "stage 5: pseudo-labeled model embeddings and scores"
  dino-speech embed --model "$exp_dir/pl" "${wav_lists[@]}" --out-dir "$eval_dir/pl" \
    --device "$device" --num-workers "$nj" "${progress[@]}"
  dino-speech score --trials "$trials" --embeddings "$eval_dir/pl/xvector.scp" \
    --det-plot "$eval_dir/pl/score.png" --json-out "$eval_dir/pl/score.json"
fi

if run_stage 6; then
  echo "stage 6: emotion probe, speaker-independent folds"
  for name in baseline dino pl; do
    [ -f "$eval_dir/$name/xvector.scp" ] || continue
    echo "  $name:"
    dino-speech eval-emotion --embeddings "$eval_dir/$name/xvector.scp" \
      --labels "$data_dir/train/utt2emo" --labels "$data_dir/test/utt2emo" \
      --groups "$data_dir/train/utt2spk" --groups "$data_dir/test/utt2spk" \
      --classifier "$classifier" \
      --confusion-plot "$eval_dir/$name/confusion.png" --json-out "$eval_dir/$name/emotion.json"
  done
fi

if run_stage 7; then
  echo "stage 7: results ($exp_dir/results.md)"
  note="Synthetic corpus: $speakers speakers x $utts_per_speaker utterances of"
  note+=" ${duration_range/,/-} s (seed $seed), {trials} test trials, cosine scoring."
  note+=" Emotion: $classifier probe on all utterances, speaker-independent folds."
  dino-speech report --columns eer,min_dcf_0.01,min_dcf_0.05,emotion_f1 \
    --row "log-Mel statistics (logmel-stats, no training)" "$eval_dir/baseline" \
    --row "DINO teacher ({model}, {steps}/{planned_steps} steps)" "$eval_dir/dino" \
    --row "DINO + $pl_rounds pseudo-labeling round(s)" "$eval_dir/pl" \
    --note "$note" \
    --machine "$device" --time corpus "$data_dir/corpus.json" \
    --time "DINO training" "$exp_dir/dino/summary.json" \
    --time pseudo-labeling "$exp_dir/pl/summary.json" --out "$exp_dir/results.md"
fi
