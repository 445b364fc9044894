#!/usr/bin/env bash
# The margin-loss family side by side (the logit-level kinds and the margin heads) on the real CIFAR-10 subset
# (../shared/data/cifar-10-subset: 5,085 training and 1,017 test images): layer13 at the README's
# scaled protocol (width 0.25, 12 epochs, the official schedule respaced, batch 128, official
# augmentation), each kind at its FAMILY.md defaults through the shipped configs, three seeds
# each, then `lmsoftmax report` (one row per kind, the figures coloured per kind).
#
#   scripts/family_runs.sh [DATA_DIR] [OUT_DIR]
#   WIDTH=0.25 EPOCHS=12 SEEDS="0 1 2" CONFIGS="layer13 layer13_focal" scripts/family_runs.sh
#   PRECISIONS="fp32 bf16" scripts/family_runs.sh   # each run at both precisions (`--precision`)
#
# Runs already finished are kept and a killed one resumes, so the script can be rerun. The
# report table goes to OUT_DIR/report.md and the figures to OUT_DIR/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/cifar-10-subset}
OUT=${2:-target/family-runs}
WIDTH=${WIDTH:-0.25}
EPOCHS=${EPOCHS:-12}
SEEDS=${SEEDS:-"0 1 2"}
PRECISIONS=${PRECISIONS:-fp32}
CONFIGS=${CONFIGS:-"layer13 layer13_largemargin layer13_label_smoothing layer13_focal layer13_poly layer13_confidence_penalty layer13_cosface layer13_arcface layer13_combined layer13_subcenter_arcface layer13_sphereface layer13_lsoftmax"}
if [ ! -d "$DATA" ]; then
    echo "no CIFAR-10 folder at $DATA: pass the folder holding cifar-10-batches-py or -bin" >&2
    exit 2
fi
cargo build --release -p lmsoftmax
BIN=${CARGO_TARGET_DIR:-target}/release/lmsoftmax
mkdir -p "$OUT"
start=$(date +%s)
runs=()
for precision in $PRECISIONS; do
for config in $CONFIGS; do
    for seed in $SEEDS; do
        run="$OUT/$config-seed$seed"
        [ "$precision" != fp32 ] && run="$run-$precision"
        runs+=("$run")
        resume=()
        [ -f "$run/run.json" ] && resume=(--resume)
        [ -f "$run/summary.txt" ] && continue
        echo "== $config seed $seed (width $WIDTH, $EPOCHS epochs, $precision)"
        "$BIN" train --dataset cifar10 --data "$DATA" --arch layer13 --width "$WIDTH" \
            --config-name "$config" --epochs "$EPOCHS" --seed "$seed" --out-dir "$run" \
            --precision "$precision" --save-last-checkpoint --quiet -p 0 "${resume[@]}"
    done
done
done
echo "${#runs[@]} runs in $(( $(date +%s) - start )) s"
"$BIN" report "${runs[@]}" --out-dir "$OUT/figures" | tee "$OUT/report.md"
