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
"""

import json
import pathlib

import torch
import torch.nn as nn

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


def main():
    torch.manual_seed(0)
    out_dir = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data"
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


if __name__ == "__main__":
    main()
