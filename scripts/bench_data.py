#!/usr/bin/env python3
"""Side-by-side input-pipeline benchmark: `lmsoftmax bench data` against torchvision's DataLoader
doing the same work (read, augment, batch into tensors), in one session on the same cores.

1. CIFAR-10 (the real subset in ../shared/data), batch 128, pad-4 crop + flip + normalise,
   1 and 2 workers, 2 epochs.
2. ImageFolder: JPEG decode + RandomResizedCrop(224) + flip + ColorJitter(0.4) + PCA lighting +
   normalise, on a folder of 320x240 JPEGs made from the CIFAR subset (upscaled), 1 and 2 workers.

Usage: scripts/bench_data.py [--shared ../shared] [--images 600]
Prints a Markdown table of images/s and ratios.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TORCH_SIDE = r"""
import json, pickle, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

kind, path, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)

class Lighting:
    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
    def __call__(self, img):
        alpha = torch.randn(3) * 0.1
        return img + (self.eigvec * alpha * self.eigval).sum(1).view(3, 1, 1)

class CifarPickles(Dataset):
    def __init__(self, folder, transform):
        xs, ys = [], []
        for i in range(1, 6):
            with open(Path(folder) / f"data_batch_{i}", "rb") as f:
                d = pickle.load(f, encoding="latin1")
            xs.append(d["data"]); ys += d["labels"]
        self.x = np.concatenate(xs).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.y = ys; self.transform = transform
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return self.transform(Image.fromarray(self.x[i])), self.y[i]

if kind == "cifar":
    tf = T.Compose([T.RandomCrop(32, padding=4, fill=(125, 122, 113)), T.RandomHorizontalFlip(), T.ToTensor(),
                    T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
    ds = CifarPickles(path, tf)
else:
    tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor(),
                    Lighting(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ds = ImageFolder(str(Path(path) / "train"), tf)
loader = DataLoader(ds, batch_size=128, shuffle=True, num_workers=workers, persistent_workers=False)
start = time.perf_counter(); n = 0
for epoch in range(2):
    for x, y in loader:
        n += x.shape[0]
secs = time.perf_counter() - start
print(json.dumps({"images_per_s": n / secs, "images": n, "seconds": secs}))
"""


def torch_python(shared: Path) -> str:
    out = subprocess.run(["bash", str(shared / "bench" / "setup-torch.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def ours(args, workers):
    exe = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "lmsoftmax"
    out = subprocess.run([str(exe), "bench", "data", *args, "--batch-size", "128", "--workers", str(workers),
                          "--epochs", "2", "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def theirs(python, kind, path, workers):
    out = subprocess.run([python, "-c", TORCH_SIDE, kind, str(path), str(workers)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_jpeg_folder(python, subset: Path, dest: Path, images: int):
    """train/ and val/ of upscaled CIFAR images as 320x240 JPEGs (PIL, quality 90)."""
    script = r"""
import pickle, sys
from pathlib import Path
import numpy as np
from PIL import Image
src, dest, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
with open(src / "data_batch_1", "rb") as f:
    d = pickle.load(f, encoding="latin1")
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
x = d["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
for split, count in (("train", n), ("val", max(n // 10, 10))):
    for i in range(count):
        folder = dest / split / names[d["labels"][i % len(x)]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i % len(x)]).resize((320, 240), Image.BILINEAR).save(folder / f"{i:05d}.jpg", quality=90)
"""
    subprocess.run([python, "-c", script, str(subset), str(dest), str(images)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--images", type=int, default=600)
    a = ap.parse_args()
    shared = Path(a.shared)
    subprocess.run(["cargo", "build", "--release", "-p", "lmsoftmax"], check=True, cwd=ROOT)
    python = torch_python(shared)
    subset = shared / "data" / "cifar-10-subset"
    print("| pipeline | workers | ours images/s | torchvision images/s | ours / torchvision |")
    print("|---|---:|---:|---:|---:|")
    for w in (1, 2):
        o = ours(["--dataset", "cifar10", "--data", str(subset)], w)
        t = theirs(python, "cifar", subset / "cifar-10-batches-py", w)
        print(f"| CIFAR-10 pad-crop-flip, batch 128 | {w} | {o['images_per_s']:.0f} | {t['images_per_s']:.0f} "
              f"| {o['images_per_s'] / t['images_per_s']:.1f} |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        make_jpeg_folder(python, subset / "cifar-10-batches-py", Path(tmp), a.images)
        for w in (1, 2):
            o = ours(["--dataset", "imagefolder", "--data", tmp], w)
            t = theirs(python, "folder", tmp, w)
            print(f"| ImageFolder JPEG 320x240, RandomResizedCrop 224 + jitter + lighting | {w} "
                  f"| {o['images_per_s']:.0f} | {t['images_per_s']:.0f} | {o['images_per_s'] / t['images_per_s']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
