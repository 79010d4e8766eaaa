#!/usr/bin/env bash
# Functions shared by the egs/*/run.sh stage scripts (sourced, not executed).
#
#   . "$(dirname "${BASH_SOURCE[0]}")/../../utils/stage_lib.sh"
#
# They expect the script's own `stage`, `stop_stage` and `exp_dir` variables and write
# nothing outside `exp_dir`.
# shellcheck disable=SC2154  # stage, stop_stage and exp_dir belong to the sourcing script

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

# require_dino_speech: fail with a hint when the dino-speech command is not installed
require_dino_speech() {
  if ! command -v dino-speech > /dev/null; then
    echo "$0: the dino-speech command is not installed; run 'pip install -e .' in the" \
      "repository first" >&2
    exit 2
  fi
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
