#!/usr/bin/env python3
"""Builds the Pillow fixtures for the ColorJitter tests of lmsoftmax-data.

torchvision's ColorJitter on PIL images calls `adjust_brightness`, `adjust_contrast` and
`adjust_saturation` of `torchvision/transforms/_functional_pil.py`, which are
`ImageEnhance.Brightness / Contrast / Color(img).enhance(factor)`, i.e. Pillow's
`Image.blend(degenerate, img, factor)` (C `ImagingBlend`). This script runs exactly those
Pillow calls on a few small deterministic RGB images and records Pillow's output bytes, so the
Rust side can be held to byte-exact equality without Python at test time.

Run (any Python 3 with Pillow; numbers below were made with Pillow 13.0.0):

    python3 -m venv /tmp/pilenv && /tmp/pilenv/bin/pip install pillow
    /tmp/pilenv/bin/python crates/lmsoftmax-data/scripts/make_pil_fixtures.py

If torchvision is importable as well, the script also checks every recorded output against
torchvision's own functions (`torchvision.transforms.functional.adjust_*`, and `ColorJitter`
itself with its random parameters pinned) and stops if any byte differs; it says whether that
check ran.

Writes crates/lmsoftmax-data/tests/data/pil/color_jitter.json (about 77 kB):

    {"pillow": "<version>",
     "images": {"<name>": {"width": w, "height": h, "rgb": "<hex, row-major RGB bytes>"}},
     "cases": [{"image": "<name>",
                "steps": [["brightness" | "contrast" | "saturation", factor], ...],
                "out": "<hex, Pillow's RGB bytes after the steps in order>"}]}

Cases are every image with each single operation at each factor in FACTORS, and every image
with each of the 6 orders of the three operations for each factor triple in TRIPLES (ColorJitter
applies its operations in a random order). Factors are float32 values written as the float64
that holds them exactly: torchvision draws its factors as float32 tensors (`.item()` widens
them losslessly) and `ImagingBlend` takes a C float, so float32 factors are what both sides see.
"""

import itertools
import json
import os
import struct
import sys

from PIL import Image, ImageEnhance

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "pil")

# 0: all-degenerate, 0.6 / 1.4: ColorJitter(0.4)'s range ends, 0.999: just under 1 (the
# interpolation branch with values just below the input), 1.0: identity, two ordinary draws,
# 2.5: strong extrapolation (clipping at both ends).
FACTORS = [0.0, 0.6, 0.8137, 0.999, 1.0, 1.2291, 1.4, 2.5]
# (brightness, contrast, saturation) factors for the composed cases.
TRIPLES = [(0.6, 1.4, 0.999), (1.4, 0.6, 1.2291), (0.8137, 1.1, 0.0)]

ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
    "saturation": ImageEnhance.Color,
}


def f32(x):
    """The float32 nearest to x, as the float64 that holds it exactly."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def lcg_bytes(seed, n):
    """n pseudo-random bytes from a fixed 32-bit LCG (reproducible without numpy)."""
    out, s = bytearray(), seed
    for _ in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(s >> 24)
    return bytes(out)


def images():
    """name -> (width, height, RGB bytes)."""
    ims = {}
    w, h = 8, 6
    ims["gradient"] = (w, h, bytes(
        v for y in range(h) for x in range(w)
        for v in ((x * 255) // (w - 1), (y * 255) // (h - 1), (x * y * 37) % 256)))
    # the 8 corners of the RGB cube and 8 mid colours with 0 or 255 in them
    corners = [(r, g, b) for r in (0, 255) for g in (0, 255) for b in (0, 255)]
    mids = [(255, 128, 0), (0, 128, 255), (128, 0, 255), (255, 0, 128),
            (1, 254, 127), (254, 1, 128), (127, 127, 128), (255, 255, 254)]
    ims["extremes"] = (4, 4, bytes(v for p in corners + mids for v in p))
    ims["flat_grey"] = (5, 3, bytes([128, 128, 128] * 15))
    ims["flat_black"] = (3, 3, bytes(9 * 3))
    ims["flat_white"] = (3, 3, bytes([255] * 27))
    ims["flat_colour"] = (4, 2, bytes([200, 30, 90] * 8))
    # grey levels 100 and 101: the L mean is exactly 100.5, which ImageEnhance.Contrast rounds up
    ims["half_mean"] = (2, 1, bytes([100, 100, 100, 101, 101, 101]))
    ims["noise"] = (9, 7, lcg_bytes(12345, 9 * 7 * 3))
    return ims


def run_steps(img, steps):
    for op, f in steps:
        img = ENHANCERS[op](img).enhance(f)
    return img


def torchvision_check(ims, cases):
    """Re-runs every case through torchvision; returns False when it is not importable."""
    try:
        import torch
        import torchvision.transforms as T
        import torchvision.transforms.functional as TF
    except ImportError:
        return False
    fns = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
           "saturation": TF.adjust_saturation}
    index = {"brightness": 0, "contrast": 1, "saturation": 2}
    for case in cases:
        w, h, data = ims[case["image"]]
        img = Image.frombytes("RGB", (w, h), data)
        out = img
        for op, f in case["steps"]:
            out = fns[op](out, f)
        assert out.tobytes().hex() == case["out"], ("functional", case)
        if len(case["steps"]) == 3:
            # ColorJitter itself, with get_params pinned to this order and these factors
            factors = {op: f for op, f in case["steps"]}
            order = torch.tensor([index[op] for op, _ in case["steps"]] + [3])
            params = (order, factors["brightness"], factors["contrast"], factors["saturation"], None)
            jitter = T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)
            jitter.get_params = lambda *_args, p=params: p
            assert jitter(img).tobytes().hex() == case["out"], ("ColorJitter", case)
    return True


def main():
    ims = images()
    cases = []
    for name, (w, h, data) in ims.items():
        img = Image.frombytes("RGB", (w, h), data)
        for op in ENHANCERS:
            for f in FACTORS:
                steps = [[op, f32(f)]]
                cases.append({"image": name, "steps": steps, "out": run_steps(img, steps).tobytes().hex()})
        for triple in TRIPLES:
            factor = dict(zip(ENHANCERS, triple))
            for order in itertools.permutations(ENHANCERS):
                steps = [[op, f32(factor[op])] for op in order]
                cases.append({"image": name, "steps": steps, "out": run_steps(img, steps).tobytes().hex()})
    checked = torchvision_check(ims, cases)
    doc = {
        "pillow": Image.__version__,
        "images": {n: {"width": w, "height": h, "rgb": d.hex()} for n, (w, h, d) in ims.items()},
        "cases": cases,
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.normpath(os.path.join(OUT, "color_jitter.json"))
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases on {len(ims)} images to {path} ({os.path.getsize(path)} bytes); "
          f"torchvision cross-check: {'passed' if checked else 'not run (torchvision not importable)'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
