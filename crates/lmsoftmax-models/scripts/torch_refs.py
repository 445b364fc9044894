"""The PyTorch reference networks behind `lmsoftmax_models::torch_state_keys` and
`export_safetensors`, by architecture name, for `make_torch_keys.py` and `check_export.py`.

* `layer13`: the class of `ref_layer13.py` (the official `models/layer13.py` rebuilt from its
  layer table), found in `--ref-dir` / `$LMSOFTMAX_REF_DIR` (default `/work/shared/bench`).
* `resnet50`, `resnext50_32x4d`, `densenet169`, `vgg{11,13,16,19}[_bn]`: torchvision's own
  constructors (`weights=None`).
* `vgg{11,13,16,19}{orig,bow}[_bn]`: `RepoVgg` below, written afresh from the official
  `models/vgg.py` layer table (PROTOCOL.md 4.2-4.3): `features` is an `nn.Sequential` of
  conv3x3 (bias) [+ BatchNorm2d(eps 1e-4)] + ReLU per conv and MaxPool2d(2, 2) per 'M', the
  bow variants ending in the 1x1 'W' conv 512 -> 4096 [+ BN] + ReLU instead of the last pool;
  `classifier` is Linear [+ BatchNorm1d(eps 1e-4)] + ReLU per hidden layer (two for `orig`
  after a 7x7 adaptive average pool, one for `bow` after a 1x1 one) and a last Linear; no
  dropout; init N(0, 0.01) for every conv / linear weight, biases 0, BN 1 / 0.
"""

import importlib
import os
import sys

import torch
import torch.nn as nn
import torchvision

DEFAULT_REF_DIR = "/work/shared/bench"

_CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}


class RepoVgg(nn.Module):
    """The official repo's VGG `orig` / `bow` variants (see the module docstring)."""

    def __init__(self, depth, bow, batch_norm, num_classes=1000):
        super().__init__()
        plan = list(_CFGS[depth])
        if bow:
            plan[-1] = "W"
        layers, c_in = [], 3
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            c_out, k = (4096, 1) if item == "W" else (item, 3)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=k, padding=k // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out, eps=1e-4))
            layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1 if bow else 7)
        dims = [4096, 4096] if bow else [512 * 49, 4096, 4096]
        head = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            head.append(nn.Linear(d_in, d_out))
            if batch_norm:
                head.append(nn.BatchNorm1d(d_out, eps=1e-4))
            head.append(nn.ReLU(inplace=True))
        head.append(nn.Linear(dims[-1], num_classes))
        self.classifier = nn.Sequential(*head)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _repo_vgg(arch):
    rest = arch[3:]
    depth = int(rest[:2])
    tail = rest[2:]
    if depth not in _CFGS or tail not in ("orig", "orig_bn", "bow", "bow_bn"):
        return None
    return lambda num_classes: RepoVgg(depth, tail.startswith("bow"), tail.endswith("_bn"), num_classes)


def layer13_class(ref_dir=None):
    ref_dir = ref_dir or os.environ.get("LMSOFTMAX_REF_DIR", DEFAULT_REF_DIR)
    if ref_dir not in sys.path:
        sys.path.insert(0, ref_dir)
    return importlib.import_module("ref_layer13").layer13


def build(arch, num_classes, ref_dir=None):
    """The reference network `arch` with `num_classes` outputs."""
    if arch == "layer13":
        return layer13_class(ref_dir)(num_classes=num_classes)
    if arch in ("resnet50", "resnext50_32x4d", "densenet169") or (
        arch.startswith("vgg") and arch[3:5].isdigit() and arch[5:] in ("", "_bn")
    ):
        return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    make = _repo_vgg(arch) if arch.startswith("vgg") else None
    if make is None:
        raise SystemExit(f"no PyTorch reference for `{arch}`")
    return make(num_classes)
