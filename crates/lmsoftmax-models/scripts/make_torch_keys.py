#!/usr/bin/env python3
"""Writes the PyTorch `state_dict` layouts that `torch_state_keys` / `export_safetensors` must
reproduce: crates/lmsoftmax-models/tests/data/torch_state_keys.json, a JSON object
`{arch: {"num_classes": C, "keys": [[key, shape, dtype], ...]}}` with dtype `F32` or `I64`,
for the reference networks of `torch_refs.py` at full width (layer13 at 10 classes, the
ImageNet networks at 1000).

    /root/.cache/lmsoftmax-torch-ref/bin/python crates/lmsoftmax-models/scripts/make_torch_keys.py
"""

import json
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import torch_refs  # noqa: E402

ARCHS = {
    "layer13": 10,
    "resnet50": 1000,
    "resnext50_32x4d": 1000,
    "densenet169": 1000,
    "vgg16": 1000,
    "vgg16_bn": 1000,
    "vgg16bow_bn": 1000,
    "vgg11orig": 1000,
    "vgg13bow": 1000,
    "vgg19orig_bn": 1000,
}

DTYPES = {torch.float32: "F32", torch.int64: "I64"}

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "torch_state_keys.json"


def main():
    torch.manual_seed(0)
    out = {}
    for arch, classes in ARCHS.items():
        with torch.device("meta"):  # shapes only, no memory
            model = torch_refs.build(arch, classes)
        keys = [[k, list(v.shape), DTYPES[v.dtype]] for k, v in model.state_dict().items()]
        out[arch] = {"num_classes": classes, "keys": keys}
        print(arch, len(keys), "keys")
    out["_versions"] = {"torch": torch.__version__, "torchvision": torch_refs.torchvision.__version__}
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print("wrote", OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
