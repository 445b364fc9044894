#!/usr/bin/env bash
# Data-parallel scaling over MPI on one machine's CPU: layer13 (width W, default 0.25) on the real
# CIFAR-10 subset, one epoch at global batch 128, as 1 process with 2 threads and as 2 MPI ranks
# with 1 thread each; prints each run's images/s and the all-reduce's share of the training time
# (the share includes the wait for the slower rank).
#
#   scripts/mpi_scaling.sh [DATA_DIR]        (WIDTH=0.25 EPOCHS=1)
#
# Needs Open MPI (Debian: openmpi-bin libopenmpi-dev libclang-dev); builds lmsoftmax-mpi.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/cifar-10-subset}
WIDTH=${WIDTH:-0.25}
EPOCHS=${EPOCHS:-1}
command -v mpirun >/dev/null || { echo "mpirun not found: install openmpi-bin" >&2; exit 2; }
cargo build --release -p lmsoftmax --features mpi --bin lmsoftmax-mpi
BIN=target/release/lmsoftmax-mpi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
args=(train --dataset cifar10 --data "$DATA" --arch layer13 --width "$WIDTH" --config-name layer13_largemargin
      --epochs "$EPOCHS" --batch-size 128 --quiet -p 1000 --save-last-checkpoint)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== 1 process, 2 threads"
RAYON_NUM_THREADS=2 "$BIN" "${args[@]}" --out-dir "$OUT/one" 2>&1 | grep -E "^epoch" | sed 's/.*| //'
echo "== 2 MPI ranks, 1 thread each"
mpirun -np 2 --oversubscribe --bind-to none --mca btl self,tcp --mca btl_tcp_if_include lo \
    -x RAYON_NUM_THREADS=1 "$BIN" "${args[@]}" --out-dir "$OUT/two" 2>&1 | grep -E "^epoch|ranks:" | sed 's/.*| //'
