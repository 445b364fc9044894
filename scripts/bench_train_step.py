#!/usr/bin/env python3
"""Side-by-side training-step benchmark: `lmsoftmax bench train-step` against PyTorch on the same
cores, in one session, with SGD momentum 0.9 and weight decay 1e-4 on both sides (the timing
loop of ../shared/bench/ref_layer13.py). Also forward-only eval images/s.

- layer13 (the default): batch 128, CIFAR input, against ../shared/bench/ref_layer13.py.
- a torchvision network (`--arch resnet50,resnext50_32x4d,...`: vgg16, vgg16_bn, resnet50,
  resnext50_32x4d, densenet169): 224x224 input, 1000 classes, against the torchvision model.

Usage: scripts/bench_train_step.py [--arch layer13] [--batch-size B] [--threads 1,2]
                                   [--losses large-margin,softmax] [--reps 5] [--warmup 2]
                                   [--device cpu|cuda] [--ours-device cpu|wgpu|cuda:0]
                                   [--binary PATH] [--python PATH]
                                   [--torch-layout nchw|channels_last] [--precision fp32|bf16]
                                   [--torch-precision fp32|bf16]
Prints a Markdown table (with each side's peak resident memory after the timed steps: the process's
`VmHWM` / `ru_maxrss`, the framework's own baseline included); absolute times on shared 2-core machines drift, compare the ratios.

On a GPU: `--device cuda` times PyTorch on CUDA (each step ends with `loss.item()`, eval with
`torch.cuda.synchronize()`), `--ours-device wgpu` our binary on the wgpu device (each step ends
with a device sync); `--binary` takes a prebuilt `lmsoftmax` (built with `--features wgpu`)
instead of building one, `--python` a Python with torch instead of the CPU reference venv.

What a PyTorch user runs beside the default fp32 NCHW step (issue 17's comparison):
`--torch-layout channels_last` puts the model and the batch in `torch.channels_last`;
`--torch-precision bf16` runs the forward under `torch.autocast(device, dtype=torch.bfloat16)`
(oneDNN's bf16 kernels, AMX where the CPU has it) with the loss in fp32 and the backward outside
autocast, as autocast's documentation has it. `--precision bf16` runs both sides in bf16 (ours:
`bench train-step --precision bf16`, whose bf16 products the header names); `--torch-precision`
sets PyTorch's alone. The table's header names both variants.

With `ONEDNN_VERBOSE=1` in the environment, PyTorch's side also prints oneDNN's per-primitive
lines to stderr (`...,exec,cpu,convolution,<implementation>,...,<problem>,<ms>`): each
convolution's forward, backward-data and backward-weights time, for a per-layer comparison with
`cargo run --release -p lmsoftmax-kernels --example conv_rate`.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TORCH_SIDE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, torch.nn as nn
import ref_layer13 as ref
from ref_loss import LargeMarginInSoftmaxLoss
threads, reps, warmup, loss = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
arch, batch, device = sys.argv[6], int(sys.argv[7]), sys.argv[8]
layout, precision = sys.argv[9], sys.argv[10]
torch.set_num_threads(threads)
ref.REPS, ref.WARMUP = reps, warmup
torch.manual_seed(0)
if arch == "layer13":
    classes, side = 10, 32
    m = ref.layer13(num_classes=classes)
else:
    import torchvision
    classes, side = 1000, 224
    m = getattr(torchvision.models, arch)(num_classes=classes)
x = torch.randn(batch, 3, side, side); y = torch.randint(0, classes, (batch,))
crit = nn.CrossEntropyLoss() if loss == "softmax" else LargeMarginInSoftmaxLoss(reg_lambda=0.3)
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    m, x, y = m.cuda(), x.cuda(), y.cuda()
    forward = m.forward
    def synced(*args, **kwargs):
        out = forward(*args, **kwargs)
        torch.cuda.synchronize()
        return out
    m.forward = synced  # bench_eval's timing then covers the GPU work
if layout == "channels_last":
    m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
if precision == "bf16":
    plain_forward = m.forward
    def autocast_forward(*args, **kwargs):
        with torch.autocast(device, dtype=torch.bfloat16):
            out = plain_forward(*args, **kwargs)
        return out.float()  # the loss in fp32, the backward outside autocast
    m.forward = autocast_forward
step_ms = ref.bench_train(m, crit, x, y)[0]
import resource
peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
eval_ms = ref.bench_eval(m, x)
name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
print(json.dumps({"step_ms": step_ms, "eval_images_per_s": batch / (eval_ms / 1e3), "device": name,
                  "peak_rss_mib": peak_rss_mib}))
"""


def mib(value):
    """A peak-memory cell: MiB, or a dash where the side could not measure it."""
    return "-" if value is None else f"{value:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--arch", default="layer13", help="comma-separated networks")
    ap.add_argument("--batch-size", type=int, help="default: 128 for layer13, 8 otherwise")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--losses", default="large-margin,softmax")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="PyTorch's device")
    ap.add_argument("--ours-device", default="cpu", help="our binary's --device (wgpu, cuda:0, ...)")
    ap.add_argument("--binary", help="a prebuilt lmsoftmax (default: cargo build --release)")
    ap.add_argument("--python", help="a Python with torch and torchvision (default: the CPU reference venv)")
    ap.add_argument("--torch-layout", default="nchw", choices=["nchw", "channels_last"],
                    help="PyTorch's memory format for the model and the batch")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="both sides: ours with --precision, PyTorch under autocast")
    ap.add_argument("--torch-precision", choices=["fp32", "bf16"],
                    help="PyTorch's alone (default: --precision); bf16: the forward under "
                         "torch.autocast(dtype=torch.bfloat16)")
    a = ap.parse_args()
    a.torch_precision = a.torch_precision or a.precision
    archs = a.arch.split(",")
    torchvision_archs = {"vgg16", "vgg16_bn", "resnet50", "resnext50_32x4d", "densenet169"}
    for arch in archs:
        if arch != "layer13" and arch not in torchvision_archs:
            ap.error(f"--arch {arch}: PyTorch has it only as layer13 or {sorted(torchvision_archs)}")
    shared = Path(a.shared)
    binary = a.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "-p", "lmsoftmax"], check=True, cwd=ROOT)
        binary = str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "lmsoftmax")
    python = a.python or subprocess.run(["bash", str(shared / "bench" / "setup-torch.sh")], check=True,
                                        capture_output=True, text=True).stdout.strip().splitlines()[-1]
    print(f"ours on {a.ours_device} ({a.precision}), PyTorch on {a.device} ({a.torch_precision}, {a.torch_layout})")
    ours_cpu = None
    print("| network | batch | threads | loss | ours step ms | PyTorch step ms | ours / PyTorch (step) "
          "| ours eval img/s | PyTorch eval img/s | ours / PyTorch (eval img/s) | ours peak MiB | PyTorch peak MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch in archs:
        batch = a.batch_size or (128 if arch == "layer13" else 8)
        for threads in map(int, a.threads.split(",")):
            for loss in a.losses.split(","):
                env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
                out = subprocess.run([binary, "bench", "train-step", "--arch", arch,
                                      "--batch-size", str(batch), "--loss", loss, "--reps", str(a.reps),
                                      "--warmup", str(a.warmup), "--device", a.ours_device,
                                      "--precision", a.precision, "--json"],
                                     check=True, capture_output=True, text=True, env=env)
                o = json.loads(out.stdout.strip().splitlines()[-1])
                ours_cpu = (f"ours: CPU {o['isa']}, bf16 units {o['bf16_units']}"
                            + (f"; bf16 products: {o['bf16_kernel']}" if o.get("bf16_kernel") else ""))
                out = subprocess.run([python, "-c", TORCH_SIDE, str(shared / "bench"), str(threads), str(a.reps),
                                      str(a.warmup), loss, arch, str(batch), a.device, a.torch_layout,
                                      a.torch_precision], check=True, capture_output=True,
                                     text=True)
                lines = out.stdout.strip().splitlines()
                if os.environ.get("ONEDNN_VERBOSE"):
                    # oneDNN's per-primitive lines (`exec`, its time in ms last), for per-layer times
                    print("\n".join(lines[:-1]), file=sys.stderr)
                t = json.loads(lines[-1])
                print(f"| {arch} | {batch} | {threads} | {loss} | {o['step_ms']:.0f} | {t['step_ms']:.0f} "
                      f"| {o['step_ms'] / t['step_ms']:.2f} | {o['eval_images_per_s']:.1f} "
                      f"| {t['eval_images_per_s']:.1f} | {o['eval_images_per_s'] / t['eval_images_per_s']:.2f} "
                      f"| {mib(o.get('peak_rss_mib'))} | {mib(t.get('peak_rss_mib'))} |",
                      flush=True)
    if ours_cpu:
        print(f"\n{ours_cpu}")


if __name__ == "__main__":
    main()
