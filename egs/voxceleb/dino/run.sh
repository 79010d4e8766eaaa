#!/usr/bin/env bash
# DINO on unlabelled VoxCeleb2 dev, then iterative pseudo-labeling, evaluated on VoxCeleb1
# (Cho et al. 2022; hyperion dinossl.v1 / ssl.v1). Speaker labels are never used for
# training; they only score the trials and measure the clusters.
#
#   stage 0: prepare VoxCeleb1/2, MUSAN and RIRs (Lhotse manifests, Kaldi lists, trials)
#   stage 1: DINO training (torchrun on --ngpu GPUs); with --average-last K the teacher
#            encoder is averaged over the last K epoch checkpoints (train.average_last)
#   stage 2: embed VoxCeleb1 and the AS-norm cohort with the DINO teacher (torchrun)
#   stage 3: cosine scoring of Vox1-O/E/H (cleaned lists), plain and with AS-norm
#   stage 4: pseudo-labeling rounds (cluster, margin-softmax fine-tuning; torchrun)
#   stage 5: embed and score again with the pseudo-labeled model
#   stage 6: export the final model (TorchScript and ONNX)
#   stage 7: results table (dino-speech report) -> EXP_DIR/results.md
#
# AS-norm cohort: --cohort-size utterances drawn at random (seeded) from VoxCeleb2 dev and
# embedded like the trials -- no speaker labels, unlike the usual cohort of Vox2 speaker mean
# embeddings, which a self-supervised recipe should not use. Top --top-n scores per side.
#
#   egs/voxceleb/dino/run.sh --vox1-dir /data/voxceleb1 --vox2-dir /data/voxceleb2 \
#       --musan-dir /data/musan --rirs-dir /data/RIRS_NOISES --ngpu 8
# See egs/voxceleb/dino/README.md for the reference numbers and the time of each stage.
set -euo pipefail

stage=0                 # first stage to run
stop_stage=7            # last stage to run
vox1_dir=""             # VoxCeleb1 root: wav/idXXXXX/<video>/NNNNN.wav and the trial lists
vox2_dir=""             # VoxCeleb2 root converted to wav/flac: dev/wav/idXXXXX/<video>/NNNNN.wav
musan_dir=""            # MUSAN folder (empty: augment with generated noise)
rirs_dir=""             # RIRS_NOISES folder (empty: generated room impulse responses)
data_dir=data           # prepared corpora: DATA_DIR/{voxceleb,musan,rirs}
exp_dir=exp/voxceleb_dino # models, embeddings, scores, exports and results.md
ngpu=8                  # GPUs (torchrun processes); 0 trains and embeds in one CPU process
nj=8                    # data preparation processes; audio reader workers per process
dino_config=""          # DINO config (empty: configs/dino_lresnet34_paper.yaml)
dino_overrides=""       # extra KEY=VALUE overrides of the DINO config, space-separated
average_last=0          # >1: average the teacher over the last K epochs (train.average_last)
pl_config=""            # pseudo-label config (empty: configs/pseudo_label_lresnet34.yaml)
pl_rounds=2             # pseudo-labeling rounds
pl_overrides=""         # extra KEY=VALUE overrides of the pseudo-label config, space-separated
trials="vox1_o_clean vox1_e_clean vox1_h_clean" # trial lists to score (DATA_DIR/voxceleb/*/trials_*)
cohort_size=20000       # AS-norm cohort: random VoxCeleb2 dev utterances
top_n=300               # AS-norm: top cohort scores per utterance
seed=0                  # seed of the cohort draw
export_formats="torchscript onnx" # stage 6 formats
# shellcheck disable=SC2034  # read by parse_options.sh for --help
help_message="DINO + iterative pseudo-labeling on VoxCeleb2 dev, scored on VoxCeleb1-O/E/H
(stages: see the top of $0 and egs/voxceleb/dino/README.md)."

# shellcheck source-path=SCRIPTDIR source=../../../utils/parse_options.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/parse_options.sh"
# shellcheck source-path=SCRIPTDIR source=../../../utils/stage_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../../utils/stage_lib.sh"

check_arguments "$@"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
dino_config=${dino_config:-$repo/configs/dino_lresnet34_paper.yaml}
pl_config=${pl_config:-$repo/configs/pseudo_label_lresnet34.yaml}
read -r -a dino_extra <<< "$dino_overrides"
read -r -a pl_extra <<< "$pl_overrides"
absolute_dirs data_dir exp_dir
vox=$data_dir/voxceleb
device=cuda
[ "$ngpu" -eq 0 ] && device=cpu

# embed NAME MODEL: VoxCeleb1 (EVAL_PART) and the cohort by MODEL into EXP_DIR/eval/NAME
embed() {
  launch embed --model "$2" --wav-scp "$vox/$eval_part/wav.scp" \
    --out-dir "$exp_dir/eval/$1/$eval_part" --device "$device" --num-workers "$nj" \
    "${progress[@]}"
  # a seeded random draw of --cohort-size Vox2 dev utterances (no speaker labels involved)
  launch embed --model "$2" --wav-scp "$vox/vox2_dev/wav.scp" --sample "$cohort_size" \
    --seed "$seed" --out-dir "$exp_dir/eval/$1/cohort" --device "$device" \
    --num-workers "$nj" "${progress[@]}"
}

# score NAME: every list in --trials, plain cosine (score.json) and AS-norm (asnorm.json),
# into EXP_DIR/eval/NAME/LIST
score() {
  local dir=$exp_dir/eval/$1 list trials_file
  for list in $trials; do
    trials_file=$vox/$eval_part/trials_$list
    if [ ! -f "$trials_file" ]; then
      echo "  $1: no $trials_file (VoxCeleb1 incomplete or list not given); skipping $list"
      continue
    fi
    dino-speech score --trials "$trials_file" --embeddings "$dir/$eval_part/xvector.scp" \
      --det-plot "$dir/$list/score.png" --json-out "$dir/$list/score.json"
    dino-speech score --trials "$trials_file" --embeddings "$dir/$eval_part/xvector.scp" \
      --norm asnorm --cohort "$dir/cohort/xvector.scp" --top-n "$top_n" \
      --json-out "$dir/$list/asnorm.json"
  done
}

if run_stage 0; then
  echo "stage 0: preparing corpora in $data_dir"
  require --vox1-dir "$vox1_dir" "the VoxCeleb1 root; --stage 1 uses the prepared manifests"
  require --vox2-dir "$vox2_dir" "the VoxCeleb2 root"
  dino-speech prepare voxceleb --vox1-dir "$vox1_dir" --vox2-dir "$vox2_dir" --out-dir "$vox" \
    --num-jobs "$nj"
  if [ -n "$musan_dir" ]; then
    dino-speech prepare musan --corpus-dir "$musan_dir" --out-dir "$data_dir/musan"
  fi
  if [ -n "$rirs_dir" ]; then
    dino-speech prepare rirs --corpus-dir "$rirs_dir" --out-dir "$data_dir/rirs" --num-jobs "$nj"
  fi
fi

# (after stage 0, which creates what these look for)
# augmentation manifests that exist, as overrides of the DINO / pseudo-label configs
augment_overrides=()
for corpus in musan rirs; do
  key=$([ "$corpus" = musan ] && echo musan_cuts || echo rir_cuts)
  if [ -f "$data_dir/$corpus/${corpus}_cuts_all.jsonl.gz" ]; then
    augment_overrides+=("data.$key=$data_dir/$corpus/${corpus}_cuts_all.jsonl.gz")
  else
    augment_overrides+=("data.$key=null")
  fi
done

# the VoxCeleb1 part holding the trial lists: all of VoxCeleb1 when both halves are
# there (Vox1-E and H need it), else its test set (Vox1-O only)
eval_part=vox1
[ -f "$vox/vox1/wav.scp" ] || eval_part=vox1_test

if run_stage 1; then
  echo "stage 1: DINO training ($dino_config) on $ngpu GPU(s) -> $exp_dir/dino"
  launch train dino --config "$dino_config" --exp-dir "$exp_dir/dino" --device "$device" \
    ${quiet[@]+"${quiet[@]}"} "data.train_cuts=$vox/voxceleb_cuts_vox2_dev.jsonl.gz" \
    "${augment_overrides[@]}" "train.average_last=$average_last" \
    ${dino_extra[@]+"${dino_extra[@]}"}
fi

if run_stage 2; then
  echo "stage 2: DINO teacher embeddings of $eval_part and the AS-norm cohort"
  embed dino "$exp_dir/dino"
fi

if run_stage 3; then
  echo "stage 3: scoring the DINO embeddings"
  score dino
fi

if run_stage 4; then
  echo "stage 4: $pl_rounds pseudo-labeling round(s) ($pl_config) -> $exp_dir/pl"
  launch pseudo-label run --config "$pl_config" --init "$exp_dir/dino" \
    --exp-dir "$exp_dir/pl" --rounds "$pl_rounds" --device "$device" \
    ${quiet[@]+"${quiet[@]}"} "data.train_cuts=$vox/voxceleb_cuts_vox2_dev.jsonl.gz" \
    "${augment_overrides[@]}" "eval.cuts=$vox/voxceleb_cuts_vox1_test.jsonl.gz" \
    "eval.trials=$vox/vox1_test/trials_vox1_o_clean" ${pl_extra[@]+"${pl_extra[@]}"}
fi

if run_stage 5; then
  echo "stage 5: embeddings and scores of the pseudo-labeled model"
  embed pl "$exp_dir/pl"
  score pl
fi

if run_stage 6; then
  final=dino
  [ -f "$exp_dir/pl/embedder.pt" ] && final=pl
  echo "stage 6: exporting the $final model"
  mkdir -p "$exp_dir/export"
  for format in $export_formats; do
    dino-speech export --model "$exp_dir/$final" --format "$format" \
      --out "$exp_dir/export/${final}_model.$([ "$format" = onnx ] && echo onnx || echo pt)"
  done
fi

if run_stage 7; then
  echo "stage 7: results ($exp_dir/results.md)"
  rows=()
  for list in $trials; do
    rows+=(--row "DINO teacher, $list" "$exp_dir/eval/dino/$list")
  done
  for list in $trials; do
    rows+=(--row "+ $pl_rounds pseudo-label rounds, $list" "$exp_dir/eval/pl/$list")
  done
  dino-speech report "${rows[@]}" --columns eer,min_dcf_0.01,asnorm_eer,asnorm_min_dcf_0.01 \
    --note "Cosine scoring; AS-norm with $cohort_size random VoxCeleb2 dev utterances, top $top_n." \
    --machine "$device" --time "DINO training" "$exp_dir/dino/summary.json" \
    --time pseudo-labeling "$exp_dir/pl/summary.json" --out "$exp_dir/results.md"
fi
