#!/usr/bin/env python3
"""Golden vectors of the large-margin in softmax cross-entropy loss, in numpy float64.

What it computes
----------------
For logits ``z`` of shape ``[N, C]`` or ``[N, C, d1, ..., dk]`` (class axis 1, every position one
row) and integer targets ``y``, the loss of T. Kobayashi, "Large-Margin In Softmax Cross-Entropy
Loss", BMVC 2019, with the options of ``shared/SPEC.md`` section 1 ("The loss", "Reductions and
options", "Numerics") and the file layout of its "Golden vectors" paragraph. Per kept row, with
``u = 1/(C-1)``, ``delta = deg_logit`` (0 when null), ``z'`` = ``z`` with ``z'_y = z_y - delta``::

    p     = softmax(z')                         log p_k = z'_k - logsumexp(z')
    ce    = -sum_c a_c log p_c                  a = w_y e_y            (no smoothing)
                                                a = (1-eps) w_y e_y + (eps/C) w   (smoothing eps)
    q_j   = softmax over the non-target logits  log q_j = z_j - logsumexp_{i != y} z_i
    reg   = 1/2 sum_{j != y} (q_j - u) log q_j  (= 1/2 [KL(q||U) + KL(U||q)] >= 0)

and the reductions: ``mean`` = ``sum_n ce_n / sum_n w_{y_n} + lambda * mean_n reg_n`` (the
regulariser is an unweighted mean over the kept rows), ``sum`` = both terms summed, ``none`` = per
row ``ce_n + lambda reg_n`` (0 for an ignored row). Rows whose target equals ``ignore_index`` are
dropped from both terms and from both normalisers; an empty normaliser contributes 0 (no NaN).

The gradient is written out analytically (no autograd), for the scalar ``S`` that is
differentiated (``loss`` for mean/sum, ``sum(loss * upstream)`` for none); with ``c_n`` the
coefficient of row ``n``'s ce and ``r_n`` that of its reg in ``S``::

    d ce  / d z_k = p_k sum_c a_c - a_k           (deg_logit shifts z', not the Jacobian)
    d reg / d z_y = 0
    d reg / d z_k = 1/2 (q_k (log q_k - sum_j q_j log q_j) + q_k - u)     for k != y
    d S   / d z_k = c_n d ce_n / d z_k + r_n d reg_n / d z_k

The reg derivative follows from ``d q_j / d z_k = q_j (delta_jk - q_k)`` over the non-target
classes and ``(C-1) u = 1``. Every case's gradient is checked against central finite differences
of the loss itself (``--no-fd`` skips that); the largest discrepancy is printed.

Numerics: the non-target softmax is computed directly (max and log-sum-exp over ``j != y``), not by
masking the target with ``z_y - 1e6`` as the official code does; ``log q`` stays finite where ``q``
underflows to 0, so ``q log q`` is an exact 0 there (the official ``log_softmax`` behaves alike).

Label smoothing (PyTorch semantics, the ce term only) is implemented and finite-difference tested
by ``--self-test``, but no stored golden case uses it: the golden layout has no field for it, and
the official code, which produced the stored files, has no such option.

Provenance and independence
---------------------------
The stored files in ``golden/`` (a copy of ``shared/golden``) were produced by the official
PyTorch code (tk1980/LargeMarginInSoftmax, ``models/modules/myloss.py``) in float64. This script
is a separate implementation written from the formulas above; it shares no code with that
generator. Its own inputs come from its own seeded generator (``numpy.random.default_rng``), so
``--out`` writes files with the same names, shapes, options and JSON layout as the stored ones but
different logits, targets, weights and upstream gradients. The real cross-check of the stored
values is ``--check``: it recomputes the loss and gradient from each stored file's own inputs.

Usage
-----
::

    python3 make_golden.py --check golden            # recompute every stored file, compare
    python3 make_golden.py --out DIR                 # regenerate every case into DIR
    python3 make_golden.py --out DIR --layout golden # ... and check DIR has golden's names/layout
    python3 make_golden.py --self-test               # finite differences on extra option mixes

``--check DIR`` prints, per file, the max absolute and max relative difference of loss and grad,
the finite-difference discrepancy and the largest share of the tolerance used, and exits with status 1 if any value differs by more than
``RTOL * |stored| + ATOL`` (``RTOL = 1e-12`` relative, ``ATOL = 1e-15`` absolute floor for values
near zero), if a finite-difference check exceeds ``FD_TOL``, if a file has a missing or unknown
field or inconsistent lengths, or if the folder holds no ``*.json``. Needs only numpy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# Tolerances of --check (stored vs recomputed): |got - want| <= RTOL * |want| + ATOL.
RTOL = 1e-12
ATOL = 1e-15
# Finite differences: |fd - analytic| <= FD_TOL * max(1, |analytic|) element-wise.
FD_TOL = 1e-6
FD_STEP = 1e-6  # relative step: h = FD_STEP * max(1, |z|)

# The fields of one golden file, in the order they are written.
FIELDS = (
    "name", "shape", "logits", "target", "reg_lambda", "deg_logit", "weight", "reduction",
    "ignore_index", "upstream", "loss", "grad",
)

# ---------------------------------------------------------------------------------------------
# The cases: one declarative list. Sizes share their inputs across families (the same seed), as
# the stored goldens do, so e.g. basic_8x10 and deg_8x10 differ only by deg_logit.
# ---------------------------------------------------------------------------------------------

# name suffix -> (shape, seed of its inputs)
SIZES = {
    "4x3": ([4, 3], 403),
    "8x10": ([8, 10], 810),
    "16x100": ([16, 100], 16100),
    "5x1000": ([5, 1000], 51000),
}

# (family prefix, name suffix after the size, options). Options not given take DEFAULTS.
# "weight": "uniform" draws class weights in [0.1, 1.1); "upstream": "normal" draws the upstream
# gradient of a "none" output from N(0, 1); "ignored_rows": every k-th row (from row 0) gets the
# target ignore_index, so each ignore case really drops rows. A dict value is chosen per size.
FAMILIES = [
    ("basic", "", {}),
    ("deg", "", {"deg_logit": 1.0}),
    ("ignore", "", {"ignore_index": {"4x3": 1, "8x10": 0, "16x100": 10, "5x1000": 950},
                    "ignored_rows": 3}),
    ("lambda0", "", {"reg_lambda": 0.0}),
    ("lambda1", "_sum", {"reg_lambda": 1.0, "reduction": "sum"}),
    ("none", "", {"reduction": "none", "upstream": "normal"}),
    ("weight", "", {"weight": "uniform"}),
]

# Cases outside the size x family grid.
SPECIAL = [
    # Extreme rows (SPEC "Numerics"): target dominating by 200, logits of magnitude ~1e3, an
    # all-equal row, a target 300 below the rest.
    {"name": "extreme_4x10", "shape": [4, 10], "seed": 410, "logits": "extreme",
     "target": [0, 3, 9, 5]},
    {"name": "extreme_4x10_none", "shape": [4, 10], "seed": 410, "logits": "extreme",
     "target": [0, 3, 9, 5], "reduction": "none", "upstream": "ones"},
    # Spatial input [N, C, H, W]: every (n, h, w) is one row.
    {"name": "spatial_2x5x3x4", "shape": [2, 5, 3, 4], "seed": 2534},
    {"name": "spatial_2x5x3x4_ignore", "shape": [2, 5, 3, 4], "seed": 2534,
     "ignore_index": 1, "ignored_rows": 4},
]

DEFAULTS = {
    "reg_lambda": 0.3, "deg_logit": None, "weight": None, "reduction": "mean",
    "ignore_index": None, "upstream": None, "logits": "normal", "target": "uniform",
    "ignored_rows": None, "label_smoothing": 0.0,
}

LOGIT_SCALE = 3.0  # "normal" logits: N(0, LOGIT_SCALE^2)


def case_specs() -> list[dict]:
    """Every case of the golden folder as a full spec (DEFAULTS filled in)."""
    specs = []
    for prefix, suffix, options in FAMILIES:
        for size, (shape, seed) in SIZES.items():
            chosen = {k: v[size] if isinstance(v, dict) else v for k, v in options.items()}
            specs.append({**DEFAULTS, "name": f"{prefix}_{size}{suffix}", "shape": shape,
                          "seed": seed, **chosen})
    specs.extend({**DEFAULTS, **special} for special in SPECIAL)
    return sorted(specs, key=lambda s: s["name"])


# ---------------------------------------------------------------------------------------------
# Inputs from a spec (own seeded generator: each quantity has its own stream, so adding weights or
# an upstream gradient to a case does not change its logits or targets).
# ---------------------------------------------------------------------------------------------

def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _extreme_rows(rows: int, classes: int, target: np.ndarray, rng: np.random.Generator):
    """Row kinds in turn: dominant target (+200), wide (|z| ~ 1e3), all equal (0), sunk (-300)."""
    z = np.empty((rows, classes))
    for n in range(rows):
        kind = n % 4
        if kind == 0:
            z[n] = rng.normal(0.0, 1.0, classes)
            z[n, target[n]] = 200.0
        elif kind == 1:
            z[n] = rng.uniform(-1250.0, 1250.0, classes)
        elif kind == 2:
            z[n] = 0.0
        else:
            z[n] = rng.normal(0.0, 1.0, classes)
            z[n, target[n]] = -300.0
    return z


def make_inputs(spec: dict) -> dict:
    """Logits (in the case's shape), targets, weight and upstream for a spec."""
    shape = list(spec["shape"])
    classes = shape[1]
    target_shape = [shape[0]] + shape[2:]
    rows = int(np.prod(target_shape))
    seed = spec["seed"]

    if spec["target"] == "uniform":
        target = _rng(seed, 1).integers(0, classes, rows)
    else:
        target = np.asarray(spec["target"], dtype=np.int64)
    if spec["ignored_rows"]:
        target[:: spec["ignored_rows"]] = spec["ignore_index"]

    if spec["logits"] == "normal":
        # Draw in the layout [N, d..., C] of rows, then move the class axis to position 1.
        rowwise = _rng(seed, 0).normal(0.0, LOGIT_SCALE, (rows, classes))
    elif spec["logits"] == "extreme":
        rowwise = _extreme_rows(rows, classes, target, _rng(seed, 0))
    else:
        raise ValueError(f"{spec['name']}: unknown logits kind {spec['logits']!r}")
    logits = np.moveaxis(rowwise.reshape(target_shape + [classes]), -1, 1)

    weight = spec["weight"]
    if weight == "uniform":
        weight = _rng(seed, 2).uniform(0.1, 1.1, classes)
    upstream = spec["upstream"]
    if upstream == "normal":
        upstream = _rng(seed, 3).normal(0.0, 1.0, rows)
    elif upstream == "ones":
        upstream = np.ones(rows)
    return {"logits": logits, "target": target.reshape(target_shape), "weight": weight,
            "upstream": upstream}


# ---------------------------------------------------------------------------------------------
# The loss and its analytic gradient.
# ---------------------------------------------------------------------------------------------

def _rows(logits: np.ndarray) -> np.ndarray:
    """[N, C, d...] -> [N * prod(d), C], rows in the row-major order of the target."""
    return np.moveaxis(logits, 1, -1).reshape(-1, logits.shape[1])


def _unrows(rows: np.ndarray, shape) -> np.ndarray:
    """Inverse of _rows for logits of `shape`."""
    shape = list(shape)
    return np.moveaxis(rows.reshape([shape[0]] + shape[2:] + [shape[1]]), -1, 1)


def large_margin_loss(logits, target, *, reg_lambda=0.3, deg_logit=None, weight=None,
                      reduction="mean", ignore_index=None, label_smoothing=0.0, upstream=None,
                      with_grad=True):
    """Loss (flat: one value, or one per row for "none") and d S / d logits (logits' shape).

    ``S`` is the loss for mean/sum and ``sum(loss * upstream)`` for none (``upstream`` defaults
    to ones). All arithmetic in float64.

    >>> z = np.array([[0.0, 0.0, 0.0]]); y = np.array([0])
    >>> loss, grad = large_margin_loss(z, y)
    >>> bool(np.isclose(loss[0], np.log(3.0)))      # equal non-targets: reg = 0, ce = log C
    True
    """
    logits = np.asarray(logits, dtype=np.float64)
    z = _rows(logits)
    rows, classes = z.shape
    y = np.asarray(target, dtype=np.int64).reshape(-1)
    if classes < 2 or y.shape[0] != rows:
        raise ValueError(f"need C >= 2 and one target per row: logits {logits.shape}, "
                         f"{y.shape[0]} targets")
    kept = np.ones(rows, bool) if ignore_index is None else y != ignore_index
    if np.any((y[kept] < 0) | (y[kept] >= classes)):
        raise ValueError(f"target out of [0, {classes})")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"non-finite logits in rows {np.nonzero(~np.isfinite(z).all(1))[0]}")
    w = np.ones(classes) if weight is None else np.asarray(weight, dtype=np.float64)
    eps = float(label_smoothing)
    delta = 0.0 if deg_logit is None else float(deg_logit)

    yk = np.where(kept, y, 0)  # a valid class for ignored rows; their coefficients are 0
    ar = np.arange(rows)
    is_target = np.zeros((rows, classes), bool)
    is_target[ar, yk] = True

    # Cross-entropy on z' (the target logit lowered by delta).
    zp = z - delta * is_target
    m = zp.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(zp - m).sum(axis=1, keepdims=True))
    logp = zp - lse
    a = (1.0 - eps) * w[yk][:, None] * is_target + (eps / classes) * w[None, :]
    ce = -(a * logp).sum(axis=1)

    # Regulariser on the non-target logits only (target excluded by -inf, not by a finite mask).
    znt = np.where(is_target, -np.inf, z)
    mq = znt.max(axis=1, keepdims=True)
    lseq = mq + np.log(np.exp(znt - mq).sum(axis=1, keepdims=True))
    logq = np.where(is_target, 0.0, znt - lseq)  # 0 placeholder on the target (q_y := 0)
    q = np.where(is_target, 0.0, np.exp(logq))
    u = 1.0 / (classes - 1)
    reg = 0.5 * np.where(is_target, 0.0, (q - u) * logq).sum(axis=1)

    # Per-row coefficients of ce and reg in the reported loss.
    kept_f = kept.astype(np.float64)
    if reduction == "mean":
        wsum = float((w[yk] * kept_f).sum())
        nkept = float(kept_f.sum())
        c = kept_f / wsum if wsum > 0 else np.zeros(rows)
        r = reg_lambda * kept_f / nkept if nkept > 0 else np.zeros(rows)
        loss = np.array([(c * ce).sum() + (r * reg).sum()])
    elif reduction == "sum":
        c = kept_f
        r = reg_lambda * kept_f
        loss = np.array([(c * ce).sum() + (r * reg).sum()])
    elif reduction == "none":
        loss = np.where(kept, ce + reg_lambda * reg, 0.0)
        up = np.ones(rows) if upstream is None else np.asarray(upstream, np.float64).reshape(-1)
        c = kept_f * up
        r = reg_lambda * kept_f * up
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    if not with_grad:
        return loss, None

    # Analytic gradient of S = sum_n c_n ce_n + r_n reg_n.
    p = np.exp(logp)
    dce = p * a.sum(axis=1, keepdims=True) - a
    plogq = np.where(is_target, 0.0, q * logq)
    entropy_term = plogq.sum(axis=1, keepdims=True)  # sum_j q_j log q_j
    dreg = np.where(is_target, 0.0, 0.5 * (plogq - q * entropy_term + q - u))
    grad_rows = c[:, None] * dce + r[:, None] * dreg
    return loss, _unrows(grad_rows, logits.shape)


def _scalar(loss, reduction, upstream):
    """The scalar that the gradient differentiates."""
    if reduction == "none":
        up = np.ones_like(loss) if upstream is None else np.asarray(upstream).reshape(-1)
        return float((loss * up).sum())
    return float(loss[0])


def finite_difference_error(logits, target, options) -> float:
    """max_i |fd_i - analytic_i| / max(1, |analytic_i|), central differences on every logit."""
    logits = np.asarray(logits, dtype=np.float64)
    _, grad = large_margin_loss(logits, target, **options)
    flat = logits.reshape(-1).copy()
    fd = np.empty_like(flat)
    for i in range(flat.size):
        h = FD_STEP * max(1.0, abs(flat[i]))
        keep = flat[i]
        flat[i] = keep + h
        plus = large_margin_loss(flat.reshape(logits.shape), target, with_grad=False, **options)[0]
        flat[i] = keep - h
        minus = large_margin_loss(flat.reshape(logits.shape), target, with_grad=False, **options)[0]
        flat[i] = keep
        fd[i] = (_scalar(plus, options.get("reduction", "mean"), options.get("upstream"))
                 - _scalar(minus, options.get("reduction", "mean"), options.get("upstream"))) / (2 * h)
    g = grad.reshape(-1)
    return float(np.max(np.abs(fd - g) / np.maximum(1.0, np.abs(g))))


def symmetric_kl_error(logits, target) -> float:
    """|reg - 1/2 [KL(q||U) + KL(U||q)]| over the rows: a second formula for the regulariser."""
    z = _rows(np.asarray(logits, np.float64))
    y = np.asarray(target).reshape(-1)
    worst = 0.0
    for n in range(z.shape[0]):
        if not 0 <= y[n] < z.shape[1]:
            continue
        nt = np.delete(z[n], y[n])
        logq = nt - nt.max() - np.log(np.exp(nt - nt.max()).sum())
        q, u = np.exp(logq), 1.0 / nt.size
        kl_qu = float((q * (logq - np.log(u))).sum())
        kl_uq = float((u * (np.log(u) - logq)).sum())
        reg = 0.5 * float(((q - u) * logq).sum())
        worst = max(worst, abs(reg - 0.5 * (kl_qu + kl_uq)) / max(1.0, abs(reg)))
        if reg < -1e-12:
            raise AssertionError(f"row {n}: negative regulariser {reg}")
    return worst


# ---------------------------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------------------------

def options_of(case: dict) -> dict:
    """Keyword options of large_margin_loss from a golden file's fields."""
    return {"reg_lambda": case["reg_lambda"], "deg_logit": case["deg_logit"],
            "weight": case["weight"], "reduction": case["reduction"],
            "ignore_index": case["ignore_index"], "upstream": case["upstream"]}


def read_case(path: Path) -> dict:
    """A golden file, with its fields and lengths validated."""
    case = json.loads(path.read_text())
    missing = [f for f in FIELDS if f not in case]
    unknown = [f for f in case if f not in FIELDS]
    if missing or unknown:
        raise ValueError(f"{path.name}: missing fields {missing}, unknown fields {unknown}")
    if case["name"] != path.stem:
        raise ValueError(f"{path.name}: name {case['name']!r} is not the file stem")
    shape = case["shape"]
    size = int(np.prod(shape))
    rows = size // shape[1]
    lengths = {"logits": (len(case["logits"]), size), "target": (len(case["target"]), rows),
               "grad": (len(case["grad"]), size),
               "loss": (len(case["loss"]), rows if case["reduction"] == "none" else 1)}
    if case["weight"] is not None:
        lengths["weight"] = (len(case["weight"]), shape[1])
    if case["upstream"] is not None:
        lengths["upstream"] = (len(case["upstream"]), rows)
    bad = {k: v for k, v in lengths.items() if v[0] != v[1]}
    if bad:
        raise ValueError(f"{path.name}: lengths (got, want) {bad}")
    return case


def _diff(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    err = np.abs(got - want)
    rel = err / np.where(want != 0, np.abs(want), np.inf)
    rel = np.where((want == 0) & (err > 0), np.inf, rel)
    used = float((err / (RTOL * np.abs(want) + ATOL)).max())  # share of the tolerance used
    return float(err.max()), float(rel.max()), used


def check(folder: Path, fd: bool) -> bool:
    """Recomputes every file of `folder` from its own inputs; prints one line per file."""
    paths = sorted(folder.glob("*.json"))
    if not paths:
        print(f"FAIL: no *.json in {folder}")
        return False
    all_ok = True
    worst = {"loss_abs": 0.0, "loss_rel": 0.0, "grad_abs": 0.0, "grad_rel": 0.0, "fd": 0.0,
             "used": 0.0}
    print(f"{'file':<28} {'loss abs':>9} {'loss rel':>9} {'grad abs':>9} {'grad rel':>9} "
          f"{'fd':>9} {'tol used':>9}  ok")
    for path in paths:
        try:
            case = read_case(path)
        except ValueError as e:
            print(f"FAIL {e}")
            all_ok = False
            continue
        logits = np.asarray(case["logits"], np.float64).reshape(case["shape"])
        target = np.asarray(case["target"], np.int64)
        options = options_of(case)
        loss, grad = large_margin_loss(logits, target, **options)
        la, lr, lused = _diff(loss, case["loss"])
        ga, gr, gused = _diff(grad.reshape(-1), case["grad"])
        used = max(lused, gused)
        fde = finite_difference_error(logits, target, options) if fd else 0.0
        kl = symmetric_kl_error(logits, target)
        ok = used <= 1.0 and fde <= FD_TOL and kl <= 1e-12
        all_ok &= ok
        for key, value in zip(worst, (la, lr, ga, gr, fde, used)):
            worst[key] = max(worst[key], value)
        print(f"{path.name:<28} {la:9.2e} {lr:9.2e} {ga:9.2e} {gr:9.2e} "
              f"{fde if fd else float('nan'):9.2e} {used:9.2e}  {'ok' if ok else 'FAIL'}")
    print(f"{len(paths)} files; max loss abs {worst['loss_abs']:.2e} rel {worst['loss_rel']:.2e}; "
          f"max grad abs {worst['grad_abs']:.2e} rel {worst['grad_rel']:.2e}; "
          f"max fd {worst['fd']:.2e}" + ("" if fd else " (skipped)")
          + f"; tolerance {RTOL:g} rel + {ATOL:g} abs (max share used {worst['used']:.2f}), "
          f"fd {FD_TOL:g}: "
          + ("PASS" if all_ok else "FAIL"))
    return all_ok


def _jsonable(x):
    return None if x is None else np.asarray(x).reshape(-1).tolist()


def generate(folder: Path, fd: bool) -> bool:
    """Writes every case of case_specs() into `folder`; checks each by finite differences."""
    folder.mkdir(parents=True, exist_ok=True)
    ok = True
    worst_fd = 0.0
    for spec in case_specs():
        inputs = make_inputs(spec)
        options = {"reg_lambda": float(spec["reg_lambda"]),
                   "deg_logit": None if spec["deg_logit"] is None else float(spec["deg_logit"]),
                   "weight": _jsonable(inputs["weight"]), "reduction": spec["reduction"],
                   "ignore_index": spec["ignore_index"],
                   "upstream": _jsonable(inputs["upstream"])}
        loss, grad = large_margin_loss(inputs["logits"], inputs["target"], **options)
        if fd:
            error = finite_difference_error(inputs["logits"], inputs["target"], options)
            worst_fd = max(worst_fd, error)
            ok &= error <= FD_TOL
            print(f"{spec['name']:<28} fd {error:.2e}")
        case = {"name": spec["name"], "shape": list(spec["shape"]),
                "logits": _jsonable(inputs["logits"]), "target": _jsonable(inputs["target"]),
                **options, "loss": _jsonable(loss), "grad": _jsonable(grad)}
        case = {field: case[field] for field in FIELDS}
        if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))):
            raise AssertionError(f"{spec['name']}: non-finite loss or gradient")
        (folder / f"{spec['name']}.json").write_text(json.dumps(case, allow_nan=False))
    print(f"wrote {len(case_specs())} files to {folder}; max fd {worst_fd:.2e}"
          + ("" if fd else " (skipped)"))
    return ok


def same_layout(new: Path, reference: Path) -> bool:
    """Same file names; per file the same fields, shape, options and lengths as `reference`."""
    names_new = {p.name for p in new.glob("*.json")}
    names_ref = {p.name for p in reference.glob("*.json")}
    ok = names_new == names_ref
    if not ok:
        print(f"file names differ: only new {sorted(names_new - names_ref)}, "
              f"only reference {sorted(names_ref - names_new)}")
    for name in sorted(names_new & names_ref):
        a, b = read_case(new / name), read_case(reference / name)
        for field in ("shape", "reg_lambda", "deg_logit", "reduction", "ignore_index"):
            if a[field] != b[field]:
                print(f"{name}: {field} {a[field]!r} vs reference {b[field]!r}")
                ok = False
        for field in FIELDS:
            if (a[field] is None) != (b[field] is None) or (
                    isinstance(a[field], list) and len(a[field]) != len(b[field])):
                print(f"{name}: {field} presence or length differs from the reference")
                ok = False
        if list(json.loads((new / name).read_text())) != list(FIELDS):
            print(f"{name}: field order differs")
            ok = False
    print(f"layout of {new} vs {reference}: {'same' if ok else 'DIFFERENT'} "
          f"({len(names_new & names_ref)} common files)")
    return ok


def self_test() -> bool:
    """Finite differences on option mixes the golden folder lacks (smoothing, weight + ignore,
    every row ignored, C = 2, deg_logit with "none")."""
    rng = np.random.default_rng([7, 7])
    z = rng.normal(0.0, 3.0, (6, 5))
    y = rng.integers(0, 5, 6)
    y[0] = y[3] = 2
    w = rng.uniform(0.1, 1.1, 5)
    up = rng.normal(0.0, 1.0, 6)
    mixes = {
        "smoothing mean": {"label_smoothing": 0.1},
        "smoothing + weight + ignore": {"label_smoothing": 0.2, "weight": w, "ignore_index": 2},
        "smoothing sum + deg": {"label_smoothing": 0.1, "reduction": "sum", "deg_logit": 0.5},
        "weight + ignore none": {"weight": w, "ignore_index": 2, "reduction": "none",
                                 "upstream": up},
        "deg none": {"deg_logit": 1.5, "reduction": "none", "upstream": up},
    }
    ok = True
    for what, options in mixes.items():
        error = finite_difference_error(z, y, options)
        ok &= error <= FD_TOL
        print(f"{what:<30} fd {error:.2e}")
    # Every row ignored: 0 and a zero gradient, no NaN.
    loss, grad = large_margin_loss(z, np.full(6, 4), ignore_index=4)
    ok &= bool(loss[0] == 0.0 and np.all(grad == 0.0))
    # C = 2: the regulariser vanishes, the loss is plain cross-entropy.
    z2, y2 = z[:, :2], y % 2
    plain = np.mean(np.log(np.exp(z2).sum(1)) - z2[np.arange(6), y2])
    ok &= bool(np.isclose(large_margin_loss(z2, y2)[0][0], plain, rtol=1e-14))
    # Label smoothing against PyTorch's formula written out directly.
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    eps, ar = 0.1, np.arange(6)
    smooth = np.mean((1 - eps) * -logp[ar, y] + eps / 5 * -logp.sum(1))
    ok &= bool(np.isclose(large_margin_loss(z, y, reg_lambda=0.0, label_smoothing=eps)[0][0],
                          smooth, rtol=1e-14))
    print("self-test:", "PASS" if ok else "FAIL")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="write every golden case into this folder")
    parser.add_argument("--check", type=Path, action="append", default=[],
                        help="recompute every *.json of this folder and compare (repeatable)")
    parser.add_argument("--layout", type=Path,
                        help="with --out: the written folder must match this one's layout")
    parser.add_argument("--self-test", action="store_true",
                        help="finite differences on option mixes the goldens lack")
    parser.add_argument("--no-fd", action="store_true", help="skip the finite differences")
    args = parser.parse_args(argv)
    if not (args.out or args.check or args.self_test):
        parser.error("give --out DIR, --check DIR or --self-test")
    ok = True
    if args.self_test:
        ok &= self_test()
    if args.out:
        ok &= generate(args.out, fd=not args.no_fd)
        if args.layout:
            ok &= same_layout(args.out, args.layout)
    for folder in args.check:
        ok &= check(folder, fd=not args.no_fd)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
