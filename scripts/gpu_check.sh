#!/usr/bin/env bash
# The GPU check, in two halves: `bundle` here (build everything, since the GPU machine has no
# package registry), `run` on the GPU machine (nothing is built there). All results go to one
# folder; `run` stays within 10 minutes of GPU time in total (each step has its own timeout).
#
#   scripts/gpu_check.sh bundle [BUNDLE]         # default BUNDLE: gpu-bundle (git-ignored)
#   scripts/gpu_check.sh run [--dry-run] BUNDLE[.tar.xz] OUT
#
# `bundle` builds, with `--features wgpu` (Burn's wgpu backend: Vulkan on Linux): the release
# `lmsoftmax` and the loss crate's test binary (PROFILE=test: the debug build the tests use,
# for a dry run), strips both, and copies them with the golden
# vectors, the CIFAR-10 subset (binary layout) and the Vulkan loader `libvulkan.so.1` into
# BUNDLE (164 MB; packed as BUNDLE.tar.xz, 37 MB). `run`, with the bundle and an NVIDIA driver
# that exposes Vulkan:
#
#   1. the loss's golden vectors on the GPU (the tests named `wgpu`: both implementations, the
#      fused one being our CubeCL kernel), LMSOFTMAX_REQUIRE_GPU=1 so a missing device fails;
#   2. `lmsoftmax bench train-step` for layer13 (batch 128) and resnet50 (batch 64) on wgpu beside
#      PyTorch CUDA on the same GPU (scripts/bench_train_step.py --device cuda), when a Python
#      with CUDA torch is there (PYTHON=..., else `python3`);
#   3. layer13 at full width on the CIFAR-10 subset, 30 epochs, softmax and large-margin, 2 seeds
#      each (the four runs side by side on the one GPU), then `lmsoftmax report`.
#
# `--dry-run` runs the same steps at toy sizes (width 0.125, 1 epoch, small batches, PyTorch on
# the CPU and layer13 only), so that everything up to the GPU can be tried on a machine with
# lavapipe only.
# The summary is OUT/summary.md; each step's log is beside it.
set -uo pipefail
cd "$(dirname "$0")/.."

bundle() {
    local dir=${1:-gpu-bundle}
    set -e
    mkdir -p "$dir/bin" "$dir/lib" "$dir/golden" "$dir/golden-family" "$dir/data"
    # One build for both binaries (one copy of burn): the CLI tests' build makes the lmsoftmax
    # binary, the loss tests' the golden-vector tests. The README's test command's selection and
    # features, so PROFILE=test reuses its debug build.
    local profile=${PROFILE:-release}
    echo "== cargo test --profile $profile --no-run --workspace --features lmsoftmax/wgpu"
    local artifacts
    artifacts=$(cargo test --profile "$profile" --workspace --features lmsoftmax/wgpu --no-run \
        --message-format json | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    name, test = m["target"]["name"], m["profile"]["test"]
    if name == "lmsoftmax" and not test and "bin" in m["target"]["kind"]:
        print("lmsoftmax", m["executable"])
    if name == "loss" and test:
        print("loss-tests", m["executable"])')
    local want
    for want in lmsoftmax loss-tests; do
        local path
        path=$(awk -v w="$want" '$1 == w {print $2}' <<< "$artifacts" | tail -1)
        [ -n "$path" ] || { echo "the build made no $want binary" >&2; exit 1; }
        cp "$path" "$dir/bin/$want"
    done
    strip "$dir/bin/lmsoftmax" "$dir/bin/loss-tests"
    cp crates/lmsoftmax-loss/tests/data/golden/*.json "$dir/golden/"
    cp crates/lmsoftmax-loss/tests/data/golden-family/*.json "$dir/golden-family/"
    local data=${DATA:-../shared/data/cifar-10-subset}
    [ -d "$data/cifar-10-batches-bin" ] || { echo "no CIFAR-10 subset at $data (DATA=...)" >&2; exit 1; }
    cp -r "$data/cifar-10-batches-bin" "$dir/data/"
    local loader
    loader=$(ldconfig -p | awk '/libvulkan.so.1 / {print $NF; exit}')
    [ -n "$loader" ] || { echo "no libvulkan.so.1 here: apt-get install libvulkan1" >&2; exit 1; }
    cp -L "$loader" "$dir/lib/libvulkan.so.1"
    cp scripts/bench_train_step.py "$dir/"
    mkdir -p "$dir/shared/bench"
    cp ../shared/bench/ref_layer13.py ../shared/bench/ref_loss.py "$dir/shared/bench/"
    (cd "$dir" && find . -type f ! -name MANIFEST.sha256 -exec sha256sum {} + | sort -k2 > MANIFEST.sha256)
    # packed for carrying: the binaries shrink to a fraction
    tar -cJf "$dir.tar.xz" -C "$(dirname "$dir")" "$(basename "$dir")"
    du -sh "$dir" "$dir.tar.xz"
    echo "bundle ready: carry $dir.tar.xz (or $dir) to the GPU machine and run"
    echo "  scripts/gpu_check.sh run $dir.tar.xz OUT"
}

run() {
    local dry=0
    if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
    local dir=${1:?BUNDLE}
    local out=${2:?OUT}
    [ -e "$dir" ] || { echo "no bundle at $dir: make one with scripts/gpu_check.sh bundle" >&2; exit 2; }
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    if [ -f "$dir" ]; then
        # the packed bundle (BUNDLE.tar.xz, what `bundle` leaves for carrying)
        tar -xJf "$dir" -C "$out" || { echo "cannot unpack $dir" >&2; exit 1; }
        dir="$out/$(basename "$dir" .tar.xz)"
    fi
    dir=$(cd "$dir" && pwd)
    local summary="$out/summary.md"
    local bin="$dir/bin/lmsoftmax"
    # the bundled Vulkan loader, used only when the machine has none
    if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then
        export LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    (cd "$dir" && sha256sum --quiet -c MANIFEST.sha256) || { echo "the bundle is damaged" >&2; exit 1; }
    local start
    start=$(date +%s)
    {
        echo "# GPU check ($(date -u +%FT%TZ)$([ $dry = 1 ] && echo ', dry run: toy sizes'))"
        echo
        echo '```'
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | head -5 || true
        ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || echo "(no Vulkan ICD folder)"
        echo '```'
    } > "$summary"

    # Sizes: the real check, or toy sizes for the dry run.
    local width=1 epochs=30 seeds="0 1" l13_batch=128 r50_batch=64 reps=5 warmup=2 torch_device=cuda
    # GPU time: 60 + 2 x 90 + 330 = 570 s of the 600 allowed
    local t_golden=60 t_bench=90 t_train=330
    if [ $dry = 1 ]; then
        width=0.125 epochs=1 seeds="0" l13_batch=16 r50_batch=2 reps=1 warmup=1 torch_device=cpu
        # a software Vulkan device takes minutes for what a GPU does in seconds
        t_golden=300 t_bench=300 t_train=900
    fi

    echo "== 1. golden vectors on the GPU"
    local rc
    LMSOFTMAX_REQUIRE_GPU=1 LM_GOLDEN_DIR="$dir/golden" LM_FAMILY_GOLDEN_DIR="$dir/golden-family" \
        timeout "$t_golden" "$dir/bin/loss-tests" wgpu --nocapture > "$out/1-golden.log" 2>&1
    rc=$?
    {
        echo
        echo "## 1. Golden vectors on the wgpu device (exit $rc)"
        echo '```'
        grep -E "^test |checked|family golden|test result|SKIPPED|panicked" "$out/1-golden.log"
        echo '```'
    } >> "$summary"

    echo "== 2. bench train-step, ours on wgpu beside PyTorch on $torch_device"
    local python=${PYTHON:-python3}
    local archs="layer13:$l13_batch resnet50:$r50_batch"
    {
        echo
        echo "## 2. Training step (batch: layer13 $l13_batch, resnet50 $r50_batch)"
    } >> "$summary"
    local have_torch=0
    "$python" -c 'import torch, torchvision' 2>/dev/null && have_torch=1
    [ $have_torch = 1 ] || echo "- PyTorch: no torch + torchvision in $python (PYTHON=...): ours only" >> "$summary"
    for ab in $archs; do
        local arch=${ab%%:*} batch=${ab##*:}
        # PyTorch has no width multiplier: side by side at full width only (not in the dry run)
        if [ $have_torch = 1 ] && [ $dry = 0 ]; then
            timeout "$t_bench" "$python" "$dir/bench_train_step.py" --arch "$arch" \
                --batch-size "$batch" --threads "$(nproc)" --losses large-margin --reps "$reps" \
                --warmup "$warmup" --device "$torch_device" --ours-device wgpu \
                --binary "$bin" --python "$python" --shared "$dir/shared" \
                > "$out/2-side-by-side-$arch.log" 2>&1
            echo "- side by side, $arch, PyTorch on $torch_device (exit $?):" >> "$summary"
            grep '^|' "$out/2-side-by-side-$arch.log" >> "$summary"
        else
            local width_flag=()
            [ $dry = 1 ] && width_flag=(--width "$width")
            timeout "$t_bench" "$bin" bench train-step --arch "$arch" --batch-size "$batch" \
                --device wgpu --reps "$reps" --warmup "$warmup" "${width_flag[@]}" --json \
                > "$out/2-ours-$arch.log" 2>&1
            echo "- ours, $arch batch $batch (exit $?): $(grep -E '^[a-z0-9_]+ \(width' "$out/2-ours-$arch.log" | tail -1)" >> "$summary"
        fi
    done
    if [ $have_torch = 1 ] && [ $dry = 1 ]; then
        # the PyTorch side of the script, tried once at the toy batch on the CPU
        timeout "$t_bench" "$python" "$dir/bench_train_step.py" --arch layer13 --batch-size "$l13_batch" \
            --threads "$(nproc)" --losses large-margin --reps 1 --warmup 1 --device cpu \
            --ours-device wgpu --binary "$bin" --python "$python" --shared "$dir/shared" \
            > "$out/2-side-by-side-layer13.log" 2>&1
        echo "- side by side (dry run: full-width layer13, PyTorch on the CPU) (exit $?):" >> "$summary"
        grep '^|' "$out/2-side-by-side-layer13.log" >> "$summary"
    fi

    echo "== 3. layer13 width $width on the CIFAR-10 subset, $epochs epochs"
    local runs=() pids=()
    for config in layer13 layer13_largemargin; do
        for seed in $seeds; do
            local r="$out/runs/$config-seed$seed"
            runs+=("$r")
            timeout "$t_train" "$bin" train --dataset cifar10 --data "$dir/data" --arch layer13 \
                --width "$width" --config-name "$config" --epochs "$epochs" --seed "$seed" \
                --device wgpu --out-dir "$r" --quiet -p 0 > "$out/3-train-$config-seed$seed.log" 2>&1 &
            pids+=($!)
        done
    done
    local failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    "$bin" report "${runs[@]}" --out-dir "$out/figures" > "$out/3-report.md" 2>&1
    {
        echo
        echo "## 3. layer13 (width $width), CIFAR-10 subset, $epochs epochs, seeds $seeds ($failed of ${#runs[@]} runs failed or timed out)"
        echo
        cat "$out/3-report.md"
        echo
        echo "Total: $(( $(date +%s) - start )) s"
    } >> "$summary"
    cat "$summary"
}

case "${1:-}" in
    bundle) shift; bundle "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n 2,24p "$0" >&2; exit 2 ;;
esac
