#!/usr/bin/env python3
"""Checks a network exported by `lmsoftmax_models::export_safetensors` against its PyTorch
reference: loads the safetensors file into the reference model (`torch_refs.py`: ref_layer13.py
for layer13, torchvision for resnet50 / resnext50_32x4d / densenet169 / vgg*[_bn], the repo-VGG
rebuild for vgg*{orig,bow}[_bn]) with `load_state_dict(strict=True)`, runs it in eval mode on the
input stored next to it and compares with the logits the Rust network gave:

    passes iff  max |ours - torch| <= atol + rtol * max |torch|     (default atol 1e-5, rtol 1e-4)

with the PyTorch forward in float32 (the difference to a float64 forward is printed too).

The files come from the Rust example:

    cargo run --release -p lmsoftmax-models --example export_check -- resnet50 /tmp/export
    python crates/lmsoftmax-models/scripts/check_export.py \\
        /tmp/export/resnet50.safetensors resnet50 /tmp/export/resnet50.io.safetensors

`IO` is a safetensors file with `input` ([n, 3, h, w]) and `logits` ([n, classes]). Exit status 0
when the logits agree, 1 when they do not, 2 when the weights do not load strictly. Needs torch,
torchvision and numpy (`bash /work/shared/bench/setup-torch.sh`); the `safetensors` package is
used when installed, else a small reader of the format below.
"""

import argparse
import json
import pathlib
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import torch_refs  # noqa: E402

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    """{name: torch.Tensor} of a safetensors file."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(str(path))
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(array.copy())
    return out


def num_classes_of(arch, state, ref_dir):
    """Output width of the reference's last linear layer, read from the state_dict."""
    with torch.device("meta"):
        probe = torch_refs.build(arch, 1000, ref_dir)
    last = [name for name, m in probe.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    return state[f"{last}.weight"].shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", help="safetensors file written by export_safetensors")
    ap.add_argument("arch", help="architecture name, as given to the Rust export")
    ap.add_argument("io", help="safetensors file with `input` and our `logits`")
    ap.add_argument("--ref-dir", default=None, help="directory of ref_layer13.py "
                    f"(default $LMSOFTMAX_REF_DIR or {torch_refs.DEFAULT_REF_DIR})")
    ap.add_argument("--rtol", type=float, default=1e-4, help="relative to max |torch logit|")
    ap.add_argument("--atol", type=float, default=1e-5)
    args = ap.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    state = load_safetensors(args.weights)
    io = load_safetensors(args.io)
    x, ours = io["input"].float(), io["logits"].double()
    try:
        classes = num_classes_of(args.arch, state, args.ref_dir)
        model = torch_refs.build(args.arch, classes, args.ref_dir)
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError) as e:
        print(f"FAIL: {args.weights} does not load strictly into {args.arch}: {e}")
        return 2
    model.eval()
    with torch.no_grad():
        ref32 = model(x).double()
        ref64 = model.double()(x.double())
    diff32 = (ours - ref32).abs().max().item()
    diff64 = (ours - ref64).abs().max().item()
    torch_32_vs_64 = (ref32 - ref64).abs().max().item()
    scale = ref32.abs().max().item()
    bound = args.atol + args.rtol * scale
    ok = diff32 <= bound and ours.shape == ref32.shape
    print(f"{args.arch}: {len(state)} tensors loaded strictly; logits {list(ours.shape)}, "
          f"max |torch| {scale:.4g}")
    print(f"  max |ours - torch float32| = {diff32:.3e}   (bound {bound:.3e} = "
          f"{args.atol:g} + {args.rtol:g} * {scale:.4g})")
    print(f"  max |ours - torch float64| = {diff64:.3e};  torch float32 vs float64: {torch_32_vs_64:.3e}")
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
