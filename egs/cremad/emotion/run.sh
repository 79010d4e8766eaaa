#!/usr/bin/env bash
# Emotion recognition on CREMA-D with frozen utterance embeddings: the six acted emotions
# (angry, disgusted, fearful, happy, neutral, sad) of 91 actors, a probe cross-validated over
# five speaker-disjoint folds (eval-emotion --groups utt2spk), pooled micro-F1.
# Cho et al. 2022 report 79.21 % micro-F1 for their DINO embedding.
#
#   stage 0: prepare CREMA-D (dino-speech prepare cremad: part all)
#   stage 1: embed every utterance with --model
#   stage 2: emotion probe, speaker-independent folds
#   stage 3: write the results row to EXP_DIR/results.md and print it
#
#   egs/cremad/emotion/run.sh --corpus-dir /data/CREMA-D --model exp/voxceleb_dino/pl
#   egs/cremad/emotion/run.sh --model logmel-stats --exp-dir exp/cremad_logmel --stage 1
set -euo pipefail

stage=0                     # first stage to run
stop_stage=3                # last stage to run
corpus_dir=""               # the CREMA-D folder (AudioWAV/); stage 0
model=""                    # model: experiment dir, embedder file, checkpoint, or logmel-stats
data_dir=data/cremad        # prepared manifests and Kaldi lists
exp_dir=exp/cremad_emotion  # embeddings, probe outputs and results.md
nj=2                        # parallel jobs: audio header readers, audio reader workers
device=auto                 # cpu, cuda, or auto (CUDA when available)
classifier=logreg           # emotion probe: logreg or mlp
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="CREMA-D 6-class emotion recognition (speaker-independent folds) on frozen
embeddings of --model."

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

if [ $# -gt 0 ]; then
  echo "$0: unexpected arguments: $* (see $0 --help)" >&2
  exit 2
fi
require_dino_speech
if [ -z "$model" ] && [ "$stop_stage" -ge 1 ]; then
  echo "$0: --model is required (an experiment directory, embedder file or logmel-stats)" >&2
  exit 2
fi
model=$(abs_path "$model")
mkdir -p "$data_dir" "$exp_dir"
data_dir=$(abs_path "$data_dir")
exp_dir=$(abs_path "$exp_dir")
cuts=$data_dir/cremad_cuts_all.jsonl.gz
lists=$data_dir/all
progress=(--no-progress)
[ -t 2 ] && progress=(--progress)

if run_stage 0; then
  if [ -f "$cuts" ] && [ -f "$lists/utt2spk" ]; then
    echo "stage 0: CREMA-D already prepared in $data_dir; skipping"
  else
    if [ -z "$corpus_dir" ]; then
      echo "$0: stage 0 needs --corpus-dir (the CREMA-D folder holding AudioWAV/)" >&2
      exit 2
    fi
    echo "stage 0: preparing CREMA-D from $corpus_dir -> $data_dir"
    dino-speech prepare cremad --corpus-dir "$corpus_dir" --out-dir "$data_dir" \
      --num-jobs "$nj" | indent
  fi
fi

if run_stage 1; then
  if embeddings_up_to_date "$exp_dir/emb" "$model" "$cuts"; then
    echo "stage 1: embeddings up to date ($exp_dir/emb/xvector.scp)"
  else
    echo "stage 1: embedding $(wc -l < "$lists/wav.scp") utterances with $model"
    dino-speech embed --model "$model" --cuts "$cuts" --out-dir "$exp_dir/emb" \
      --device "$device" --num-workers "$nj" "${progress[@]}" | indent
    mark_embeddings "$exp_dir/emb" "$model"
  fi
fi

if run_stage 2; then
  if up_to_date "$exp_dir/emotion.json" "$exp_dir/emb/xvector.scp" "$lists/utt2emo"; then
    echo "stage 2: emotion probe up to date ($exp_dir/emotion.json)"
  else
    echo "stage 2: $classifier probe, speaker-independent folds"
    dino-speech eval-emotion --embeddings "$exp_dir/emb/xvector.scp" \
      --labels "$lists/utt2emo" --groups "$lists/utt2spk" --classifier "$classifier" \
      --confusion-plot "$exp_dir/confusion.png" --predictions-out "$exp_dir/predictions" \
      --json > "$exp_dir/emotion.log"
    json_result "$exp_dir/emotion.log" "$exp_dir/emotion.json"
    sed '$d' "$exp_dir/emotion.log" | indent
  fi
fi

if run_stage 3; then
  {
    echo "| model | micro-F1 % | macro-F1 % | UAR % | folds | Cho et al. 2022 (DINO) |"
    echo "|---|---|---|---|---|---|"
    emotion_report "$(cat "$exp_dir/emb/model" 2> /dev/null || echo "$model")" "$exp_dir" 79.21
    echo
    echo "CREMA-D, $(cut -d ' ' -f 2 "$lists/utt2emo" | sort -u | wc -l) classes," \
      "$classifier probe on frozen embeddings, speaker-independent folds."
  } > "$exp_dir/results.md.tmp"
  mv "$exp_dir/results.md.tmp" "$exp_dir/results.md"
  echo "stage 3: results ($exp_dir/results.md)"
  cat "$exp_dir/results.md"
fi
