#!/usr/bin/env python
"""Run an exported CorridorKey TorchScript file on fixed inputs, with nothing but torch.

This is what Nuke's Inference node does with the file, minus Nuke: load it with
``torch.jit.load``, set the knob attributes, call ``forward`` on ``[1, 4, H, W]``
tensors. It imports **only torch and the standard library** (no project code) so it
runs unchanged in an old environment, e.g. the torch 2.1.2 one that stands in for
Nuke 15.1-17's libtorch.

Usage::

    python run_torchscript.py MODEL.pt CASES.pt OUTPUTS.pt [--dtype fp32|fp16]... [--case NAME]...
                              [--expected EXPECTED.pt --atol-fp32 1e-5 --atol-fp16 2e-3]

``CASES.pt`` (``torch.save``) is a list of ``{"name": str, "input": Tensor[1,4,H,W] fp32,
"knobs": {attribute: 0-d Tensor}}`` (a float64 tensor for a float knob, int64 for an int knob).
For each dtype the module and the input are converted (``.half()`` is what Nuke's "Optimize for Speed and Memory" does), the case
is run on CPU and its output is stored as float32 under the key ``"<dtype>/<name>"``.
``OUTPUTS.pt`` holds ``{"torch": version, "outputs": {key: Tensor}}``.

With ``--expected`` (an ``OUTPUTS.pt`` written by another environment) every output
is compared with the expected one of the same key; a table of max abs errors is
printed and the exit status is 1 when any error exceeds its dtype's tolerance, an
output is not finite, a shape differs or a key is missing. Exit 2: bad arguments or
unreadable files.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def knob_value(value):
    """A knob value as the attribute's Python type: 0-d int tensor -> int, 0-d float tensor -> float.

    (Knob values travel as 0-d tensors: old torch's ``weights_only`` unpickler rejects Python floats.)
    """
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def run_cases(module, cases, dtype_name):
    """Run every case with ``module`` converted to ``dtype_name``; returns ``{key: fp32 output}``."""
    dtype = DTYPES[dtype_name]
    module = module.to(dtype)
    outputs = {}
    for case in cases:
        for knob, value in case["knobs"].items():
            setattr(module, knob, knob_value(value))
        t0 = time.perf_counter()
        with torch.no_grad():
            out = module(case["input"].to(dtype))
        key = dtype_name + "/" + case["name"]
        outputs[key] = out.detach().float().cpu()
        print("ran %-28s %-12s in %6.2f s" % (key, "x".join(str(s) for s in out.shape), time.perf_counter() - t0))
    return outputs


def compare(outputs, expected, tolerances):
    """Compare two ``{key: Tensor}`` dicts; returns ``(table lines, list of failures)``."""
    lines = ["%-30s %12s %10s  %s" % ("output", "max abs err", "tolerance", "verdict")]
    failures = []
    for key in sorted(expected):
        tol = tolerances[key.split("/", 1)[0]]
        if key not in outputs:
            failures.append(key + ": missing")
            lines.append("%-30s %12s %10.1e  MISSING" % (key, "-", tol))
            continue
        got, want = outputs[key], expected[key]
        if got.shape != want.shape:
            failures.append("%s: shape %s, expected %s" % (key, tuple(got.shape), tuple(want.shape)))
            lines.append("%-30s %12s %10.1e  SHAPE" % (key, "-", tol))
            continue
        finite = bool(torch.isfinite(got).all())
        err = float((got.double() - want.double()).abs().max()) if got.numel() else 0.0
        ok = finite and not math.isnan(err) and err <= tol
        if not ok:
            failures.append("%s: max abs err %.3g > %.1e%s" % (key, err, tol, "" if finite else " (non-finite output)"))
        lines.append("%-30s %12.3e %10.1e  %s" % (key, err, tol, "ok" if ok else "FAIL"))
    return lines, failures


def load_data(path):
    """``torch.load`` of plain tensors / containers (``weights_only``: never runs pickled code)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError("cannot read %s: %s" % (path, exc)) from exc


def save_atomic(obj, path):
    """``torch.save`` via a temp file in the target folder + ``os.replace`` (no partial file)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=folder)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="TorchScript file (CorridorKey.pt)")
    p.add_argument("cases", help="torch.save'd list of {name, input, knobs}")
    p.add_argument("outputs", help="where to write {torch, outputs}")
    p.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="repeatable; default: fp32 and fp16")
    p.add_argument("--case", action="append", help="repeatable; run only the case(s) of this name (default: all)")
    p.add_argument("--expected", help="outputs of another environment to compare with")
    p.add_argument("--atol-fp32", type=float, default=1e-5, help="max abs error allowed in fp32 (default 1e-5)")
    p.add_argument("--atol-fp16", type=float, default=2e-3, help="max abs error allowed in fp16 (default 2e-3)")
    args = p.parse_args(argv)

    print("torch %s, python %s" % (torch.__version__, sys.version.split()[0]))
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    try:
        cases = load_data(args.cases)
        expected = load_data(args.expected)["outputs"] if args.expected else None
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        print("error: %s" % exc)
        return 2
    if args.case:
        unknown = sorted(set(args.case) - {c["name"] for c in cases})
        if unknown:
            print("error: no case named %s in %s" % (", ".join(unknown), args.cases))
            return 2
        cases = [c for c in cases if c["name"] in args.case]
    outputs = {}
    for dtype_name in args.dtype or ["fp32", "fp16"]:
        try:  # loaded afresh per dtype: a module converted to fp16 and back is not the fp32 one
            module = torch.jit.load(args.model, map_location="cpu").eval()
        except Exception as exc:  # the failure Nuke would show: report it, exit 1
            print("FAIL: torch %s cannot load %s:\n%s" % (torch.__version__, args.model, exc))
            return 1
        try:
            outputs.update(run_cases(module, cases, dtype_name))
        except Exception as exc:
            print("FAIL: torch %s cannot run %s in %s:\n%s" % (torch.__version__, args.model, dtype_name, exc))
            return 1
    save_atomic({"torch": str(torch.__version__), "outputs": outputs}, args.outputs)
    print("wrote %d outputs to %s" % (len(outputs), args.outputs))
    if expected is None:
        return 0
    expected = {k: v for k, v in expected.items() if k.split("/", 1)[0] in (args.dtype or DTYPES)
                and (not args.case or k.split("/", 1)[1] in args.case)}
    lines, failures = compare(outputs, expected, {"fp32": args.atol_fp32, "fp16": args.atol_fp16})
    print("\n".join(lines))
    if failures:
        print("FAIL: %d of %d outputs differ from %s:\n  %s" % (len(failures), len(expected), args.expected,
                                                              "\n  ".join(failures)))
        return 1
    print("PASS: %d outputs match %s" % (len(expected), args.expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
