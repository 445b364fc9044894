#!/usr/bin/env python3
"""Side-by-side training-step benchmark of layer13 (batch 128, CIFAR input): `lmsoftmax bench
train-step` against the PyTorch reference ../shared/bench/ref_layer13.py (same network, SGD
momentum 0.9, weight decay 1e-4), 1 and 2 threads, in one session. Also forward-only eval images/s.

Usage: scripts/bench_train_step.py [--shared ../shared] [--reps 5] [--warmup 2]
Prints a Markdown table; absolute times on shared 2-core machines drift, compare the ratios.
"""
import argparse
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TORCH_SIDE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, torch.nn as nn
import ref_layer13 as ref
from ref_loss import LargeMarginInSoftmaxLoss
threads, reps, warmup, loss = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.set_num_threads(threads)
ref.REPS, ref.WARMUP = reps, warmup
torch.manual_seed(0)
x = torch.randn(128, 3, 32, 32); y = torch.randint(0, 10, (128,))
crit = nn.CrossEntropyLoss() if loss == "softmax" else LargeMarginInSoftmaxLoss(reg_lambda=0.3)
m = ref.layer13(num_classes=10)
step_ms = ref.bench_train(m, crit, x, y)[0]
eval_ms = ref.bench_eval(m, x)
print(json.dumps({"step_ms": step_ms, "eval_images_per_s": 128 / (eval_ms / 1e3)}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    shared = Path(a.shared)
    subprocess.run(["cargo", "build", "--release", "-p", "lmsoftmax"], check=True, cwd=ROOT)
    python = subprocess.run(["bash", str(shared / "bench" / "setup-torch.sh")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    print("| threads | loss | ours step ms | PyTorch step ms | ours / PyTorch (step) | ours eval img/s "
          "| PyTorch eval img/s | ours / PyTorch (eval img/s) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for threads in (1, 2):
        for loss in ("large-margin", "softmax"):
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
            out = subprocess.run([str(ROOT / "target/release/lmsoftmax"), "bench", "train-step", "--arch", "layer13",
                                  "--batch-size", "128", "--loss", loss, "--reps", str(a.reps), "--warmup",
                                  str(a.warmup), "--json"], check=True, capture_output=True, text=True, env=env)
            o = json.loads(out.stdout.strip().splitlines()[-1])
            out = subprocess.run([python, "-c", TORCH_SIDE, str(shared / "bench"), str(threads), str(a.reps),
                                  str(a.warmup), loss], check=True, capture_output=True, text=True)
            t = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {threads} | {loss} | {o['step_ms']:.0f} | {t['step_ms']:.0f} | {o['step_ms'] / t['step_ms']:.2f} "
                  f"| {o['eval_images_per_s']:.0f} | {t['eval_images_per_s']:.0f} "
                  f"| {o['eval_images_per_s'] / t['eval_images_per_s']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
