#!/usr/bin/env bash
# Emotion recognition on MSP-Podcast with frozen utterance embeddings: the official split, a
# probe trained on the Train set and tested on Test1 (no cross-validation), micro-F1 over the
# consensus categories in --classes. Cho et al. 2022 report 56.98 % micro-F1 for their DINO
# embedding; the class set behind that figure is not in our sources, so compare with care.
#
#   stage 0: prepare MSP-Podcast (dino-speech prepare msp_podcast: one part per split)
#   stage 1: embed the train and test parts with --model
#   stage 2: emotion probe: eval-emotion --labels TRAIN --test-labels TEST (fixed split)
#   stage 3: the results table (dino-speech report) -> EXP_DIR/results.md
#
#   egs/msp_podcast/emotion/run.sh --corpus-dir /data/MSP-Podcast --model exp/voxceleb_dino/pl
set -euo pipefail

stage=0                     # first stage to run
stop_stage=3                # last stage to run
corpus_dir=""               # the MSP-Podcast folder (Audios/, Labels/labels_consensus.csv); stage 0
model=""                    # model: experiment dir, embedder file, checkpoint, or logmel-stats
data_dir=data/msp_podcast   # prepared manifests and Kaldi lists
exp_dir=exp/msp_podcast_emotion # embeddings, probe outputs and results.md
train_part=train            # part the probe is trained on
test_part=test1             # part the probe is tested on
classes="neutral happy angry sad surprised contempt disgusted fearful" # classes kept (no other, no_agreement)
nj=2                        # parallel jobs: audio header readers, audio reader workers
device=auto                 # cpu, cuda, or auto (CUDA when available)
classifier=logreg           # emotion probe: logreg or mlp
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="MSP-Podcast emotion recognition (train on the Train set, test on Test1) on
frozen embeddings of --model."

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

check_arguments "$@"
require_model
absolute_dirs data_dir exp_dir

if run_stage 0; then
  echo "stage 0: MSP-Podcast manifests and Kaldi lists in $data_dir"
  require --corpus-dir "$corpus_dir" "the MSP-Podcast folder; --stage 1 skips this"
  dino-speech prepare msp_podcast --corpus-dir "$corpus_dir" --out-dir "$data_dir" \
    --num-jobs "$nj"
fi

if run_stage 1; then
  echo "stage 1: embeddings of the $train_part and $test_part parts"
  dino-speech embed --model "$model" --cuts "$data_dir/msp_podcast_cuts_$train_part.jsonl.gz" \
    --cuts "$data_dir/msp_podcast_cuts_$test_part.jsonl.gz" --out-dir "$exp_dir/emb" \
    --device "$device" --num-workers "$nj" "${progress[@]}"
fi

if run_stage 2; then
  echo "stage 2: $classifier probe trained on $train_part, tested on $test_part"
  dino-speech eval-emotion --embeddings "$exp_dir/emb/xvector.scp" \
    --labels "$data_dir/$train_part/utt2emo" --test-labels "$data_dir/$test_part/utt2emo" \
    --classes "$classes" --classifier "$classifier" \
    --confusion-plot "$exp_dir/confusion.png" --predictions-out "$exp_dir/predictions" \
    --json-out "$exp_dir/emotion.json"
fi

if run_stage 3; then
  echo "stage 3: results ($exp_dir/results.md)"
  note="MSP-Podcast, classes: $classes; $classifier probe on frozen embeddings, trained on"
  note+=" $train_part, tested on $test_part."
  dino-speech report --columns micro_f1,macro_f1,uar,folds --row "$model" "$exp_dir" \
    --note "$note" \
    --note "Cho et al. 2022 report 56.98 % micro-F1 for their DINO embedding (class set unknown)." \
    --out "$exp_dir/results.md"
fi
