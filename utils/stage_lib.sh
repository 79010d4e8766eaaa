#!/usr/bin/env bash
# What the egs/*/run.sh stage scripts need from shell (sourced, not executed):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/../../utils/stage_lib.sh"
#
# stage selection (run_stage), launching under torchrun (launch), argument checks, and
# absolute paths. Everything else is the dino-speech commands' own work: each is idempotent
# (a rerun of a finished request does nothing), records what it did in JSON (embed.json,
# score.json, summary.json, ...), and `dino-speech report` builds the results tables from
# those records. Sourcing also sets `progress` and `quiet`: progress bars and training logs
# only when someone watches (stderr is a terminal).
# shellcheck disable=SC2154  # stage, stop_stage, model, ngpu belong to the sourcing script

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

# require OPTION VALUE WHAT: fail with "OPTION is required (WHAT)" when VALUE is empty
require() {
  if [ -z "$2" ]; then
    echo "$0: $1 is required ($3)" >&2
    exit 2
  fi
}

# require_model: fail unless --model is given (when a stage that needs it will run), and make
# `model` an absolute path when it names a file or directory
require_model() {
  if [ "$stop_stage" -ge 1 ]; then
    require --model "$model" "an experiment directory, embedder file or logmel-stats"
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

# run_stage N: whether stage N lies within --stage .. --stop-stage
run_stage() {
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]
}

# launch ARG...: `dino-speech ARG...`, under torchrun on `ngpu` GPUs when ngpu > 1
launch() {
  if [ "${ngpu:-0}" -gt 1 ]; then
    torchrun --standalone --nproc_per_node "$ngpu" -m dino_speech.cli.main "$@"
  else
    dino-speech "$@"
  fi
}
