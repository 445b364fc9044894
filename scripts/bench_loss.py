#!/usr/bin/env python3
"""Side-by-side loss benchmark: `lmsoftmax bench loss --all` against the PyTorch reference
(shared/bench/ref_loss.py: F.cross_entropy and the official large-margin loss), 1 and 2 threads,
in one session. Prints a Markdown table of ratios (absolute times on shared machines are noise),
then one for the rest of the logit-level family (label smoothing, focal, Poly-1, confidence
penalty at their FAMILY.md defaults) against PyTorch versions of the same formulas written here.

Usage: scripts/bench_loss.py [--shared ../shared] [--reps 50]
The PyTorch side runs with the python of shared/bench/setup-torch.sh (installed if missing).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAMILY = ["label_smoothing", "focal", "poly", "confidence_penalty"]


def torch_python(shared: Path) -> str:
    out = subprocess.run(["bash", str(shared / "bench" / "setup-torch.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


TORCH_SIDE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch, torch.nn.functional as F
import ref_loss
threads, reps = int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
a = torch.randn(512, 512); t_end = time.perf_counter() + 2.0
while time.perf_counter() < t_end: a @ a
lm = ref_loss.LargeMarginInSoftmaxLoss(reg_lambda=0.3)
ce = lambda x, t: F.cross_entropy(x, t)

# The family from FAMILY.md's formulas, mean over rows, in the plainest PyTorch.
def target_log_prob(x, t):
    return F.log_softmax(x, 1).gather(1, t[:, None])[:, 0]

def focal(x, t, gamma=2.0):
    lpt = target_log_prob(x, t)
    return (-(1 - lpt.exp()) ** gamma * lpt).mean()

def poly(x, t, epsilon=1.0):
    lpt = target_log_prob(x, t)
    return (-lpt + epsilon * (1 - lpt.exp())).mean()

def confidence_penalty(x, t, beta=0.1):
    logp = F.log_softmax(x, 1)
    entropy = -(logp.exp() * logp).sum(1)
    return (F.nll_loss(logp, t, reduction="none") - beta * entropy).mean()

family = {
    "label_smoothing": lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
    "focal": focal,
    "poly": poly,
    "confidence_penalty": confidence_penalty,
}
for (n, c) in ref_loss.SHAPES:
    x = torch.randn(n, c, dtype=torch.float32, requires_grad=True)
    t = torch.randint(0, c, (n,))
    ce_ms = ref_loss.time_fwd_bwd(ce, x, t, reps=reps)[0]
    lm_ms = ref_loss.time_fwd_bwd(lm, x, t, reps=reps)[0]
    row = {"n": n, "c": c, "torch_ce_ms": ce_ms, "torch_lm_ms": lm_ms}
    for name, f in family.items():
        row[f"torch_{name}_ms"] = ref_loss.time_fwd_bwd(f, x, t, reps=reps)[0]
    print(json.dumps(row))
"""


def run_ours(threads: int, reps: int):
    exe = ROOT / "target" / "release" / "lmsoftmax"
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([str(exe), "bench", "loss", "--all", "--json", "--reps", str(reps)],
                         check=True, capture_output=True, text=True, env=env)
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def run_torch(python: str, shared: Path, threads: int, reps: int):
    out = subprocess.run([python, "-c", TORCH_SIDE, str(shared / "bench"), str(threads), str(reps)],
                         check=True, capture_output=True, text=True)
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--reps", type=int, default=50)
    args = ap.parse_args()
    shared = Path(args.shared)
    subprocess.run(["cargo", "build", "--release", "-p", "lmsoftmax"], check=True, cwd=ROOT)
    python = torch_python(shared)
    print("| threads | N x C | fused LM / our CE | official LM / fused LM | F.cross_entropy / fused LM "
          "| F.cross_entropy / our CE | composed LM / fused LM |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    results = []
    for threads in (1, 2):
        ours = run_ours(threads, args.reps)
        theirs = run_torch(python, shared, threads, args.reps)
        for o, t in zip(ours, theirs):
            assert (o["n"], o["c"]) == (t["n"], t["c"])
            print(f"| {threads} | {o['n']} x {o['c']} | {o['fused_ms'] / o['ce_ms']:.2f} "
                  f"| {t['torch_lm_ms'] / o['fused_ms']:.1f} | {t['torch_ce_ms'] / o['fused_ms']:.2f} "
                  f"| {t['torch_ce_ms'] / o['ce_ms']:.2f} | {o['composed_ms'] / o['fused_ms']:.1f} |",
                  flush=True)
        for o, t in zip(ours, theirs):
            print(f"<!-- {threads} threads raw ms: {json.dumps({**o, **t})} -->", file=sys.stderr)
        results.append((threads, ours, theirs))
    print()
    print("| threads | N x C | kind | ours / our CE | F.cross_entropy / ours | PyTorch same formula / ours |")
    print("|---:|---|---|---:|---:|---:|")
    for threads, ours, theirs in results:
        for o, t in zip(ours, theirs):
            for kind in FAMILY:
                ms = o[f"{kind}_ms"]
                print(f"| {threads} | {o['n']} x {o['c']} | {kind} | {ms / o['ce_ms']:.2f} "
                      f"| {t['torch_ce_ms'] / ms:.2f} | {t[f'torch_{kind}_ms'] / ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
