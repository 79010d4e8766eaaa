#!/usr/bin/env bash
# Emotion recognition on CREMA-D with frozen utterance embeddings: the six acted emotions
# (angry, disgusted, fearful, happy, neutral, sad) of 91 actors, a probe cross-validated over
# five speaker-disjoint folds (eval-emotion --groups utt2spk), pooled micro-F1.
# Cho et al. 2022 report 79.21 % micro-F1 for their DINO embedding.
#
#   stage 0: prepare CREMA-D (dino-speech prepare cremad: part all)
#   stage 1: embed every utterance with --model
#   stage 2: emotion probe, speaker-independent folds
#   stage 3: the results table (dino-speech report) -> EXP_DIR/results.md
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
  require --corpus-dir "$corpus_dir" "the CREMA-D folder holding AudioWAV/; --stage 1 skips this"
  dino-speech prepare cremad --corpus-dir "$corpus_dir" --out-dir "$data_dir" --num-jobs "$nj"
fi

if run_stage 1; then
  echo "stage 1: embeddings of every utterance"
  dino-speech embed --model "$model" --cuts "$cuts" --out-dir "$exp_dir/emb" --device "$device" \
    --num-workers "$nj" "${progress[@]}"
fi

if run_stage 2; then
  echo "stage 2: $classifier probe, speaker-independent folds"
  dino-speech eval-emotion --embeddings "$exp_dir/emb/xvector.scp" --labels "$lists/utt2emo" \
    --groups "$lists/utt2spk" --classifier "$classifier" \
    --confusion-plot "$exp_dir/confusion.png" --predictions-out "$exp_dir/predictions" \
    --json-out "$exp_dir/emotion.json"
fi

if run_stage 3; then
  echo "stage 3: results ($exp_dir/results.md)"
  dino-speech report --columns micro_f1,macro_f1,uar,folds --row "$model" "$exp_dir" \
    --note "CREMA-D, $classifier probe on frozen embeddings, speaker-independent folds." \
    --note "Cho et al. 2022 report 79.21 % micro-F1 for their DINO embedding." \
    --out "$exp_dir/results.md"
fi
