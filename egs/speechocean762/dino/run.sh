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
#   stage 4: embed the dev speakers with the DINO teacher; cosine scoring (EER, minDCF)
#            and, with --asnorm true, AS-norm scoring against a cohort of the training
#            utterances embedded by the same model (unlabelled; every model's rows get both)
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
# Every stage skips work whose output is up to date, so a rerun only prints the table;
# --stage N resumes at stage N.
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
dino_config=""          # DINO recipe (empty: recipes/speechocean_dino.yaml of this repository)
dino_minutes=20         # DINO training time budget in minutes (the schedule ends with it)
dino_overrides=""       # extra KEY=VALUE overrides of the DINO recipe, space-separated
pl_config=""            # pseudo-label recipe (empty: recipes/speechocean_pl.yaml)
pl_rounds=2             # pseudo-labeling rounds
pl_minutes=""           # time budget of each fine-tuning stage in minutes (empty: the recipe's)
pl_overrides=""         # extra KEY=VALUE overrides of the pseudo-label recipe, space-separated
ceiling=false           # true: also train the supervised ceiling (stage 6)
asnorm=true             # true: also score with AS-norm, the training utterances as cohort
asnorm_top_n=300        # cohort scores AS-norm averages per utterance
ceiling_config=""       # its recipe (empty: recipes/speechocean_ceiling.yaml)
ceiling_minutes=""      # its time budget in minutes (empty: --dino-minutes)
ceiling_overrides=""    # extra KEY=VALUE overrides of the ceiling recipe, space-separated
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="DINO + pseudo-labeling on real speech, label-free, scored on held-out speakers
(stages: see the top of $0)."

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

check_arguments "$@"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
dino_config=${dino_config:-$repo/recipes/speechocean_dino.yaml}
pl_config=${pl_config:-$repo/recipes/speechocean_pl.yaml}
ceiling_config=${ceiling_config:-$repo/recipes/speechocean_ceiling.yaml}
ceiling_minutes=${ceiling_minutes:-$dino_minutes}
read -r -a dino_extra <<< "$dino_overrides"
read -r -a pl_extra <<< "$pl_overrides"
read -r -a ceiling_extra <<< "$ceiling_overrides"
for flag in ceiling asnorm; do
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

# round_model DIR: the model a pseudo-labeling round ended with: its full fine-tuning stage,
# or its frozen one when the recipe has no full stage (finetune.full_epochs=0)
round_model() {
  if [ -f "$1/ft_full/embedder.pt" ]; then echo "$1/ft_full"; else echo "$1/ft_frozen"; fi
}

# score_dev NAME MODEL: embeddings of the dev speakers by MODEL in EVAL_DIR/NAME, cosine
# scores of the dev trials (EVAL_DIR/NAME/score.*); with --asnorm true also the training
# utterances' embeddings (EVAL_DIR/NAME/cohort) and AS-norm scores (EVAL_DIR/NAME/asnorm.*)
score_dev() {
  local dir=$eval_dir/$1
  mkdir -p "$dir"
  embed_once "$dir" "$2" "$data_dir/dev/wav.scp"
  score_once "$dir/score" "$trials" "$dir/xvector.scp"
  if [ "$asnorm" = true ]; then
    embed_once "$dir/cohort" "$2" "$train_cuts"
    score_once "$dir/asnorm" "$trials" "$dir/xvector.scp" --norm asnorm \
      --cohort "$dir/cohort/xvector.scp" --top-n "$asnorm_top_n"
  fi
}

if run_stage 0; then
  echo "stage 0: manifests of $corpus_dir in $data_dir ($dev_speakers dev speakers)"
  if [ -z "$corpus_dir" ]; then
    if [ -f "$train_cuts" ] && [ -f "$trials" ]; then
      echo "  already prepared in $data_dir (no --corpus-dir given); skipping"
    else
      echo "$0: stage 0 needs --corpus-dir (a folder of audio files)" >&2
      exit 2
    fi
  else
    prepare=(dino-speech prepare audio --corpus-dir "$corpus_dir" --out-dir "$data_dir"
      --speaker-regex "$speaker_regex" --dev-speakers "$dev_speakers" --seed "$seed"
      --num-jobs "$nj")
    # the command itself does nothing when the same folder was prepared with the same
    # options; only a first preparation is timed
    if [ -f "$data_dir/.audio.prepared.json" ]; then
      "${prepare[@]}" | indent
    else
      timed prepare "${prepare[@]}" | indent
    fi
  fi
fi

if run_stage 1; then
  echo "stage 1: baseline: mean + std of 40 log-Mel bands (built-in model logmel-stats)"
  score_dev baseline logmel-stats
fi

if run_stage 2; then
  echo "stage 2: the DINO encoder, untrained"
  if ! up_to_date "$exp_dir/untrained/embedder.pt" "$dino_config"; then
    dino-speech train untrained --config "$dino_config" --exp-dir "$exp_dir/untrained" \
      ${dino_extra[@]+"${dino_extra[@]}"} | indent
  fi
  score_dev untrained "$exp_dir/untrained"
fi

if run_stage 3; then
  if [ -f "$exp_dir/dino/.done" ]; then
    echo "stage 3: DINO training done ($exp_dir/dino/embedder.pt); skipping"
  else
    echo "stage 3: DINO training ($dino_config, $dino_minutes min) -> $exp_dir/dino"
    timed dino dino-speech train dino --config "$dino_config" --exp-dir "$exp_dir/dino" \
      --device "$device" --max-minutes "$dino_minutes" ${quiet[@]+"${quiet[@]}"} \
      "data.train_cuts=$train_cuts" ${dino_extra[@]+"${dino_extra[@]}"} | indent
    touch "$exp_dir/dino/.done"
  fi
fi

if run_stage 4; then
  echo "stage 4: DINO teacher embeddings and scores of the dev speakers"
  score_dev dino "$exp_dir/dino"
fi

if run_stage 5; then
  if up_to_date "$exp_dir/pl/.done" "$exp_dir/dino/embedder.pt"; then
    echo "stage 5: pseudo-labeling done ($exp_dir/pl/embedder.pt); skipping"
  else
    echo "stage 5: $pl_rounds pseudo-labeling round(s) ($pl_config) -> $exp_dir/pl"
    timed pseudo_label dino-speech pseudo-label run --config "$pl_config" \
      --init "$exp_dir/dino" --exp-dir "$exp_dir/pl" --rounds "$pl_rounds" --device "$device" \
      ${pl_minutes:+--max-minutes "$pl_minutes"} ${quiet[@]+"${quiet[@]}"} \
      "data.train_cuts=$train_cuts" ${pl_extra[@]+"${pl_extra[@]}"} | indent
    touch "$exp_dir/pl/.done"
  fi
  for ((r = 1; r <= pl_rounds; r++)); do
    echo "  round $r model:"
    score_dev "pl$r" "$(round_model "$exp_dir/pl/round$r")"
  done
fi

if run_stage 6 && [ "$ceiling" = true ]; then
  if up_to_date "$exp_dir/ceiling/.done" "$exp_dir/untrained/embedder.pt"; then
    echo "stage 6: supervised ceiling done ($exp_dir/ceiling/embedder.pt); skipping"
  else
    echo "stage 6: supervised ceiling: true speaker labels, from scratch, $ceiling_minutes min" \
      "($ceiling_config) -> $exp_dir/ceiling"
    timed ceiling dino-speech pseudo-label run --config "$ceiling_config" \
      --init "$exp_dir/untrained" --exp-dir "$exp_dir/ceiling" --rounds 1 --device "$device" \
      --max-minutes "$ceiling_minutes" ${quiet[@]+"${quiet[@]}"} "data.train_cuts=$train_cuts" \
      ${ceiling_extra[@]+"${ceiling_extra[@]}"} | indent
    touch "$exp_dir/ceiling/.done"
  fi
  score_dev ceiling "$(round_model "$exp_dir/ceiling/round1")"
fi

if run_stage 7; then
  echo "stage 7: results ($exp_dir/results.md)"
  # row NAME LABEL [CLUSTERS]: one table row from EVAL_DIR/NAME/{score,asnorm}.json (none
  # without the first; "-" in the AS-norm columns without the second)
  row() {
    local json=$eval_dir/$1/score.json norm=$eval_dir/$1/asnorm.json
    [ -f "$json" ] || return 0
    echo "| $2 | $(fmt %.2f "$(json_number "$json" eer)") |" \
      "$(fmt %.3f "$(json_number "$json" 0.01)") | $(fmt %.3f "$(json_number "$json" 0.05)") |" \
      "$(fmt %.2f "$(json_number "$norm" eer)") | $(fmt %.3f "$(json_number "$norm" 0.01)") |" \
      "${3:--} |"
  }
  # clusters R: "C clusters, NMI x, purity y, kept z%" of round R's clustering
  clusters() {
    local q=$exp_dir/pl/round$1/cluster/quality.json
    [ -f "$q" ] || return 0
    python3 -c 'import json, sys; q = json.load(open(sys.argv[1]))
print("%d clusters, NMI %.3f, purity %.3f, kept %.0f%%" % (q["clusters"], q.get("nmi", float("nan")),
      q.get("purity", float("nan")), 100 * q.get("coverage", 0)))' "$q"
  }
  steps=$(grep -o 'DINO training in .*: [0-9]*/[0-9]* steps' "$exp_dir/dino/train.log" \
    2> /dev/null | tail -n 1 | grep -o '[0-9]*/[0-9]* steps' | cut -d / -f 1 || true)
  model=$(grep -m 1 '^  name:' "$exp_dir/dino/config.yaml" 2> /dev/null | sed 's/.*: *//' || true)
  n_trials=$(grep -c . "$trials" 2> /dev/null || echo "?")
  n_targets=$(grep -c ' target$' "$trials" 2> /dev/null || echo "?")
  n_train=$(cut -d ' ' -f 2 "$data_dir/train/utt2spk" 2> /dev/null | sort -u | grep -c . || true)
  {
    echo "| system | EER % | minDCF (p=0.01) | minDCF (p=0.05) | AS-norm EER % |" \
      "AS-norm minDCF (p=0.01) | pseudo-labels |"
    echo "|---|---|---|---|---|---|---|"
    row baseline "log-Mel statistics (logmel-stats, no training)"
    row untrained "${model:-encoder}, untrained"
    row dino "DINO teacher (${model:-?}, ${steps:-?} steps, no labels)"
    for ((r = 1; r <= pl_rounds; r++)); do
      row "pl$r" "DINO + pseudo-labeling round $r" "$(clusters "$r")"
    done
    row ceiling "supervised ceiling (true labels, same encoder and time)" "true speakers"
    echo
    echo "Dev: $dev_speakers held-out speakers, $n_trials trials ($n_targets target), cosine" \
      "scoring; AS-norm: top $asnorm_top_n of a cohort of the training utterances, embedded" \
      "by each model. Training: ${n_train:-?} speakers' audio, labels unused (except the" \
      "ceiling)."
    echo "Machine: $(machine_info "$device"), device $device. Wall time: prepare" \
      "$(stage_time prepare), DINO $(stage_time dino), pseudo-labeling" \
      "$(stage_time pseudo_label), ceiling $(stage_time ceiling)."
  } | write_results "$exp_dir/results.md"
fi
