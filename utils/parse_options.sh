#!/usr/bin/env bash
# Option parsing for stage scripts (sourced, not executed).
#
# A script declares its options as plain assignments, each with a comment, and then sources
# this file:
#
#   stage=0          # first stage to run
#   stop_stage=100   # last stage to run
#   exp_dir=exp/mini # where models and results go
#   . "$(dirname "$0")/../../utils/parse_options.sh"
#
# Afterwards `--stop-stage 3` or `--stop-stage=3` has set stop_stage=3 (dashes become
# underscores). Only variables that already exist can be set, so a typo is an error, not a
# silently ignored option. `--help` prints every option with its default and comment, read from
# the assignments above the line that sources this file, then ${help_message} if the script set
# one. Arguments after the options (or after `--`) stay in "$@".

_po_print_help() {
  echo "Usage: $0 [options]${positional_usage:+ $positional_usage}"
  if [ -n "${help_message:-}" ]; then
    echo
    echo "$help_message"
  fi
  echo
  echo "Options (default in brackets):"
  awk '
    /parse_options\.sh/ { exit }
    /^[a-z_][a-z0-9_]*=/ {
      line = $0
      name = substr(line, 1, index(line, "=") - 1)
      if (name == "help_message" || name == "positional_usage") next
      rest = substr(line, index(line, "=") + 1)
      comment = ""
      hash = index(rest, "#")
      if (hash > 0) { comment = substr(rest, hash + 1); rest = substr(rest, 1, hash - 1) }
      gsub(/^[ \t]+|[ \t]+$/, "", rest); gsub(/^[ \t]+/, "", comment)
      gsub(/^["\047]|["\047]$/, "", rest)
      gsub(/_/, "-", name)
      printf "  --%-20s %s [%s]\n", name, comment, rest
    }
  ' "$0"
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help)
      _po_print_help
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      _po_name="${1%%=*}"
      _po_value="${1#*=}"
      shift
      ;;
    --*)
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value (see $0 --help)" >&2
        exit 2
      fi
      _po_name="$1"
      _po_value="$2"
      shift 2
      ;;
    *)
      break
      ;;
  esac
  _po_var="${_po_name#--}"
  _po_var="${_po_var//-/_}"
  if ! [[ "$_po_var" =~ ^[a-z_][a-z0-9_]*$ ]] || [ -z "${!_po_var+set}" ]; then
    echo "$0: unknown option $_po_name (see $0 --help)" >&2
    exit 2
  fi
  printf -v "$_po_var" '%s' "$_po_value"
done
unset _po_name _po_value _po_var
