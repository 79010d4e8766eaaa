#!/usr/bin/env bash
# Emotion recognition on IEMOCAP with frozen utterance embeddings: the 4-class protocol
# (neutral, happy + excited, angry, sad), a probe trained on the embeddings of four sessions
# and tested on the fifth, five times (leave one session out), pooled micro-F1.
# Cho et al. 2022 report 60.87 % micro-F1 for their DINO embedding.
#
#   stage 0: prepare IEMOCAP (dino-speech prepare iemocap: parts all and 4class)
#   stage 1: embed the 4-class utterances with --model
#   stage 2: emotion probe (eval-emotion --groups utt2sess: leave one session out)
#   stage 3: the results table (dino-speech report) -> EXP_DIR/results.md
#
#   egs/iemocap/emotion/run.sh --corpus-dir /data/IEMOCAP_full_release --model exp/voxceleb_dino/pl
#   egs/iemocap/emotion/run.sh --model logmel-stats --exp-dir exp/iemocap_logmel --stage 1
set -euo pipefail

stage=0                     # first stage to run
stop_stage=3                # last stage to run
corpus_dir=""               # the IEMOCAP_full_release folder (Session1 ... Session5); stage 0
model=""                    # model: experiment dir, embedder file, checkpoint, or logmel-stats
data_dir=data/iemocap       # prepared manifests and Kaldi lists
exp_dir=exp/iemocap_emotion # embeddings, probe outputs and results.md
nj=2                        # parallel jobs: audio header readers, audio reader workers
device=auto                 # cpu, cuda, or auto (CUDA when available)
classifier=logreg           # emotion probe: logreg or mlp
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="IEMOCAP 4-class emotion recognition (leave one session out) on frozen
embeddings of --model."

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

check_arguments "$@"
require_model
absolute_dirs data_dir exp_dir
cuts=$data_dir/iemocap_cuts_4class.jsonl.gz
lists=$data_dir/4class

if run_stage 0; then
  echo "stage 0: IEMOCAP manifests and Kaldi lists in $data_dir"
  require --corpus-dir "$corpus_dir" "the IEMOCAP_full_release folder; --stage 1 skips this"
  dino-speech prepare iemocap --corpus-dir "$corpus_dir" --out-dir "$data_dir" --num-jobs "$nj"
fi

if run_stage 1; then
  echo "stage 1: embeddings of the 4-class utterances"
  dino-speech embed --model "$model" --cuts "$cuts" --out-dir "$exp_dir/emb" --device "$device" \
    --num-workers "$nj" "${progress[@]}"
fi

if run_stage 2; then
  echo "stage 2: $classifier probe, leave one session out"
  dino-speech eval-emotion --embeddings "$exp_dir/emb/xvector.scp" --labels "$lists/utt2emo" \
    --groups "$lists/utt2sess" --classifier "$classifier" \
    --confusion-plot "$exp_dir/confusion.png" --predictions-out "$exp_dir/predictions" \
    --json-out "$exp_dir/emotion.json"
fi

if run_stage 3; then
  echo "stage 3: results ($exp_dir/results.md)"
  note="IEMOCAP, 4 classes (neutral, happy + excited, angry, sad), $classifier probe on"
  note+=" frozen embeddings, leave one session out."
  dino-speech report --columns micro_f1,macro_f1,uar,folds --row "$model" "$exp_dir" \
    --note "$note" \
    --note "Cho et al. 2022 report 60.87 % micro-F1 for their DINO embedding." \
    --out "$exp_dir/results.md"
fi
