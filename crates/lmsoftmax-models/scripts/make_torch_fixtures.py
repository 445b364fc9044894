#!/usr/bin/env python3
"""Builds the PyTorch fixtures for the layer13 checkpoint-interop test.

Run with the reference PyTorch environment:

    /root/.cache/lmsoftmax-torch-ref/bin/python crates/lmsoftmax-models/scripts/make_torch_fixtures.py

The full layer13 state_dict is ~18 MB, so this builds a width-reduced copy (every channel count
divided by 16: 8, 8, 8 | 16, 16, 16 | 32, 16, 8) with exactly the reference structure and
state_dict key names (`features.{0,3,6,10,...}.weight`, `features.{1,4,...}.{weight,bias,
running_mean,running_var,num_batches_tracked}`, `classifier.{weight,bias}`); the Rust side
builds it with `Layer13Config::new().with_width(0.0625)`.

Writes to crates/lmsoftmax-models/tests/data/:
  layer13_w0625.pt      state_dict (torch.save, zip format)
  layer13_w0625.json    input batch, eval-mode logits, train-mode logits and the first BN's
                        running statistics after that train-mode forward

It also builds width-reduced torchvision ResNets (Bottleneck v1.5, blocks [3, 4, 6, 3]) for the
ResNet checkpoint-interop test. `SmallResNet` subclasses torchvision's own `ResNet` and reuses its
`Bottleneck`, `_make_layer` and `forward`; only the hard-coded stem width (64) and stage
`planes` (64, 128, 256, 512) are divided by the width divisor, exactly as the Rust
`ResNetConfig::width` multiplier scales them (`round(c * width)`, exact here), and torchvision's
bottleneck width rule `int(planes * base_width / 64) * groups` is the Rust rule as long as it is
>= 1 (asserted). The state_dict key set is asserted equal to torchvision's `resnet50()`:
  resnet50_w0625.pt / .json           ResNet-50 at width 1/16 (stem 4, planes 4, 8, 16, 32,
                                      2048 / 16 = 128 features), Rust: `build("resnet50", 3, 10,
                                      0.0625, ..)`
  resnext50_4x32d_w03125.pt / .json   grouped (ResNeXt) variant at width 1/32, groups 4,
                                      width_per_group 32 (bottleneck width = 2 * planes, as in
                                      resnext50_32x4d); Rust: `ResNetConfig` with groups 4,
                                      width_per_group 32, width 1/32
The .json files hold the input batch (2x3x64x64, multiples of 1/8 so that the decimal text is
exact), eval-mode logits, train-mode logits, and the stem BN's (`bn1`) and the last bottleneck's
`layer4.2.bn3` running statistics after that train-mode forward, all computed in float64 from the
float32 weights and input (the .pt holds float32 tensors).

Pass fixture names (`layer13`, `resnet50`, `resnext`) to build only some; default: all.
"""

import json
import pathlib
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import Bottleneck, ResNet

WIDTH_DIV = 16
CHANNELS = [128, 128, 128, 256, 256, 256, 512, 256, 128]
PADDING = [1, 1, 1, 1, 1, 1, 0, 1, 1]


class Layer13(nn.Module):
    """models/layer13.py (ptype='max') with channel counts divided by WIDTH_DIV."""

    def __init__(self, in_channels=3, num_classes=10):
        super().__init__()
        layers = []
        c_in = in_channels
        for i, (c, p) in enumerate(zip(CHANNELS, PADDING)):
            c_out = c // WIDTH_DIV
            layers += [
                nn.Conv2d(c_in, c_out, 3, stride=1, padding=p, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if i in (2, 5):
                layers.append(nn.MaxPool2d(2, 2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data"


def make_layer13():
    torch.manual_seed(0)
    out_dir = OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)

    model = Layer13()
    # Non-trivial BN affine parameters, running statistics and classifier, so that loading every
    # tensor (and the BN weight/bias -> gamma/beta renaming) is exercised by the comparison.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        model.classifier.weight.normal_(0, 0.5)
        model.classifier.bias.normal_(0, 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 16, 16) * 2 + 0.5)

    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, out_dir / "layer13_w0625.pt")

    x = torch.randn(2, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        logits_eval = model(x)
    model.train()
    with torch.no_grad():
        logits_train = model(x)
    bn = model.features[1]
    fixture = {
        "width": 1.0 / WIDTH_DIV,
        "num_classes": 10,
        "input_shape": list(x.shape),
        "input": x.flatten().tolist(),
        "logits_eval": logits_eval.flatten().tolist(),
        "logits_train": logits_train.flatten().tolist(),
        "bn0_running_mean_after_train": bn.running_mean.tolist(),
        "bn0_running_var_after_train": bn.running_var.tolist(),
        "torch_version": torch.__version__,
    }
    (out_dir / "layer13_w0625.json").write_text(json.dumps(fixture))
    print("wrote", out_dir, "eval logits[0]", logits_eval[0, :3].tolist())


class SmallResNet(ResNet):
    """torchvision's ResNet with the stem width and every stage's `planes` divided by
    `width_div`. Same module tree, `_make_layer`, `Bottleneck` (v1.5), init and `forward` as
    torchvision; `ResNet.__init__` is mirrored line by line except for the channel counts."""

    def __init__(self, width_div, groups=1, width_per_group=64, num_classes=10):
        nn.Module.__init__(self)
        norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 64 // width_div
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        for planes in (64, 128, 256, 512):
            p = planes // width_div
            assert p * width_div == planes
            assert int(p * (width_per_group / 64.0)) >= 1, "Rust clamps the width to >= 1"
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, 64 // width_div, 3)
        self.layer2 = self._make_layer(Bottleneck, 128 // width_div, 4, stride=2)
        self.layer3 = self._make_layer(Bottleneck, 256 // width_div, 6, stride=2)
        self.layer4 = self._make_layer(Bottleneck, 512 // width_div, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 // width_div * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def eighths(shape):
    """Random input rounded to multiples of 1/8: exact in float32 and in short decimal text."""
    return torch.round((torch.randn(*shape) * 2 + 0.5) * 8) / 8


def make_resnet(name, width_div, groups, width_per_group, seed):
    torch.manual_seed(seed)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model = SmallResNet(width_div, groups, width_per_group, num_classes=10)
    reference = torchvision.models.resnet50(weights=None).state_dict()
    state = model.state_dict()
    assert list(state.keys()) == list(reference.keys()), "key layout differs from torchvision"
    for k, v in state.items():
        full = reference[k].shape
        if v.dim() == 4 and groups == 1:
            in_div = 1 if k == "conv1.weight" else width_div
            assert v.shape == (full[0] // width_div, full[1] // in_div, *full[2:]), k
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        model.fc.weight.normal_(0, 0.5)
        model.fc.bias.normal_(0, 0.1)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(eighths((8, 3, 64, 64)))

    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, OUT_DIR / f"{name}.pt")

    # The references are computed in float64 from the float32 weights and input: train-mode
    # BatchNorm over 16 bottlenecks amplifies rounding (PyTorch's own float32 train logits are
    # ~5e-5 of the largest logit off), so a float64 reference leaves the Rust float32 result a
    # single rounding budget instead of two.
    x = eighths((2, 3, 64, 64))
    model.double()
    model.eval()
    with torch.no_grad():
        logits_eval = model(x.double())
    model.train()
    with torch.no_grad():
        logits_train = model(x.double())
    last = model.layer4[2].bn3
    fixture = {
        "width": 1.0 / width_div,
        "groups": groups,
        "width_per_group": width_per_group,
        "num_classes": 10,
        "input_shape": list(x.shape),
        "input": x.flatten().tolist(),
        "logits_eval": logits_eval.flatten().tolist(),
        "logits_train": logits_train.flatten().tolist(),
        "bn1_running_mean_after_train": model.bn1.running_mean.tolist(),
        "bn1_running_var_after_train": model.bn1.running_var.tolist(),
        "last_bn_running_mean_after_train": last.running_mean.tolist(),
        "last_bn_running_var_after_train": last.running_var.tolist(),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
    }
    (OUT_DIR / f"{name}.json").write_text(json.dumps(fixture, separators=(",", ":")))
    print("wrote", name, "eval logits[0]", logits_eval[0, :3].tolist())


FIXTURES = {
    "layer13": make_layer13,
    "resnet50": lambda: make_resnet("resnet50_w0625", 16, 1, 64, seed=1),
    "resnext": lambda: make_resnet("resnext50_4x32d_w03125", 32, 4, 32, seed=2),
}


def main():
    names = sys.argv[1:] or list(FIXTURES)
    for name in names:
        FIXTURES[name]()


if __name__ == "__main__":
    main()
