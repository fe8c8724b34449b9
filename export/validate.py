"""Parity of a saved ``CorridorKey.pt`` with the Python reference.

:func:`validate_torchscript` runs the TorchScript module (loaded from a file
with ``torch.jit.load``, or given) on synthetic green-screen plates for a knob
sweep and compares every output with the reference: the eager GreenFormer plus
the shared frame math of :mod:`corridorkey_model.frame`. The reference runs
the network once per (plate, gamma) and applies ``combine`` / ``postprocess``
to the cached logits for each despill / refiner setting (the same math
:func:`corridorkey_model.frame.key_frame` does); every call of the .pt is a
full forward.

Sweeps (knob values: gamma 0/1, despill 0/5/10, refiner 0/0.5/1, despeckle 0/50):

* ``"full"``: the cartesian product, 36 calls per plate;
* ``"pairwise"`` (default): a covering set in which every pair of values of
  any two knobs appears at least once, 9 calls per plate. Each call checks
  all four output channels, so every knob path and every interaction of two
  knobs is exercised at half the cost (at S = 2048 a call takes ~2 min on
  a 2-core CPU).

fp16 ("Optimize for Speed and Memory" in Nuke: module and input ``.half()``)
is checked separately against the fp32 reference with its own tolerance.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from corridorkey_model.frame import combine, postprocess, preprocess
from corridorkey_model.knobs import (CHANNELS_IN, CHANNELS_OUT, DESPECKLE_SIZE, DESPILL_STRENGTH, GAMMA_INPUT, GREEN,
                                     KNOBS, MODEL_ID,
                                     ScreenSpec,
                                     OUTPUT_SCALE, REFINER_STRENGTH, knob_table_markdown)
from corridorkey_model.synthetic import green_screen_plate, plate_tensor
from corridorkey_export.attention import fused_attention
from corridorkey_export.wrapper import set_knobs

log = logging.getLogger(__name__)

#: fp32 tolerance on the same device (max abs error per output channel).
FP32_TOLERANCE = 1e-5
#: fp16 tolerance against the fp32 reference (measured, see README.md, "Validation").
FP16_TOLERANCE = 0.01
#: fp16 on a CPU runs the convolutions through slow fallback kernels (~100x slower than fp32);
#: with ``fp16="auto"`` it is checked on CPU only up to this model resolution.
FP16_CPU_AUTO_MAX_SIZE = 128

#: The despeckle size the sweep checks besides 0 (islands below it are removed).
VALIDATION_DESPECKLE_SIZE = 50

#: Knob values of the sweep, per knob (names from the knob spec).
SWEEP_VALUES: Dict[str, Tuple] = {
    GAMMA_INPUT.name: (0, 1),
    DESPILL_STRENGTH.name: (0.0, 5.0, 10.0),
    REFINER_STRENGTH.name: (0.0, 0.5, 1.0),
    # 0 = off, and a size that removes the small islands of the validation plates' mattes
    DESPECKLE_SIZE.name: (0, VALIDATION_DESPECKLE_SIZE),
}
#: The knob setting of the fp16 check: every knob away from its identity.
#: Despeckle is off here: in half precision an alpha within rounding of the 0.5 threshold can fall on
#: the other side and move a whole island's edge (0.016 seen), which is not an error of the file.
FP16_SETTING: Dict[str, object] = {GAMMA_INPUT.name: 0, DESPILL_STRENGTH.name: 5.0, REFINER_STRENGTH.name: 0.5,
                                   DESPECKLE_SIZE.name: 0}

CHANNEL_NAMES = ("R", "G", "B", "A")
SWEEPS = ("pairwise", "full")

ModuleOrPath = Union[str, os.PathLike, torch.jit.ScriptModule, nn.Module]


# --------------------------------------------------------------------------- plates and sweeps


@dataclass(frozen=True)
class PlateSpec:
    """A synthetic green-screen plate (:func:`corridorkey_model.synthetic.green_screen_plate`)."""

    name: str
    height: int
    width: int
    seed: int = 0
    extremes: bool = False
    screen_channel: int = 1  # 1: green screen, 2: blue screen

    def tensor(self, linear: bool) -> Tensor:
        """``[1, 4, H, W]`` plate; sRGB-encoded RGB, or linear for ``gamma_input = 1``."""
        return plate_tensor(green_screen_plate(self.height, self.width, seed=self.seed, linear=linear,
                                               extremes=self.extremes, screen_channel=self.screen_channel))


def default_plates(img_size: int, screen_channel: int = 1) -> Tuple[PlateSpec, ...]:
    """Three plates on the file's screen colour: larger than S (non-square), smaller than S (odd, portrait),
    superwhite/negative values."""
    s = int(img_size)
    c = int(screen_channel)
    return (
        PlateSpec("wide-larger-than-S", s + s // 8 + 1, s + s // 2, seed=1, screen_channel=c),
        PlateSpec("odd-portrait", s // 2 + 1, s // 3 + 1, seed=2, screen_channel=c),
        PlateSpec("superwhite-negative", s // 4 + 3, s // 3, seed=3, extremes=True, screen_channel=c),
    )


def knob_settings(sweep: str = "pairwise", values: Optional[Dict[str, Sequence]] = None) -> List[Dict[str, object]]:
    """Knob settings of a sweep, sorted by ``gamma_input`` (the reference caches logits per gamma).

    ``"full"``: the cartesian product. ``"pairwise"``: a greedy covering array in
    which every pair of values of any two knobs occurs in at least one setting.
    """
    values = dict(SWEEP_VALUES if values is None else values)
    names = list(values)
    product = [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))]
    if sweep == "full":
        chosen = product
    elif sweep == "pairwise":
        def pairs(setting: Dict[str, object]) -> set:
            return {(a, setting[a], b, setting[b]) for a, b in itertools.combinations(names, 2)}

        uncovered = set().union(*(pairs(s) for s in product))
        chosen = []
        while uncovered:
            best = max(product, key=lambda s: len(pairs(s) & uncovered))
            chosen.append(best)
            uncovered -= pairs(best)
    else:
        raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")
    return sorted(chosen, key=lambda s: tuple(s[n] for n in names if n == GAMMA_INPUT.name))


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ValidationRow:
    """One call of the .pt: plate, knob setting, max abs error per output channel (R, G, B, A)."""

    plate: str
    height: int
    width: int
    knobs: Dict[str, object]
    max_abs: Tuple[float, float, float, float]
    finite: bool
    alpha_in_range: bool
    precision: str = "fp32"

    @property
    def max_error(self) -> float:
        return max(self.max_abs)


@dataclass(frozen=True)
class ValidationReport:
    """Result of :func:`validate_torchscript`. ``passed`` is the verdict; ``to_dict()`` goes into the manifest."""

    device: str
    img_size: int
    sweep: str
    tolerance: float
    fp16_tolerance: float
    rows: Tuple[ValidationRow, ...]
    fp16_rows: Tuple[ValidationRow, ...]
    fp16_skipped: Optional[str]  # why fp16 was not checked, or None
    calls: int  # .pt forward calls
    seconds: float
    knob_roundtrip_ok: bool = True
    problems: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def max_abs_fp32(self) -> float:
        return max((r.max_error for r in self.rows), default=float("nan"))

    @property
    def max_abs_fp16(self) -> Optional[float]:
        return max((r.max_error for r in self.fp16_rows), default=None)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["passed"] = self.passed
        d["max_abs_fp32"] = self.max_abs_fp32
        d["max_abs_fp16"] = self.max_abs_fp16
        return d


def _judge(rows: Sequence[ValidationRow], tolerance: float, label: str) -> List[str]:
    problems = []
    for r in rows:
        where = f"{label} plate {r.plate} ({r.height}x{r.width}) knobs {_knob_text(r.knobs)}"
        if not r.finite:
            problems.append(f"{where}: output holds NaN or Inf")
        elif not r.alpha_in_range:
            problems.append(f"{where}: alpha leaves [0, 1]")
        elif not r.max_error <= tolerance:
            worst = CHANNEL_NAMES[max(range(4), key=lambda i: r.max_abs[i])]
            problems.append(f"{where}: max abs error {r.max_error:.3g} in {worst} exceeds the tolerance {tolerance:g}")
    return problems


# --------------------------------------------------------------------------- the comparison


def _load(module: ModuleOrPath, device: torch.device) -> nn.Module:
    if isinstance(module, nn.Module):
        return module
    return torch.jit.load(str(module), map_location=device)


def _compare(out: Tensor, ref: Tensor, spec: PlateSpec, knobs: Dict[str, object], precision: str) -> ValidationRow:
    out = out.float()
    finite = bool(torch.isfinite(out).all())
    err = (out - ref).abs().amax(dim=(0, 2, 3)) if finite else torch.full((4,), float("inf"))
    alpha = out[:, 3]
    alpha_ok = finite and bool((alpha >= 0).all()) and bool((alpha <= 1).all())
    return ValidationRow(spec.name, spec.height, spec.width, dict(knobs),
                         tuple(float(e) for e in err.cpu()), finite, alpha_ok, precision)


def _fp16_plan(fp16: Union[bool, str], device: torch.device, img_size: int) -> Optional[str]:
    """``None`` if fp16 is to be checked, else why not."""
    if fp16 is False or fp16 == "off":
        return "not requested"
    if fp16 == "auto" and device.type == "cpu" and img_size > FP16_CPU_AUTO_MAX_SIZE:
        return (f"skipped on CPU at S={img_size}: CPU half-precision convolutions are ~100x slower than fp32 "
                f"(pass --fp16 on to force it; a CUDA device checks it by default)")
    return None


def validate_torchscript(module: ModuleOrPath, model: nn.Module, *, device: Union[str, torch.device] = "cpu",
                         plates: Optional[Sequence[PlateSpec]] = None, sweep: str = "pairwise",
                         settings: Optional[Sequence[Dict[str, object]]] = None,
                         tolerance: float = FP32_TOLERANCE, fp16: Union[bool, str] = "auto",
                         fp16_tolerance: float = FP16_TOLERANCE, fused_attn: Optional[bool] = None,
                         progress: bool = True) -> ValidationReport:
    """Compare a CorridorKey TorchScript module with the eager reference; returns a :class:`ValidationReport`.

    ``module``: path of a saved .pt (loaded with ``torch.jit.load`` onto ``device``)
    or a module. ``model``: the eager GreenFormer the file was exported from (same
    weights, same S), moved to ``device``. ``plates``: default
    :func:`default_plates`. ``sweep``: ``"pairwise"`` or ``"full"`` (or give
    ``settings`` explicitly). ``fp16``: ``True`` / ``"on"``, ``False`` / ``"off"`` or
    ``"auto"`` (CUDA always, CPU only up to S = :data:`FP16_CPU_AUTO_MAX_SIZE`).
    ``fused_attn``: the attention kernel the file was traced with (from the
    manifest), applied to the eager model so both run the same kernel.
    The module's knob attributes are restored afterwards.
    """
    from tqdm import tqdm

    device = torch.device(device)
    started = time.perf_counter()
    ts = _load(module, device)
    img_size = int(getattr(ts, "img_size"))
    model_size = int(getattr(model, "img_size", img_size))
    if model_size != img_size:
        raise ValueError(f"the .pt runs at S={img_size} but the reference model at S={model_size}; "
                         f"build the reference with --img-size {img_size}")
    model = model.to(device).eval()
    screen_channel = int(getattr(ts, "screen_channel", 1))
    plates = tuple(default_plates(img_size, screen_channel) if plates is None else plates)
    sweep_name = sweep if settings is None else "custom"
    settings = list(knob_settings(sweep) if settings is None else settings)
    fp16_skip = _fp16_plan(fp16, device, img_size)
    fp16_cases = [] if fp16_skip else [(plates[0], dict(FP16_SETTING))]
    gammas = sorted({s[GAMMA_INPUT.name] for s in settings} | {s[GAMMA_INPUT.name] for _, s in fp16_cases})
    calls = len(plates) * len(settings) + len(fp16_cases)
    log.info("validating: %d plate(s) x %d knob setting(s) (%s sweep) = %d .pt call(s)%s, plus %d eager reference "
             "forward(s), at S=%d on %s", len(plates), len(settings), sweep_name,
             len(plates) * len(settings), f" + {len(fp16_cases)} fp16" if fp16_cases else "",
             len(plates) * len(gammas), img_size, device)

    saved_knobs = {k.name: getattr(ts, k.name) for k in KNOBS}
    rows: List[ValidationRow] = []
    fp16_refs: List[Tuple[PlateSpec, Dict[str, object], Tensor, Tensor]] = []
    bar = tqdm(total=calls + len(plates) * len(gammas), desc="validate", unit="run", disable=not progress,
               leave=False)
    try:
        with torch.no_grad(), fused_attention(model, fused_attn):
            for spec in plates:
                for gamma in gammas:
                    plate = spec.tensor(linear=gamma == 1).to(device)
                    h, w = plate.shape[-2], plate.shape[-1]
                    logits = model(preprocess(plate, img_size, gamma))
                    bar.update(1)

                    def reference(knobs: Dict[str, object]) -> Tensor:
                        alpha, fg = combine(*logits, float(knobs[REFINER_STRENGTH.name]))
                        return postprocess(alpha, fg, h, w, float(knobs[DESPILL_STRENGTH.name]),
                                           int(knobs.get(DESPECKLE_SIZE.name, 0)), screen_channel)

                    for knobs in (s for s in settings if s[GAMMA_INPUT.name] == gamma):
                        set_knobs(ts, **knobs)
                        rows.append(_compare(ts(plate), reference(knobs), spec, knobs, "fp32"))
                        bar.update(1)
                    for fspec, knobs in fp16_cases:
                        if fspec == spec and knobs[GAMMA_INPUT.name] == gamma:
                            fp16_refs.append((spec, knobs, plate, reference(knobs)))
                    del logits
            fp16_rows = _run_fp16(module, ts, fp16_refs, device, bar)
    finally:
        bar.close()
        set_knobs(ts, **saved_knobs)

    roundtrip = all(getattr(ts, k) == v for k, v in saved_knobs.items())
    problems = _judge(rows, tolerance, "fp32") + _judge(fp16_rows, fp16_tolerance, "fp16")
    if not roundtrip:
        problems.append("knob attributes did not keep the values written to them")
    report = ValidationReport(str(device), img_size, sweep_name, tolerance,
                              fp16_tolerance, tuple(rows), tuple(fp16_rows), fp16_skip, calls,
                              time.perf_counter() - started, roundtrip, tuple(problems))
    log.info("validation %s in %.1f s: max abs error fp32 %.3g%s", "passed" if report.passed else "FAILED",
             report.seconds, report.max_abs_fp32,
             "" if report.max_abs_fp16 is None else f", fp16 {report.max_abs_fp16:.3g}")
    return report


def _run_fp16(module: ModuleOrPath, ts: nn.Module, cases, device: torch.device, bar) -> List[ValidationRow]:
    if not cases:
        return []
    # A fresh copy: .half() would otherwise round the fp32 weights of the caller's module.
    half = (copy.deepcopy(ts) if isinstance(module, nn.Module) else _load(module, device)).half()
    rows = []
    for spec, knobs, plate, ref in cases:
        set_knobs(half, **knobs)
        rows.append(_compare(half(plate.half()), ref, spec, knobs, "fp16"))
        bar.update(1)
    return rows


# --------------------------------------------------------------------------- printing


def _knob_text(knobs: Dict[str, object]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items())


def format_report(report: ValidationReport) -> str:
    """The error table: one line per .pt call, max abs error per output channel, then the verdict."""
    names = list(SWEEP_VALUES)
    short = {GAMMA_INPUT.name: "gamma", DESPILL_STRENGTH.name: "despill", REFINER_STRENGTH.name: "refiner",
             DESPECKLE_SIZE.name: "despeck"}
    head = (f"{'plate':<22} {'size':>11} {'prec':<4} " + " ".join(f"{short.get(n, n):>7}" for n in names)
            + " " + " ".join(f"{'max|err| ' + c:>13}" for c in CHANNEL_NAMES) + "  ok")
    lines = [f"Parity of the TorchScript file with the Python reference (S={report.img_size}, device "
             f"{report.device}, {report.sweep} knob sweep, {report.calls} .pt calls, {report.seconds:.1f} s)",
             head, "-" * len(head)]

    def line(r: ValidationRow, tol: float) -> str:
        knobs = " ".join(f"{r.knobs.get(n, ''):>7g}" if isinstance(r.knobs.get(n), float)
                         else f"{r.knobs.get(n, ''):>7}" for n in names)
        ok = r.finite and r.alpha_in_range and r.max_error <= tol
        return (f"{r.plate:<22} {f'{r.height}x{r.width}':>11} {r.precision:<4} {knobs} "
                + " ".join(f"{e:>13.3e}" for e in r.max_abs) + ("  ok" if ok else "  FAIL"))

    lines += [line(r, report.tolerance) for r in report.rows]
    lines.append("-" * len(head))
    if report.rows:
        per_channel = [max(r.max_abs[i] for r in report.rows) for i in range(4)]
        lines.append(f"{'max over fp32 rows':<22} {'':>11} {'fp32':<4} {'':>{8 * len(names) - 1}} "
                     + " ".join(f"{e:>13.3e}" for e in per_channel) + f"  (tolerance {report.tolerance:g})")
    if report.fp16_rows:
        lines += [line(r, report.fp16_tolerance) for r in report.fp16_rows]
        lines.append(f"fp16 (module and input .half()) against the fp32 reference: max abs error "
                     f"{report.max_abs_fp16:.3e} (tolerance {report.fp16_tolerance:g})")
    else:
        lines.append(f"fp16: {report.fp16_skipped}")
    if report.passed:
        lines.append("PASSED: the file computes what the Python reference computes.")
    else:
        lines.append(f"FAILED ({len(report.problems)} problem(s)):")
        lines += [f"  - {p}" for p in report.problems[:20]]
    return "\n".join(lines)


def cat_file_settings(screen: ScreenSpec = GREEN) -> str:
    """CatFileCreator settings for the exported file, generated from the knob spec."""
    lines = [
        "CatFileCreator settings (NukeX: Other > CatFileCreator), or run nuke/corridorkey_create_cat.py"
        + ("" if screen is GREEN else f" --screen {screen.name}") + ":",
        f"  Torchscript File : <path of the .pt>",
        f"  Cat File         : <path>/{screen.cat_filename}",
        f"  Channels In      : {','.join(CHANNELS_IN)}",
        f"  Channels Out     : {','.join(CHANNELS_OUT)}",
        f"  Model Id         : {screen.model_id}",
        f"  Output Scale     : {OUTPUT_SCALE}",
        "  User knobs (add to the CatFileCreator before Create .cat file; the name must match exactly):",
    ]
    for k in KNOBS:
        if k.choices:
            kind = f"Enumeration knob (values {k.describe_choices()})"
            nk = f'addUserKnob {{4 {k.name} l "{k.label}" M {{{" ".join(k.choices)}}}}}'
        elif k.kind == "int":
            kind = f"Integer knob, {k.minimum:g} to {k.maximum:g}"
            nk = f'addUserKnob {{3 {k.name} l "{k.label}"}}'
        else:
            kind = f"Floating Point Slider, {k.minimum:g} to {k.maximum:g}"
            nk = f'addUserKnob {{7 {k.name} l "{k.label}" R {k.minimum:g} {k.maximum:g}}}'
        lines.append(f"    {k.name:<17} {kind}, default {k.typed_default}    {nk}")
    lines += ["", knob_table_markdown()]
    return "\n".join(lines)


__all__ = [
    "FP32_TOLERANCE", "FP16_TOLERANCE", "FP16_CPU_AUTO_MAX_SIZE", "SWEEP_VALUES", "SWEEPS", "PlateSpec",
    "default_plates", "knob_settings", "ValidationRow", "ValidationReport", "validate_torchscript",
    "format_report", "cat_file_settings",
]
