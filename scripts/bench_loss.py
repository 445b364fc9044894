#!/usr/bin/env python3
"""Side-by-side loss benchmark: `lmsoftmax bench loss --all` against the PyTorch reference
(shared/bench/ref_loss.py: F.cross_entropy and the official large-margin loss), 1 and 2 threads,
in one session. Prints a Markdown table of ratios (absolute times on shared machines are noise),
then one for the rest of the logit-level family (label smoothing, focal, Poly-1, confidence
penalty at their FAMILY.md defaults) against PyTorch versions of the same formulas written here,
and one for the margin heads (CosFace, ArcFace, combined, sub-centre ArcFace, SphereFace,
L-Softmax) on N x 128 embeddings, likewise against PyTorch versions written here.

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
HEADS = ["cosface", "arcface", "combined", "subcenter_arcface", "sphereface", "lsoftmax"]
EMBED_DIM = 128


def torch_python(shared: Path) -> str:
    out = subprocess.run(["bash", str(shared / "bench" / "setup-torch.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


TORCH_SIDE = r"""
import json, math, sys, time
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

# The margin heads from FAMILY.md section 2 (W [C*K, D] normalised rows; cross-entropy over the
# margin logits), defaults as there; lambda of SphereFace and L-Softmax at its first value, 1000.
def cosines(x, W, k=1):
    cos = F.normalize(x, dim=1) @ F.normalize(W, dim=1).t()
    return cos.view(len(x), -1, k).max(2).values if k > 1 else cos

def with_target(f, t, fy):
    return f.scatter(1, t[:, None], fy)

def cosface(x, t, W, s=30.0, m=0.35):
    cos = cosines(x, W)
    return F.cross_entropy(with_target(cos, t, cos.gather(1, t[:, None]) - m) * s, t)

def arcface(x, t, W, s=30.0, m=0.5, k=1):
    cos = cosines(x, W, k)
    cy = cos.gather(1, t[:, None])
    sin = (1 - cy * cy).clamp_min(1e-12).sqrt()
    fy = torch.where(cy > math.cos(math.pi - m), cy * math.cos(m) - sin * math.sin(m),
                     cy - m * math.sin(math.pi - m))
    return F.cross_entropy(with_target(cos, t, fy) * s, t)

def combined(x, t, W, s=30.0, m1=1.0, m2=0.5, m3=0.0):
    cos = cosines(x, W)
    theta = cos.gather(1, t[:, None]).clamp(-1 + 1e-7, 1 - 1e-7).acos()
    return F.cross_entropy(with_target(cos, t, torch.cos(m1 * theta + m2) - m3) * s, t)

def psi4(cy):
    k = (4 * cy.detach().clamp(-1, 1).acos() / math.pi).floor()
    c2 = cy * cy
    return (1 - 2 * (k % 2)) * (8 * c2 * c2 - 8 * c2 + 1) - 2 * k

def sphereface(x, t, W, lam=1000.0):
    cos = cosines(x, W)
    cy = cos.gather(1, t[:, None])
    return F.cross_entropy(with_target(cos, t, (lam * cy + psi4(cy)) / (1 + lam))
                           * x.norm(dim=1, keepdim=True), t)

def lsoftmax(x, t, W, lam=1000.0):
    plain = x @ W.t()
    cy = cosines(x, W).gather(1, t[:, None])
    scale = x.norm(dim=1, keepdim=True) * W.norm(dim=1)[t][:, None]
    fy = (lam * plain.gather(1, t[:, None]) + psi4(cy) * scale) / (1 + lam)
    return F.cross_entropy(with_target(plain, t, fy), t)

heads = {
    "cosface": (cosface, 1), "arcface": (arcface, 1), "combined": (combined, 1),
    "subcenter_arcface": (lambda x, t, W: arcface(x, t, W, k=3), 3),
    "sphereface": (sphereface, 1), "lsoftmax": (lsoftmax, 1),
}
D = int(sys.argv[4])

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
    e = torch.randn(n, D, dtype=torch.float32, requires_grad=True)
    for name, (f, k) in heads.items():
        W = (torch.randn(c * k, D) * 0.01).requires_grad_()
        def head_loss(x, t, f=f, W=W):
            W.grad = None
            return f(x, t, W)
        row[f"torch_{name}_ms"] = ref_loss.time_fwd_bwd(head_loss, e, t, reps=reps)[0]
    print(json.dumps(row))
"""


def run_ours(threads: int, reps: int):
    exe = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "lmsoftmax"
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([str(exe), "bench", "loss", "--all", "--json", "--reps", str(reps),
                          "--embed-dim", str(EMBED_DIM)],
                         check=True, capture_output=True, text=True, env=env)
    return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def run_torch(python: str, shared: Path, threads: int, reps: int):
    out = subprocess.run([python, "-c", TORCH_SIDE, str(shared / "bench"), str(threads), str(reps),
                          str(EMBED_DIM)],
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

    print()
    print("F.cross_entropy's time over ours, every logit-level kind (the README's table):")
    print()
    print("| threads | N x C | our CE | large-margin | label smoothing | focal | Poly | confidence penalty |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for threads, ours, theirs in results:
        for o, t in zip(ours, theirs):
            cells = [o["ce_ms"], o["fused_ms"]] + [o[f"{kind}_ms"] for kind in FAMILY]
            print(f"| {threads} | {o['n']} x {o['c']} | "
                  + " | ".join(f"{t['torch_ce_ms'] / ms:.2f}" for ms in cells) + " |", flush=True)

    print()
    print(f"| threads | N x C x D | head | ours / our CE on the N x C logits | PyTorch same formula / ours |")
    print("|---:|---|---|---:|---:|")
    for threads, ours, theirs in results:
        for o, t in zip(ours, theirs):
            for kind in HEADS:
                ms = o[f"{kind}_ms"]
                print(f"| {threads} | {o['n']} x {o['c']} x {EMBED_DIM} | {kind} | {ms / o['ce_ms']:.1f} "
                      f"| {t[f'torch_{kind}_ms'] / ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
