#!/usr/bin/env bash
# Softmax vs large-margin on the real CIFAR-10 subset (../shared/data/cifar-10-subset: 5,085
# training and 1,017 test images), layer13 scaled down by a width multiplier so that the six runs
# (two losses x three seeds) finish in under an hour on 2 CPU cores, then `lmsoftmax report`.
#
#   scripts/cifar_subset_runs.sh [DATA_DIR] [OUT_DIR]
#   WIDTH=0.25 EPOCHS=12 SEEDS="0 1 2" scripts/cifar_subset_runs.sh
#
# The report table goes to OUT_DIR/report.md and the figures to OUT_DIR/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/cifar-10-subset}
OUT=${2:-target/cifar-subset-runs}
WIDTH=${WIDTH:-0.25}
EPOCHS=${EPOCHS:-12}
SEEDS=${SEEDS:-"0 1 2"}
if [ ! -d "$DATA" ]; then
    echo "no CIFAR-10 folder at $DATA: pass the folder holding cifar-10-batches-py or -bin" >&2
    exit 2
fi
cargo build --release -p lmsoftmax
BIN=target/release/lmsoftmax
mkdir -p "$OUT"
start=$(date +%s)
for config in layer13 layer13_largemargin; do
    for seed in $SEEDS; do
        run="$OUT/$config-seed$seed"
        resume=()
        [ -f "$run/run.json" ] && resume=(--resume)
        [ -f "$run/summary.txt" ] && continue
        echo "== $config seed $seed (width $WIDTH, $EPOCHS epochs)"
        "$BIN" train --dataset cifar10 --data "$DATA" --arch layer13 --width "$WIDTH" \
            --config-name "$config" --epochs "$EPOCHS" --seed "$seed" --out-dir "$run" \
            --save-last-checkpoint --quiet -p 0 "${resume[@]}"
    done
done
echo "six runs in $(( $(date +%s) - start )) s"
"$BIN" report "$OUT"/layer13*-seed* --out-dir "$OUT/figures" | tee "$OUT/report.md"
