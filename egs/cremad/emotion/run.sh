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

check_arguments "$@"
require_model
absolute_dirs data_dir exp_dir
cuts=$data_dir/cremad_cuts_all.jsonl.gz
lists=$data_dir/all

if run_stage 0; then
  echo "stage 0: CREMA-D manifests and Kaldi lists in $data_dir"
  prepare_once cremad CREMA-D "the CREMA-D folder holding AudioWAV/" "$cuts" "$lists/utt2spk"
fi

if run_stage 1; then
  echo "stage 1: embeddings of every utterance"
  embed_once "$exp_dir/emb" "$model" "$cuts"
fi

if run_stage 2; then
  echo "stage 2: $classifier probe, speaker-independent folds"
  emotion_probe "$exp_dir" --embeddings "$exp_dir/emb/xvector.scp" --labels "$lists/utt2emo" \
    --groups "$lists/utt2spk" --classifier "$classifier"
fi

if run_stage 3; then
  echo "stage 3: results ($exp_dir/results.md)"
  {
    echo "| model | micro-F1 % | macro-F1 % | UAR % | folds | Cho et al. 2022 (DINO) |"
    echo "|---|---|---|---|---|---|"
    emotion_report "$(cat "$exp_dir/emb/model" 2> /dev/null || echo "$model")" "$exp_dir" 79.21
    echo
    echo "CREMA-D, $(cut -d ' ' -f 2 "$lists/utt2emo" | sort -u | wc -l) classes," \
      "$classifier probe on frozen embeddings, speaker-independent folds."
  } | write_results "$exp_dir/results.md"
fi
