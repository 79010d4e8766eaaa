#!/usr/bin/env bash
# Emotion recognition on MSP-Podcast with frozen utterance embeddings: the official split, a
# probe trained on the Train set and tested on Test1 (no cross-validation), micro-F1 over the
# consensus categories in --classes. Cho et al. 2022 report 56.98 % micro-F1 for their DINO
# embedding; the class set behind that figure is not in our sources, so compare with care.
#
#   stage 0: prepare MSP-Podcast (dino-speech prepare msp_podcast: one part per split)
#   stage 1: embed the train and test parts with --model
#   stage 2: emotion probe: eval-emotion --labels TRAIN --test-labels TEST (fixed split)
#   stage 3: write the results row to EXP_DIR/results.md and print it
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
  prepare_once msp_podcast MSP-Podcast "the MSP-Podcast folder" \
    "$data_dir/$train_part/utt2emo" "$data_dir/$test_part/utt2emo"
fi

if run_stage 1; then
  for part in "$train_part" "$test_part"; do
    echo "stage 1: embeddings of the $part part"
    embed_once "$exp_dir/emb_$part" "$model" "$data_dir/msp_podcast_cuts_$part.jsonl.gz"
  done
fi

if run_stage 2; then
  echo "stage 2: $classifier probe trained on $train_part, tested on $test_part"
  # the utterances of the chosen classes, and one index of the embeddings of both parts
  for part in "$train_part" "$test_part"; do
    awk -v keep="$classes" 'BEGIN { n = split(keep, k, " "); for (i = 1; i <= n; i++) ok[k[i]] = 1 }
      ($2 in ok)' "$data_dir/$part/utt2emo" | update_file "$exp_dir/utt2emo_$part"
  done
  cat "$exp_dir/emb_$train_part/xvector.scp" "$exp_dir/emb_$test_part/xvector.scp" \
    | update_file "$exp_dir/xvector.scp"
  emotion_probe "$exp_dir" --embeddings "$exp_dir/xvector.scp" \
    --labels "$exp_dir/utt2emo_$train_part" --test-labels "$exp_dir/utt2emo_$test_part" \
    --classifier "$classifier"
fi

if run_stage 3; then
  echo "stage 3: results ($exp_dir/results.md)"
  {
    echo "| model | micro-F1 % | macro-F1 % | UAR % | split | Cho et al. 2022 (DINO) |"
    echo "|---|---|---|---|---|---|"
    emotion_report "$(cat "$exp_dir/emb_$test_part/model" 2> /dev/null || echo "$model")" \
      "$exp_dir" 56.98
    echo
    echo "MSP-Podcast, classes: $classes; $classifier probe on frozen embeddings, trained on" \
      "$train_part, tested on $test_part."
  } | write_results "$exp_dir/results.md"
fi
