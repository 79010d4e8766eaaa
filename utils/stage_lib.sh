#!/usr/bin/env bash
# Functions shared by the egs/*/run.sh stage scripts (sourced, not executed).
#
#   . "$(dirname "${BASH_SOURCE[0]}")/../../utils/stage_lib.sh"
#
# They read the script's own option variables -- `stage`, `stop_stage` and `exp_dir` always;
# `device`, `nj`, `ngpu`, `corpus_dir` and `data_dir` where a function says so -- and write
# nothing outside `exp_dir` and `data_dir`. Sourcing also sets `progress` and `quiet`, the
# options that show progress bars and training logs only when someone watches (stderr is a
# terminal).
# shellcheck disable=SC2154  # stage, stop_stage, exp_dir, ... belong to the sourcing script

# shellcheck disable=SC2034  # used by the sourcing scripts
progress=(--no-progress)
# shellcheck disable=SC2034
quiet=(--quiet)
if [ -t 2 ]; then
  progress=(--progress)
  quiet=()
fi

# check_arguments "$@": fail on arguments left after the options, and when the dino-speech
# command is not installed
check_arguments() {
  if [ $# -gt 0 ]; then
    echo "$0: unexpected arguments: $* (see $0 --help)" >&2
    exit 2
  fi
  if ! command -v dino-speech > /dev/null; then
    echo "$0: the dino-speech command is not installed; run 'pip install -e .' in the" \
      "repository first" >&2
    exit 2
  fi
}

# require_model: fail unless --model is given (when a stage that needs it will run), and make
# `model` an absolute path when it names a file or directory
require_model() {
  if [ -z "$model" ] && [ "$stop_stage" -ge 1 ]; then
    echo "$0: --model is required (an experiment directory, embedder file or logmel-stats)" >&2
    exit 2
  fi
  model=$(abs_path "$model")
}

# absolute_dirs VAR...: create the directories the variables VAR... name and set each
# variable to its directory's absolute path (relative options are taken from the working
# directory; the commands then work from anywhere)
absolute_dirs() {
  local var
  for var in "$@"; do
    mkdir -p "${!var}"
    printf -v "$var" '%s' "$(abs_path "${!var}")"
  done
}

# run_stage N: whether stage N lies within --stage .. --stop-stage
run_stage() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]
}

# up_to_date TARGET [INPUT...]: TARGET exists and no INPUT that exists is newer than it
# (make's rule: a stage whose output is up to date is skipped).
up_to_date() {
  local target=$1 input
  shift
  [ -e "$target" ] || return 1
  for input in "$@"; do
    if [ -e "$input" ] && [ "$input" -nt "$target" ]; then
      return 1
    fi
  done
}

# made_with TARGET SETTINGS [INPUT...]: TARGET is up to date with the INPUTs and was made with
# SETTINGS (as `record_settings TARGET SETTINGS` wrote them), so a changed option redoes it
made_with() {
  local target=$1 settings=$2
  shift 2
  [ -f "$target.settings" ] && [ "$(cat "$target.settings")" = "$settings" ] \
    && up_to_date "$target" "$@"
}

# record_settings TARGET SETTINGS: note the settings TARGET was made with (see made_with)
record_settings() {
  echo "$2" > "$1.settings"
}

# update_file FILE: copy stdin into FILE, leaving FILE and its time stamp alone when the
# content is the same (so the stages that read FILE stay up to date)
update_file() {
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat > "$tmp"
  if cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
  else
    mv "$tmp" "$1"
  fi
}

# timed NAME COMMAND...: run COMMAND; record its wall time in seconds in EXP_DIR/times/NAME
timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  mkdir -p "$exp_dir/times"
  echo $((SECONDS - start)) > "$exp_dir/times/$name"
}

# stage_time NAME: the time `timed NAME` recorded, as "N s" (or "-")
stage_time() {
  if [ -f "$exp_dir/times/$1" ]; then
    echo "$(cat "$exp_dir/times/$1") s"
  else
    echo "-"
  fi
}

# json_result LOG OUT: move the JSON object a `--json` command printed last in LOG into OUT
# (atomically); fails if LOG does not end with one.
json_result() {
  tail -n 1 "$1" > "$2.tmp"
  if [ "$(head -c 1 "$2.tmp")" != "{" ]; then
    echo "$0: no JSON result at the end of $1" >&2
    rm -f "$2.tmp"
    return 1
  fi
  mv "$2.tmp" "$2"
}

# json_number FILE KEY: the number after the first "KEY": in a one-line JSON file ("" if
# the file or the key is missing). Enough for the flat results of score/eval-emotion --json.
json_number() {
  [ -f "$1" ] || return 0
  grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -n 1 | sed 's/.*: *//'
}

# fmt FORMAT NUMBER: printf FORMAT NUMBER, or "-" when NUMBER is empty
fmt() {
  if [ -n "$2" ]; then
    # shellcheck disable=SC2059  # the format is the caller's
    printf "$1" "$2"
  else
    echo "-"
  fi
}

# indent: copy stdin to stdout with four leading spaces (a command's report under its stage)
indent() {
  sed 's/^/    /'
}

# random_lines N SEED: N lines of stdin drawn at random (reproducibly for a SEED with the same
# awk), sorted. All input is read (`head` would stop early and kill the pipeline under
# pipefail); srand gets SEED + 1 because srand(0) and srand(1) seed alike in mawk and gawk.
random_lines() {
  awk -v seed="$2" 'BEGIN { srand(seed + 1) } { printf "%.12f %s\n", rand(), $0 }' \
    | sort -k1,1 | awk -v n="$1" 'NR <= n' | cut -d ' ' -f 2- | sort
}

# write_results FILE: copy stdin into FILE (atomically) and print it
write_results() {
  cat > "$1.tmp"
  mv "$1.tmp" "$1"
  cat "$1"
}

# machine_info DEVICE: "CPU model, N cores, OS[, GPU model]" for results tables
machine_info() {
  local cpu="" gpu="" cores
  if [ -r /proc/cpuinfo ]; then
    cpu=$(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: *//')
  elif command -v sysctl > /dev/null; then
    cpu=$(sysctl -n machdep.cpu.brand_string 2> /dev/null || true)
  fi
  if [ "$1" != cpu ] && command -v nvidia-smi > /dev/null; then
    gpu=", $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1 || true)"
  fi
  cores=$(nproc 2> /dev/null || getconf _NPROCESSORS_ONLN)
  echo "${cpu:-unknown CPU}, $cores cores, $(uname -s)$gpu"
}

# abs_path PATH: PATH made absolute when it exists (a built-in model name stays as it is)
abs_path() {
  if [ -d "$1" ]; then
    (cd "$1" && pwd)
  elif [ -e "$1" ]; then
    echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
  else
    echo "$1"
  fi
}

# embeddings_up_to_date OUT MODEL [INPUT...]: OUT/xvector.scp exists, was made by MODEL (as
# recorded in OUT/model by mark_embeddings) and is newer than MODEL's file and every INPUT
embeddings_up_to_date() {
  local out=$1 model=$2 file=$2
  shift 2
  [ -d "$model" ] && file=$model/embedder.pt
  [ -f "$out/model" ] && [ "$(cat "$out/model")" = "$model" ] \
    && up_to_date "$out/xvector.scp" "$file" "$@"
}

# mark_embeddings OUT MODEL: record that OUT/xvector.scp holds MODEL's embeddings
mark_embeddings() {
  echo "$2" > "$1/model"
}

# emotion_report NAME DIR REFERENCE: a results row "| NAME | micro-F1 | macro-F1 | UAR |
# folds | REFERENCE |" from DIR/emotion.json and DIR/emotion.log (eval-emotion --json)
emotion_report() {
  local json=$2/emotion.json uar scheme
  uar=$(grep -o 'UAR: [0-9.]*' "$2/emotion.log" 2> /dev/null | head -n 1 | sed 's/.*: //' || true)
  scheme=$(grep -o 'folds: .*' "$2/emotion.log" 2> /dev/null | head -n 1 | sed 's/folds: //' || true)
  echo "| $1 | $(fmt %.2f "$(json_number "$json" micro_f1)")" \
    "| $(fmt %.2f "$(json_number "$json" macro_f1)") | $(fmt %.2f "$uar") | ${scheme:--} | $3 |"
}

# launch ARG...: `dino-speech ARG...`, under torchrun on `ngpu` GPUs when ngpu > 1
launch() {
  if [ "${ngpu:-0}" -gt 1 ]; then
    torchrun --standalone --nproc_per_node "$ngpu" -m dino_speech.cli.main "$@"
  else
    dino-speech "$@"
  fi
}

# prepare_once CORPUS TITLE HINT FILE...: `dino-speech prepare CORPUS --corpus-dir CORPUS_DIR
# --out-dir DATA_DIR --num-jobs NJ` unless every FILE exists; HINT says what --corpus-dir is
prepare_once() {
  local corpus=$1 title=$2 hint=$3 file missing=0
  shift 3
  for file in "$@"; do
    [ -f "$file" ] || missing=1
  done
  if [ "$missing" -eq 0 ]; then
    echo "  $title already prepared in $data_dir; skipping"
    return
  fi
  if [ -z "$corpus_dir" ]; then
    echo "$0: preparing $title needs --corpus-dir ($hint)" >&2
    exit 2
  fi
  echo "  preparing $title from $corpus_dir -> $data_dir"
  dino-speech prepare "$corpus" --corpus-dir "$corpus_dir" --out-dir "$data_dir" \
    --num-jobs "$nj" | indent
}

# embed_once OUT MODEL LIST: `dino-speech embed` (see launch) of LIST -- a wav.scp, or a cut
# manifest *.jsonl.gz -- by MODEL into OUT/xvector.{ark,scp} on DEVICE with NJ reader
# workers, unless OUT holds MODEL's embeddings of LIST already
embed_once() {
  local out=$1 model=$2 list=$3 source=--wav-scp count
  if embeddings_up_to_date "$out" "$model" "$list"; then
    echo "  embeddings up to date ($out/xvector.scp)"
    return
  fi
  case $list in
    *.jsonl.gz)
      source=--cuts
      count=$(gzip -cd "$list" | wc -l)
      ;;
    *) count=$(wc -l < "$list") ;;
  esac
  echo "  embedding $((count)) utterances ($list) with $model -> $out"
  launch embed --model "$model" "$source" "$list" --out-dir "$out" --device "$device" \
    --num-workers "$nj" "${progress[@]}" | indent
  mark_embeddings "$out" "$model"
}

# score_once BASE TRIALS EMBEDDINGS [OPTION...]: `dino-speech score` of TRIALS with
# EMBEDDINGS (OPTIONs: --norm, --cohort, ...) into BASE.{scores,png,log,json}, unless
# BASE.json is up to date with the same arguments
score_once() {
  local base=$1 trials=$2 embeddings=$3
  shift 3
  # (the arguments that name files are the inputs; up_to_date ignores the others)
  if made_with "$base.json" "$trials $embeddings $*" "$trials" "$embeddings" "$@"; then
    echo "  scores up to date ($base.json)"
    return
  fi
  echo "  scoring $(grep -c . "$trials") trials ($trials${*:+, $*})"
  dino-speech score --trials "$trials" --embeddings "$embeddings" "$@" \
    --scores-out "$base.scores" --det-plot "$base.png" --json > "$base.log"
  json_result "$base.log" "$base.json"
  record_settings "$base.json" "$trials $embeddings $*"
  sed '$d' "$base.log" | indent
}

# emotion_probe DIR OPTION...: `dino-speech eval-emotion OPTION...` into DIR/emotion.{log,json},
# DIR/confusion.png and DIR/predictions, unless DIR/emotion.json is up to date with the same
# options
emotion_probe() {
  local dir=$1
  shift
  if made_with "$dir/emotion.json" "$*" "$@"; then
    echo "  emotion probe up to date ($dir/emotion.json)"
    return
  fi
  dino-speech eval-emotion "$@" --confusion-plot "$dir/confusion.png" \
    --predictions-out "$dir/predictions" --json > "$dir/emotion.log"
  json_result "$dir/emotion.log" "$dir/emotion.json"
  record_settings "$dir/emotion.json" "$*"
  sed '$d' "$dir/emotion.log" | indent
}
