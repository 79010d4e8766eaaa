#!/usr/bin/env bash
# One command for a GPU machine: DINO training speed (synthetic tensors and real loader data),
# input pipeline, embedding extraction and faiss k-means, as one Markdown table.
# See bench/device_suite.py for what each row measures.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash bench/device_suite.sh [--wheels DIR] [--device cuda|cpu] [--quick] [--out FILE]
                                  [other bench/device_suite.py options]

Checks the packages the suite needs beyond torch (pyyaml, numpy, soundfile, tqdm, lhotse,
speechbrain, scikit-learn, threadpoolctl; faiss optional), installs missing ones from the wheel
files in DIR (pip --no-index --find-links DIR: no package index needed), then runs
bench/device_suite.py, which prints the table and writes it to --out (device_suite.md).
Rows whose packages are still missing are skipped; the others run.

  --wheels DIR   folder of .whl files for missing packages (and a faiss wheel, if any)
  --device DEV   cuda (default) or cpu
  --quick        tiny models and sizes: a smoke run (e.g. --device cpu --quick on a laptop)
  --out FILE     where the table goes [device_suite.md]
  -h, --help     this help, then the driver's options
Environment: PYTHON, the interpreter that has torch [python3].

Prepare the wheels on a machine with an index, for the GPU machine's Python:
  pip download speechbrain lhotse scikit-learn soundfile pyyaml tqdm numpy \
      --python-version 3.12 --platform manylinux2014_x86_64 --only-binary=:all: -d wheels/
  rm -f wheels/torch-* wheels/torchaudio-* wheels/nvidia_* wheels/triton-*
Then on the GPU machine:
  bash bench/device_suite.sh --wheels wheels/ --out device_suite.md
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-python3}
wheels=""
help=0
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --wheels)
      [[ $# -ge 2 ]] || { echo "device_suite.sh: --wheels needs a folder" >&2; exit 2; }
      wheels=$2
      shift 2
      ;;
    --wheels=*)
      wheels=${1#--wheels=}
      shift
      ;;
    -h | --help)
      help=1
      shift
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

if [[ $help -eq 1 ]]; then
  usage
  echo
  exec "$python" "$here/device_suite.py" --help
fi

if ! "$python" -c "import torch" 2>/dev/null; then
  echo "device_suite.sh: '$python' cannot import torch; install torch and torchaudio first" >&2
  exit 2
fi
if [[ -n $wheels && ! -d $wheels ]]; then
  echo "device_suite.sh: --wheels $wheels: no such folder" >&2
  exit 2
fi

# Prints the pip names of the packages that do not import (module:pip-name pairs).
missing_packages() {
  "$python" - "$@" <<'EOF'
import importlib
import sys

for pair in sys.argv[1:]:
    module, package = pair.split(":")
    try:
        importlib.import_module(module)
    except Exception:
        print(package)
EOF
}

needed=(yaml:pyyaml numpy:numpy soundfile:soundfile tqdm:tqdm lhotse:lhotse
  speechbrain:speechbrain sklearn:scikit-learn threadpoolctl:threadpoolctl)
mapfile -t missing < <(missing_packages "${needed[@]}")

if [[ ${#missing[@]} -gt 0 && -n $wheels ]]; then
  echo "device_suite.sh: installing from $wheels: ${missing[*]}" >&2
  if ! "$python" -m pip install --no-index --find-links "$wheels" "${missing[@]}"; then
    echo "device_suite.sh: pip could not install all of them from $wheels; going on" >&2
  fi
  mapfile -t missing < <(missing_packages "${needed[@]}")
fi
# faiss only from a wheel that is there (faiss-gpu-cu12, faiss-cpu, ...): the k-means row.
if [[ -n $wheels ]] && ! "$python" -c "import faiss" 2>/dev/null; then
  mapfile -t faiss_names < <(find "$wheels" -maxdepth 1 -name 'faiss*.whl' -printf '%f\n' |
    sed 's/-.*//' | sort -u)
  if [[ ${#faiss_names[@]} -gt 0 ]]; then
    echo "device_suite.sh: installing from $wheels: ${faiss_names[*]}" >&2
    "$python" -m pip install --no-index --find-links "$wheels" "${faiss_names[@]}" ||
      echo "device_suite.sh: faiss did not install; the k-means row is skipped" >&2
  fi
fi

if [[ ${#missing[@]} -gt 0 ]]; then
  skipped=()
  for package in "${missing[@]}"; do
    case "$package" in
      pyyaml | numpy | soundfile) skipped+=("all DINO, loader and embedding rows") ;;
      tqdm) skipped+=("corpus, loader, pipeline, embedding and k-means rows") ;;
      lhotse) skipped+=("corpus, real-loader and input-pipeline rows") ;;
      speechbrain) skipped+=("ECAPA rows") ;;
      scikit-learn | threadpoolctl) skipped+=("k-means row") ;;
    esac
  done
  rows=$(printf '%s\n' "${skipped[@]}" | sort -u | paste -sd ';' - | sed 's/;/; /g')
  hint="give --wheels DIR to install them"
  [[ -z $wheels ]] || hint="not installable from $wheels"
  echo "device_suite.sh: missing ${missing[*]} ($hint); skipped: $rows" >&2
fi

exec "$python" "$here/device_suite.py" ${args[@]+"${args[@]}"}
