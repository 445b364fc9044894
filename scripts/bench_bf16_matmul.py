#!/usr/bin/env python3
"""PyTorch's `bf16 @ bf16` on one CPU thread for the shapes of
`cargo run --release -p lmsoftmax-kernels --example bf16_gemm_rate` (best of 15 runs, GFLOP/s),
and a bf16 channels_last 3x3 convolution of layer13's first 32x32 layer (batch 128).

Usage: scripts/bench_bf16_matmul.py [--python PATH]   (default: the CPU reference venv of
../shared/bench/setup-torch.sh)
"""
import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TORCH_SIDE = r"""
import time, torch
import torch.nn.functional as F
torch.set_num_threads(1)
def best(f, reps=15):
    f()
    b = float("inf")
    for _ in range(reps):
        t = time.perf_counter(); f(); b = min(b, time.perf_counter() - t)
    return b
for m, n, k in [(256, 4096, 2304), (128, 8192, 1152), (512, 1024, 4608)]:
    a = torch.randn(m, k).bfloat16(); b = torch.randn(k, n).bfloat16()
    s = best(lambda: a @ b)
    print(f"[{m}, {k}] x [{k}, {n}]: {s * 1e3:.1f} ms, {2 * m * n * k / s / 1e9:.1f} GFLOP/s")
x = torch.randn(128, 128, 32, 32).bfloat16().to(memory_format=torch.channels_last)
w = torch.randn(128, 128, 3, 3).bfloat16().to(memory_format=torch.channels_last)
s = best(lambda: F.conv2d(x, w, padding=1), reps=5)
print(f"conv 128 -> 128 at 32x32, batch 128: {s * 1e3:.1f} ms, {2 * 128 * 1024 * 128 * 128 * 9 / s / 1e9:.1f} GFLOP/s")
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", help="a Python with torch (default: the CPU reference venv)")
    a = ap.parse_args()
    python = a.python or subprocess.run(["bash", str(ROOT.parent / "shared" / "bench" / "setup-torch.sh")],
                                        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    sys.exit(subprocess.run([python, "-c", TORCH_SIDE]).returncode)


if __name__ == "__main__":
    main()
