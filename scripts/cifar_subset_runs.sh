#!/usr/bin/env bash
# Softmax vs large-margin on the real CIFAR-10 subset (../shared/data/cifar-10-subset: 5,085
# training and 1,017 test images), layer13 scaled down by a width multiplier so that the six runs
# (two losses x three seeds) finish in under an hour on 2 CPU cores, then `lmsoftmax report`:
# scripts/family_runs.sh restricted to the paper's two configurations.
#
#   scripts/cifar_subset_runs.sh [DATA_DIR] [OUT_DIR]
#   WIDTH=0.25 EPOCHS=12 SEEDS="0 1 2" scripts/cifar_subset_runs.sh
#   PRECISIONS="fp32 bf16" scripts/cifar_subset_runs.sh   # both precisions, bf16 runs in *-bf16
#
# The report table goes to OUT_DIR/report.md and the figures to OUT_DIR/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIGS="layer13 layer13_largemargin" exec scripts/family_runs.sh \
    "${1:-../shared/data/cifar-10-subset}" "${2:-target/cifar-subset-runs}"
