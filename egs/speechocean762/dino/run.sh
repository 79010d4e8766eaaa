#!/usr/bin/env bash
# DINO and iterative pseudo-labeling on real read speech, on CPU, label-free: speechocean762's
# 125 training speakers (or any folder of audio with --corpus-dir and --speaker-regex), split
# by speaker into a training set the models learn from without labels and dev speakers that
# only score them.
#
#   stage 0: manifests: dino-speech prepare audio, --dev-speakers held out, dev trials
#   stage 1: baseline: the built-in logmel-stats model (mean + std of 40 log-Mel bands)
#   stage 2: the DINO encoder untrained (random init, seed of the DINO recipe)
#   stage 3: DINO training on the training speakers' audio, no labels (--dino-minutes)
#   stage 4: embed the dev speakers with the DINO teacher, its embeddings and the pooled
#            statistics its last layer reads (--layer pooled); cosine scoring (EER, minDCF)
#            and, with --asnorm true, AS-norm scoring against a cohort of the training
#            utterances embedded by the same model; with --whiten true, cosine scoring after
#            whitening learnt from those same embeddings (unlabelled; every model's rows get
#            all three)
#   stage 5: --pl-rounds pseudo-labeling rounds (cluster the training embeddings, margin
#            softmax on the clusters), each round's model embedded and scored on dev
#   stage 6: only with --ceiling true: the supervised ceiling, the same encoder trained from
#            scratch with the margin softmax on the TRUE training speakers, for the same time
#            as DINO (--ceiling-minutes), embedded and scored on dev
#   stage 7: print the results table and write it to EXP_DIR/results.md
#
#   egs/speechocean762/dino/run.sh --corpus-dir /corpora/speechocean762_train
#   egs/speechocean762/dino/run.sh --corpus-dir DIR --ceiling true    # + the ceiling row
#   egs/speechocean762/dino/run.sh --corpus-dir my_audio --speaker-regex '^(?P<speaker>[^_]+)_'
# Every command skips work it has done with the same inputs and settings, so a rerun only
# prints the table; --stage N resumes at stage N. Recipes (YAML): configs/speechocean_dino.yaml,
# configs/speechocean_pl.yaml, configs/speechocean_ceiling.yaml.
set -euo pipefail

stage=0                 # first stage to run
stop_stage=7            # last stage to run
corpus_dir=""           # folder of audio files, searched recursively (required for stage 0)
speaker_regex='(?P<speaker>[^/]+)/[^/]+$'  # speaker of a file: named group on its relative path
dev_speakers=25         # speakers held out for scoring (the rest train, without labels)
data_dir=data/speechocean762  # where the manifests, Kaldi lists and dev trials go
exp_dir=exp/speechocean762    # where models, embeddings, scores and results.md go
nj=2                    # parallel jobs: header reading, audio reader workers
device=cpu              # cpu, cuda, or auto (CUDA when available)
seed=0                  # speaker split and non-target trial sampling
dino_config=""          # DINO config (empty: configs/speechocean_dino.yaml of this repository)
dino_minutes=20         # DINO training time budget in minutes (the schedule ends with it)
dino_overrides=""       # extra KEY=VALUE overrides of the DINO config, space-separated
pl_config=""            # pseudo-label config (empty: configs/speechocean_pl.yaml)
pl_rounds=2             # pseudo-labeling rounds
pl_minutes=""           # time budget of each fine-tuning stage in minutes (empty: the recipe's)
pl_overrides=""         # extra KEY=VALUE overrides of the pseudo-label config, space-separated
ceiling=false           # true: also train the supervised ceiling (stage 6)
asnorm=true             # true: also score with AS-norm, the training utterances as cohort
asnorm_top_n=300        # cohort scores AS-norm averages per utterance
whiten=true             # true: also score after whitening learnt from the training utterances
ceiling_config=""       # its config (empty: configs/speechocean_ceiling.yaml)
ceiling_minutes=""      # its time budget in minutes (empty: --dino-minutes)
ceiling_overrides=""    # extra KEY=VALUE overrides of the ceiling config, space-separated
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="DINO + pseudo-labeling on real speech, label-free, scored on held-out speakers
(stages: see the top of $0)."

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

check_arguments "$@"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
dino_config=${dino_config:-$repo/configs/speechocean_dino.yaml}
pl_config=${pl_config:-$repo/configs/speechocean_pl.yaml}
ceiling_config=${ceiling_config:-$repo/configs/speechocean_ceiling.yaml}
ceiling_minutes=${ceiling_minutes:-$dino_minutes}
read -r -a dino_extra <<< "$dino_overrides"
read -r -a pl_extra <<< "$pl_overrides"
read -r -a ceiling_extra <<< "$ceiling_overrides"
for flag in ceiling asnorm whiten; do
  case ${!flag} in
    true | false) ;;
    *)
      echo "$0: --$flag must be true or false, got '${!flag}'" >&2
      exit 2
      ;;
  esac
done
absolute_dirs data_dir exp_dir
eval_dir=$exp_dir/eval
train_cuts=$data_dir/audio_cuts_train.jsonl.gz
trials=$data_dir/dev/trials

# score_dev NAME MODEL [LAYER]: embed the dev speakers with MODEL (at LAYER: embedding, the
# default, or pooled) into EVAL_DIR/NAME and score the dev trials (score.json). With --asnorm
# true or --whiten true also embed the training utterances (EVAL_DIR/NAME/cohort): the AS-norm
# cohort (asnorm.json), and the unlabelled set the whitening is learnt from (whitened.json)
score_dev() {
  local dir=$eval_dir/$1 layer=(--layer "${3:-embedding}")
  dino-speech embed --model "$2" --wav-scp "$data_dir/dev/wav.scp" --out-dir "$dir" \
    --device "$device" --num-workers "$nj" "${layer[@]}" "${progress[@]}"
  dino-speech score --trials "$trials" --embeddings "$dir/xvector.scp" \
    --det-plot "$dir/score.png" --json-out "$dir/score.json"
  if [ "$asnorm" = true ] || [ "$whiten" = true ]; then
    dino-speech embed --model "$2" --cuts "$train_cuts" --out-dir "$dir/cohort" \
      --device "$device" --num-workers "$nj" "${layer[@]}" "${progress[@]}"
  fi
  if [ "$asnorm" = true ]; then
    dino-speech score --trials "$trials" --embeddings "$dir/xvector.scp" --norm asnorm \
      --cohort "$dir/cohort/xvector.scp" --top-n "$asnorm_top_n" --json-out "$dir/asnorm.json"
  fi
  if [ "$whiten" = true ]; then
    dino-speech score --trials "$trials" --embeddings "$dir/xvector.scp" \
      --whiten-from "$dir/cohort/xvector.scp" --json-out "$dir/whitened.json"
  fi
}

# round_model DIR: the model a pseudo-labeling round ended with: its full fine-tuning stage,
# or its frozen one when the recipe has no full stage (finetune.full_epochs=0)
round_model() {
  if [ -f "$1/ft_full/embedder.pt" ]; then echo "$1/ft_full"; else echo "$1/ft_frozen"; fi
}

if run_stage 0; then
  echo "stage 0: manifests of $corpus_dir in $data_dir ($dev_speakers dev speakers)"
  require --corpus-dir "$corpus_dir" "a folder of audio files; --stage 1 uses the manifests"
  dino-speech prepare audio --corpus-dir "$corpus_dir" --out-dir "$data_dir" \
    --speaker-regex "$speaker_regex" --dev-speakers "$dev_speakers" --seed "$seed" \
    --num-jobs "$nj"
fi

if run_stage 1; then
  echo "stage 1: baseline: mean + std of 40 log-Mel bands (built-in model logmel-stats)"
  score_dev baseline logmel-stats
fi

if run_stage 2; then
  echo "stage 2: the DINO encoder, untrained"
  dino-speech train untrained --config "$dino_config" --exp-dir "$exp_dir/untrained" \
    ${dino_extra[@]+"${dino_extra[@]}"}
  score_dev untrained "$exp_dir/untrained"
fi

if run_stage 3; then
  echo "stage 3: DINO training ($dino_config, $dino_minutes min) -> $exp_dir/dino"
  dino-speech train dino --config "$dino_config" --exp-dir "$exp_dir/dino" --device "$device" \
    --max-minutes "$dino_minutes" ${quiet[@]+"${quiet[@]}"} "data.train_cuts=$train_cuts" \
    ${dino_extra[@]+"${dino_extra[@]}"}
fi

if run_stage 4; then
  echo "stage 4: DINO teacher embeddings and scores of the dev speakers"
  score_dev dino "$exp_dir/dino"
  echo "  and its pooled statistics (the input of its last layer):"
  score_dev dino_pooled "$exp_dir/dino" pooled
fi

if run_stage 5; then
  echo "stage 5: $pl_rounds pseudo-labeling round(s) ($pl_config) -> $exp_dir/pl"
  dino-speech pseudo-label run --config "$pl_config" --init "$exp_dir/dino" \
    --exp-dir "$exp_dir/pl" --rounds "$pl_rounds" --device "$device" \
    ${pl_minutes:+--max-minutes "$pl_minutes"} ${quiet[@]+"${quiet[@]}"} \
    "data.train_cuts=$train_cuts" ${pl_extra[@]+"${pl_extra[@]}"}
  for ((r = 1; r <= pl_rounds; r++)); do
    echo "  round $r model:"
    score_dev "pl$r" "$(round_model "$exp_dir/pl/round$r")"
  done
fi

if run_stage 6 && [ "$ceiling" = true ]; then
  echo "stage 6: supervised ceiling: true speaker labels, from scratch, $ceiling_minutes min" \
    "($ceiling_config) -> $exp_dir/ceiling"
  dino-speech pseudo-label run --config "$ceiling_config" --init "$exp_dir/untrained" \
    --exp-dir "$exp_dir/ceiling" --rounds 1 --device "$device" \
    --max-minutes "$ceiling_minutes" ${quiet[@]+"${quiet[@]}"} "data.train_cuts=$train_cuts" \
    ${ceiling_extra[@]+"${ceiling_extra[@]}"}
  score_dev ceiling "$(round_model "$exp_dir/ceiling/round1")"
fi

if run_stage 7; then
  echo "stage 7: results ($exp_dir/results.md)"
  rows=(
    --row "log-Mel statistics (logmel-stats, no training)" "$eval_dir/baseline"
    --row "{model}, untrained" "$eval_dir/untrained"
    --row "DINO teacher ({model}, {steps} steps, no labels)" "$eval_dir/dino"
    --row "DINO teacher, pooled statistics (the input of its last layer)" "$eval_dir/dino_pooled"
  )
  for ((r = 1; r <= pl_rounds; r++)); do
    rows+=(--row "DINO + pseudo-labeling round $r" "$eval_dir/pl$r")
  done
  rows+=(--row "supervised ceiling (true labels, same encoder and time)" "$eval_dir/ceiling")
  note="Dev: $dev_speakers held-out speakers, {trials} trials ({targets} target), cosine"
  note+=" scoring; AS-norm: top $asnorm_top_n of a cohort of the training utterances,"
  note+=" embedded by each model; whitened: mean and Ledoit-Wolf covariance of those same"
  note+=" training embeddings. Training: the other speakers' audio, labels unused (except"
  note+=" the ceiling)."
  dino-speech report "${rows[@]}" \
    --columns eer,min_dcf_0.01,min_dcf_0.05,asnorm_eer,asnorm_min_dcf_0.01,whitened_eer,pseudo_labels \
    --note "$note" --machine "$device" --time prepare "$data_dir/.audio.prepared.json" \
    --time DINO "$exp_dir/dino/summary.json" --time pseudo-labeling "$exp_dir/pl/summary.json" \
    --time ceiling "$exp_dir/ceiling/summary.json" --out "$exp_dir/results.md"
fi
