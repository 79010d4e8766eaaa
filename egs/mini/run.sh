#!/usr/bin/env bash
# The main job, on CPU and the built-in synthetic corpus (no download): learn speaker
# embeddings without labels with DINO, refine them with one round of pseudo-labeling, and
# measure them on speaker verification and emotion recognition.
#
#   stage 0: generate the synthetic corpus (dino-speech prepare synthetic)
#   stage 1: baseline: embed with the built-in logmel-stats model, score the test trials
#   stage 2: DINO training with recipes/mini.yaml (time budget: --dino-minutes)
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
# Every stage skips work whose output exists and is newer than its inputs, so a rerun of a
# finished recipe only prints the table; delete an output (or EXP_DIR) to redo it.
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
dino_config=""          # DINO recipe (empty: recipes/mini.yaml of this repository)
dino_minutes=5          # DINO training time budget in minutes (train.max_minutes)
dino_overrides=""       # extra KEY=VALUE overrides of the DINO recipe, space-separated
pl_config=""            # pseudo-label recipe (empty: recipes/pseudo_label_mini.yaml)
pl_rounds=1             # pseudo-labeling rounds
pl_minutes=""           # time budget of each fine-tuning stage in minutes (empty: none)
pl_overrides=""         # extra KEY=VALUE overrides of the pseudo-label recipe, space-separated
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
dino_config=${dino_config:-$repo/recipes/mini.yaml}
pl_config=${pl_config:-$repo/recipes/pseudo_label_mini.yaml}
read -r -a dino_extra <<< "$dino_overrides"
read -r -a pl_extra <<< "$pl_overrides"
absolute_dirs data_dir exp_dir
eval_dir=$exp_dir/eval

# embed_and_score NAME MODEL: embeddings of every utterance (train + test) by MODEL in
# EVAL_DIR/NAME, and cosine scores of the test trials (EVAL_DIR/NAME/score.*)
embed_and_score() {
  local dir=$eval_dir/$1
  mkdir -p "$dir"
  cat "$data_dir/train/wav.scp" "$data_dir/test/wav.scp" | update_file "$dir/wav.scp"
  embed_once "$dir" "$2" "$dir/wav.scp"
  score_once "$dir/score" "$data_dir/test/trials" "$dir/xvector.scp"
}

# emotion NAME: emotion probe on EVAL_DIR/NAME's embeddings, speaker-independent folds
emotion() {
  local dir=$eval_dir/$1
  if [ ! -f "$dir/xvector.scp" ]; then
    echo "  $1: no embeddings (its stages have not run); skipping"
    return
  fi
  echo "  $1:"
  sort "$data_dir/train/utt2emo" "$data_dir/test/utt2emo" | update_file "$dir/utt2emo"
  sort "$data_dir/train/utt2spk" "$data_dir/test/utt2spk" | update_file "$dir/utt2spk"
  emotion_probe "$dir" --embeddings "$dir/xvector.scp" --labels "$dir/utt2emo" \
    --groups "$dir/utt2spk" --classifier "$classifier"
}

if run_stage 0; then
  echo "stage 0: synthetic corpus in $data_dir ($speakers speakers x $utts_per_speaker utts)"
  prepare=(dino-speech prepare synthetic --out-dir "$data_dir" --speakers "$speakers"
    --utts-per-speaker "$utts_per_speaker" --duration-range "$duration_range"
    ${test_speakers:+--test-speakers "$test_speakers"} --seed "$seed" --num-jobs "$nj")
  # the command itself checks an existing corpus (same settings, all files) and then does
  # nothing; only a real generation is timed
  if grep -qs '"complete": true' "$data_dir/corpus.json"; then
    "${prepare[@]}" | indent
  else
    timed prepare "${prepare[@]}" | indent
  fi
fi

if run_stage 1; then
  echo "stage 1: baseline: mean + std of 40 log-Mel bands (built-in model logmel-stats)"
  embed_and_score baseline logmel-stats
fi

if run_stage 2; then
  if [ -f "$exp_dir/dino/.done" ]; then
    echo "stage 2: DINO training done ($exp_dir/dino/embedder.pt); skipping"
  else
    echo "stage 2: DINO training ($dino_config, at most $dino_minutes min) -> $exp_dir/dino"
    timed dino dino-speech train dino --config "$dino_config" --exp-dir "$exp_dir/dino" \
      --device "$device" --max-minutes "$dino_minutes" ${quiet[@]+"${quiet[@]}"} \
      "data.train_cuts=$data_dir/synthetic_cuts_train.jsonl.gz" \
      ${dino_extra[@]+"${dino_extra[@]}"}
    touch "$exp_dir/dino/.done"
  fi
fi

if run_stage 3; then
  echo "stage 3: DINO teacher embeddings and scores"
  embed_and_score dino "$exp_dir/dino"
fi

if run_stage 4; then
  if up_to_date "$exp_dir/pl/.done" "$exp_dir/dino/embedder.pt"; then
    echo "stage 4: pseudo-labeling done ($exp_dir/pl/embedder.pt); skipping"
  else
    echo "stage 4: $pl_rounds pseudo-labeling round(s) ($pl_config) -> $exp_dir/pl"
    timed pseudo_label dino-speech pseudo-label run --config "$pl_config" \
      --init "$exp_dir/dino" --exp-dir "$exp_dir/pl" --rounds "$pl_rounds" --device "$device" \
      ${pl_minutes:+--max-minutes "$pl_minutes"} ${quiet[@]+"${quiet[@]}"} \
      "data.train_cuts=$data_dir/synthetic_cuts_train.jsonl.gz" \
      "eval.cuts=$data_dir/synthetic_cuts_test.jsonl.gz" "eval.trials=$data_dir/test/trials" \
      ${pl_extra[@]+"${pl_extra[@]}"}
    touch "$exp_dir/pl/.done"
  fi
fi

if run_stage 5; then
  echo "stage 5: pseudo-labeled model embeddings and scores"
  embed_and_score pl "$exp_dir/pl"
fi

if run_stage 6; then
  echo "stage 6: emotion probe, speaker-independent folds"
  for name in baseline dino pl; do
    emotion "$name"
  done
fi

if run_stage 7; then
  echo "stage 7: results ($exp_dir/results.md)"
  # row NAME LABEL: one table row from EVAL_DIR/NAME/{score,emotion}.json (none if neither)
  row() {
    local dir=$eval_dir/$1 eer f1
    eer=$(json_number "$dir/score.json" eer)
    f1=$(json_number "$dir/emotion.json" micro_f1)
    [ -n "$eer$f1" ] || return 0
    echo "| $2 | $(fmt %.2f "$eer") | $(fmt %.3f "$(json_number "$dir/score.json" 0.01)")" \
      "| $(fmt %.3f "$(json_number "$dir/score.json" 0.05)") | $(fmt %.1f "$f1") |"
  }
  steps=$(grep -o 'DINO training in .*: [0-9]*/[0-9]* steps' "$exp_dir/dino/train.log" \
    2> /dev/null | tail -n 1 | grep -o '[0-9]*/[0-9]* steps' || true)
  model=$(grep -m 1 '^  name:' "$exp_dir/dino/config.yaml" 2> /dev/null | sed 's/.*: *//' || true)
  trials=$(grep -c . "$data_dir/test/trials" 2> /dev/null || echo "?")
  {
    echo "| system | EER % | minDCF (p=0.01) | minDCF (p=0.05) | emotion micro-F1 % |"
    echo "|---|---|---|---|---|"
    row baseline "log-Mel statistics (logmel-stats, no training)"
    row dino "DINO teacher (${model:-?}, ${steps:-? steps})"
    row pl "DINO + $pl_rounds pseudo-labeling round(s)"
    echo
    echo "Synthetic corpus: $speakers speakers x $utts_per_speaker utterances of" \
      "${duration_range/,/-} s (seed $seed), $trials test trials, cosine scoring. Emotion:" \
      "$classifier probe on all utterances, speaker-independent folds."
    echo "Machine: $(machine_info "$device"), device $device. Wall time: corpus" \
      "$(stage_time prepare), DINO training $(stage_time dino), pseudo-labeling" \
      "$(stage_time pseudo_label)."
  } | write_results "$exp_dir/results.md"
fi
