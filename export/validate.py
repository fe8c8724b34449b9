"""Parity of a saved ``CorridorKey.pt`` with the Python reference.

The reference is the eager GreenFormer plus the shared frame math of
:mod:`corridorkey_model.keying.frame` (:func:`~corridorkey_model.keying.frame.key_frame`).
At S = 2048 a network forward takes a minute or two on a CPU, so
:func:`validate_torchscript` spends forwards only where they add proof. The
file's ``forward`` is ``postprocess(run_network(preprocess(x)))``, each stage a
TorchScript method taking its knob values as arguments named after the knobs
(:mod:`corridorkey_export.wrapper`). The validation proves, on the saved file:

1. **wiring** (no forward): in ``forward``'s graph, every knob attribute is
   read and passed unchanged to the stage method's parameter of the same name,
   and used nowhere else;
2. **stages over the whole knob sweep** (no forward): on every plate,
   ``preprocess`` for every value of its knobs against
   :func:`corridorkey_model.keying.frame.preprocess`, and ``postprocess`` for every
   setting of its knobs on *cached network outputs* against ``key_frame`` run
   on those outputs;
3. **end to end** (one .pt forward and one eager forward each): ``forward`` on
   the plates marked ``end_to_end`` against ``key_frame`` with the eager
   network, each call with its own knob setting (every knob off its default in
   the first call, and at two values over the calls). This proves the traced
   network, the composition and that the knobs flow through ``forward``.

Together: every knob path and every pair of knob values reaches the saved
file's output as the reference computes it, for about 2 + 2 forwards instead of
one per setting. The eager outputs of the export's trace run (the same eager
forward) can be passed in as ``reference_outputs``: the export traces on the
first end-to-end call's network input, which saves one more forward.

Sweeps (values per knob in :data:`SWEEP_VALUES`, one entry per knob):

* ``"pairwise"`` (default): stage checks over a covering set in which every pair
  of values of any two knobs appears at least once; end-to-end calls as above;
* ``"full"``: stage checks over the cartesian product, and ``forward`` end to end
  for every plate and every setting (72 calls per plate: the old exhaustive
  check, hours at S = 2048 on a CPU).

fp16 ("Optimize for Speed and Memory" in Nuke: module and input ``.half()``)
is checked end to end on the first end-to-end call against the fp32 reference,
with its own tolerance. So is the file's CPU bfloat16 copy (attribute
``cpu_bf16`` = 1), on a CPU with bfloat16 units.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from corridorkey_export.attention import fused_attention
from corridorkey_export.nuke_contract import CHANNELS_IN, CHANNELS_OUT, GREEN, OUTPUT_SCALE, NukeModel
from corridorkey_export.wrapper import set_knobs
from corridorkey_model.keying import frame
from corridorkey_model.keying.knobs import (
    AUTO_HINT,
    DESPECKLE_SIZE,
    DESPILL_STRENGTH,
    GAMMA_INPUT,
    KNOBS,
    KNOBS_BY_NAME,
    QUALITY,
    REFINER_STRENGTH,
    knob_table_markdown,
)
from corridorkey_model.testing import green_screen_plate, plate_tensor

log = logging.getLogger(__name__)

#: fp32 tolerance on the same device (max abs error per output channel).
FP32_TOLERANCE = 1e-5
#: fp16 tolerance against the fp32 reference (measured, see docs/export.md, "Validation").
FP16_TOLERANCE = 0.01
#: CPU bfloat16 copy (attribute ``cpu_bf16`` = 1, issue #29) against the fp32 reference (measured with random
#: weights at S = 256-2048 on the default plates: see docs/benchmarks.md, "bfloat16").
BF16_TOLERANCE = 0.1
#: fp16 on a CPU runs the convolutions through slow fallback kernels (~100x slower than fp32);
#: with ``fp16="auto"`` it is checked on CPU only up to this model resolution.
FP16_CPU_AUTO_MAX_SIZE = 128

#: Knob values of the sweep, per knob name. Every knob of the spec needs an entry; nothing else
#: in the validation names a knob.
#: The despeckle size the sweep checks besides 0 (solid islands below it are removed).
VALIDATION_DESPECKLE_SIZE = 50

SWEEP_VALUES: Dict[str, Tuple] = {
    GAMMA_INPUT.name: (0, 1),
    DESPILL_STRENGTH.name: (0.0, 5.0, 10.0),
    REFINER_STRENGTH.name: (0.0, 0.5, 1.0),
    # 0 = off, and a size that removes small islands of the validation plates' mattes
    DESPECKLE_SIZE.name: (0, VALIDATION_DESPECKLE_SIZE),
    # 0 = the hint channel, 1 = the automatic hint made from the plate (the hint channel ignored)
    AUTO_HINT.name: (0, 1),
    # 0 = final, 1 = preview (the network traced at the preview size; ignored by a file without one)
    QUALITY.name: (0, 1),
}

#: Knobs that pick the network (its model resolution) rather than enter the frame math: the reference
#: runs :func:`corridorkey_model.keying.frame.key_frame` with the eager model of that resolution.
ROUTING_KNOBS = (QUALITY.name,)

#: The file's stage methods that take knobs (``run_network`` takes none).
PRE_STAGE = "preprocess"
POST_STAGE = "postprocess"

CHANNEL_NAMES = ("R", "G", "B", "A")
SWEEPS = ("pairwise", "full")

ModuleOrPath = Union[str, os.PathLike, torch.jit.ScriptModule, nn.Module]
Logits = Tuple[Tensor, Tensor, Tensor]


# --------------------------------------------------------------------------- plates and sweeps


@dataclass(frozen=True)
class PlateSpec:
    """A synthetic green-screen plate (:func:`corridorkey_model.testing.green_screen_plate`).

    ``end_to_end``: the file's ``forward`` runs on this plate (a full network
    forward, plus one eager forward for the reference); otherwise the plate is
    checked through the stage methods only.
    """

    name: str
    height: int
    width: int
    seed: int = 0
    extremes: bool = False
    end_to_end: bool = True
    screen_channel: int = 1  # 1: green screen, 2: blue screen

    def tensor(self, linear: bool) -> Tensor:
        """``[1, 4, H, W]`` plate; sRGB-encoded RGB, or linear for ``gamma_input = 1``."""
        return plate_tensor(green_screen_plate(self.height, self.width, seed=self.seed, linear=linear,
                                               extremes=self.extremes, screen_channel=self.screen_channel))

    def for_setting(self, knobs: Dict[str, object]) -> Tensor:
        """The plate as a setting feeds it: linear when the setting says the plate is linear."""
        return self.tensor(linear=knobs.get(GAMMA_INPUT.name, GAMMA_INPUT.typed_default) == 1)


#: The plate of the Verify button's reference (:mod:`corridorkey_export.verify_data`): width, height, seed.
VERIFY_PLATE = (41, 29, 21)
VERIFY_PLATE_NAME = "verify"


def verify_plate(screen_channel: int = 1) -> PlateSpec:
    """The Verify button's test plate (small, odd, non-square); the default validation keys it end to end at
    the knobs' defaults, and the export stores that output as the Verify reference (no extra forward)."""
    width, height, seed = VERIFY_PLATE
    return PlateSpec(VERIFY_PLATE_NAME, height, width, seed=seed, screen_channel=int(screen_channel))


def default_plates(img_size: int, screen_channel: int = 1) -> Tuple[PlateSpec, ...]:
    """Four plates on the file's screen colour: larger than S (non-square), smaller than S (odd,
    portrait), superwhite/negative values, and the Verify plate.

    The first and the last run end to end (the first with every knob off its default, the Verify
    plate at the defaults: :func:`end_to_end_settings`); the other two differ from them only in
    the resizes and clamps around the network, which the stage checks prove exactly.
    """
    s = int(img_size)
    c = int(screen_channel)
    return (
        PlateSpec("wide-larger-than-S", s + s // 8 + 1, s + s // 2, seed=1, screen_channel=c),
        PlateSpec("odd-portrait", s // 2 + 1, s // 3 + 1, seed=2, end_to_end=False, screen_channel=c),
        PlateSpec("superwhite-negative", s // 4 + 3, s // 3, seed=3, extremes=True, end_to_end=False,
                  screen_channel=c),
        verify_plate(c),
    )


def _sweep_values(values: Optional[Dict[str, Sequence]] = None) -> Dict[str, Tuple]:
    """``values`` (default :data:`SWEEP_VALUES`), checked against the knob spec: one entry per knob."""
    values = {k: tuple(v) for k, v in (SWEEP_VALUES if values is None else values).items()}
    unknown = sorted(set(values) - set(KNOBS_BY_NAME))
    missing = [k.name for k in KNOBS if k.name not in values]
    if unknown or missing:
        raise ValueError(f"the validation's knob sweep does not match the knob spec: "
                         f"{'no values for ' + ', '.join(missing) if missing else ''}"
                         f"{'; ' if unknown and missing else ''}{'unknown ' + ', '.join(unknown) if unknown else ''}; "
                         f"give every knob of corridorkey_model.keying.knobs.KNOBS its values in "
                         f"corridorkey_export.validate.SWEEP_VALUES")
    for name, vals in values.items():
        for v in vals:
            KNOBS_BY_NAME[name].check(v)
    return {k.name: values[k.name] for k in KNOBS}  # spec order


def knob_settings(sweep: str = "pairwise", values: Optional[Dict[str, Sequence]] = None) -> List[Dict[str, object]]:
    """Knob settings of a sweep.

    ``"full"``: the cartesian product. ``"pairwise"``: a greedy covering array in
    which every pair of values of any two knobs occurs in at least one setting.
    """
    values = _sweep_values(values)
    names = list(values)
    product = [dict(zip(names, combo)) for combo in itertools.product(*(values[n] for n in names))]
    if sweep == "full":
        return product
    if sweep != "pairwise":
        raise ValueError(f"unknown sweep {sweep!r}; choose from {', '.join(SWEEPS)}")

    def pairs(setting: Dict[str, object]) -> set:
        return {(a, setting[a], b, setting[b]) for a, b in itertools.combinations(names, 2)}

    uncovered = set().union(*(pairs(s) for s in product))
    chosen = []
    while uncovered:
        best = max(product, key=lambda s: len(pairs(s) & uncovered))
        chosen.append(best)
        uncovered -= pairs(best)
    return chosen


def end_to_end_settings(count: int, values: Optional[Dict[str, Sequence]] = None) -> List[Dict[str, object]]:
    """Knob settings of ``count`` end-to-end calls of ``forward``.

    The last call (of two or more) has every knob at its default: with the Verify plate
    it is the Verify button's reference. The others take, per knob, its sweep values off
    the default (last first) in turn: every knob is off its default in the first call,
    so with two or more calls every knob takes two different values, and a ``forward``
    that ignored a knob attribute or hard-wired a value would fail at least one call.
    """
    values = _sweep_values(values)
    order = {}
    for name, vals in values.items():
        default = KNOBS_BY_NAME[name].typed_default
        order[name] = [v for v in reversed(vals) if v != default] or [default]
    calls = [{name: seq[i % len(seq)] for name, seq in order.items()} for i in range(count)]
    if count >= 2:
        calls[-1] = {k.name: k.typed_default for k in KNOBS}
    return calls


def model_size(knobs: Dict[str, object], img_size: int, preview_size: int = 0) -> int:
    """The resolution a setting keys at (the wrapper's ``model_size``): the preview size for ``quality`` 1
    in a file that has one, else S."""
    return int(preview_size) if knobs.get(QUALITY.name) == 1 and preview_size > 0 else int(img_size)


def frame_knobs(knobs: Dict[str, object]) -> Dict[str, object]:
    """``knobs`` without the routing knobs: what :func:`corridorkey_model.keying.frame.key_frame` takes."""
    return {k: v for k, v in knobs.items() if k not in ROUTING_KNOBS}


def trace_examples(img_size: int, preview_size: int = 0, screen_channel: int = 1) -> Dict[int, Tensor]:
    """Per model resolution (S, and the preview size if any), the network input of the default
    validation's first end-to-end call that runs the network of that resolution.

    The export traces each network on its input, so the eager outputs of the trace runs serve as
    those calls' references (``reference_outputs``) and the validation runs no eager forward for them.
    """
    examples: Dict[int, Tensor] = {}
    for spec, knobs in plan_validation(img_size, screen_channel=screen_channel).end_to_end:
        size = model_size(knobs, img_size, preview_size)
        if size not in examples:
            examples[size] = frame.preprocess(spec.for_setting(knobs), size, screen_channel=spec.screen_channel,
                                              **_stage_kwargs(frame.preprocess, knobs))
    for size in {int(img_size), int(preview_size)} - {0} - set(examples):  # a size no default call reaches
        spec, knobs = plan_validation(img_size, screen_channel=screen_channel).end_to_end[0]
        examples[size] = frame.preprocess(spec.for_setting(knobs), size, screen_channel=spec.screen_channel,
                                          **_stage_kwargs(frame.preprocess, knobs))
    return examples


def trace_example(img_size: int) -> Tensor:
    """The network input at S of the default validation (:func:`trace_examples`, no preview)."""
    return trace_examples(img_size)[int(img_size)]


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class ValidationRow:
    """One comparison: plate, stage, knob setting, max abs error per output channel (R, G, B, A).

    ``stage``: ``"forward"`` (the whole file, a full network forward), ``"preprocess"``
    (the network input; channel A is the hint) or ``"postprocess"`` (on cached network outputs).
    """

    plate: str
    height: int
    width: int
    knobs: Dict[str, object]
    max_abs: Tuple[float, float, float, float]
    finite: bool
    alpha_in_range: bool
    precision: str = "fp32"
    stage: str = "forward"

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
    calls: int  # full forwards of the .pt (end-to-end calls, fp16 included)
    seconds: float
    knob_roundtrip_ok: bool = True
    problems: Tuple[str, ...] = field(default_factory=tuple)
    wiring_ok: bool = True  # forward() passes each knob attribute to the stage parameter of its name
    reference_forwards: int = 0  # eager network forwards the reference ran (reused outputs not counted)
    stage_calls: int = 0  # calls of the file's preprocess / postprocess methods
    preview_size: int = 0  # the file's preview resolution (knob quality = 1), 0: none
    # CPU bfloat16 copy (issue #29): its end-to-end rows against the fp32 reference, or why not checked
    bf16_tolerance: float = BF16_TOLERANCE
    bf16_rows: Tuple[ValidationRow, ...] = ()
    bf16_skipped: Optional[str] = None

    @property
    def max_abs_fp32(self) -> float:
        return max((r.max_error for r in self.rows), default=float("nan"))

    @property
    def max_abs_fp16(self) -> Optional[float]:
        return max((r.max_error for r in self.fp16_rows), default=None)

    @property
    def max_abs_bf16(self) -> Optional[float]:
        return max((r.max_error for r in self.bf16_rows), default=None)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["passed"] = self.passed
        d["max_abs_fp32"] = self.max_abs_fp32
        d["max_abs_fp16"] = self.max_abs_fp16
        d["max_abs_bf16"] = self.max_abs_bf16
        return d


def _judge(rows: Sequence[ValidationRow], tolerance: float, label: str) -> List[str]:
    problems = []
    for r in rows:
        where = f"{label} {r.stage} plate {r.plate} ({r.height}x{r.width}) knobs {_knob_text(r.knobs)}"
        if not r.finite:
            problems.append(f"{where}: output holds NaN or Inf")
        elif not r.alpha_in_range:
            problems.append(f"{where}: alpha leaves [0, 1]")
        elif not r.max_error <= tolerance:
            worst = CHANNEL_NAMES[max(range(4), key=lambda i: r.max_abs[i])]
            problems.append(f"{where}: max abs error {r.max_error:.3g} in {worst} exceeds the tolerance {tolerance:g}")
    return problems


# --------------------------------------------------------------------------- wiring of forward()


def _method_params(ts: nn.Module, method: str) -> List[str]:
    """Parameter names of a TorchScript method (without ``self``); empty if the module lacks it."""
    fn = getattr(ts, method, None)
    schema = getattr(fn, "schema", None)
    return [] if schema is None else [a.name for a in schema.arguments][1:]


def forward_wiring_problems(ts: nn.Module) -> List[str]:
    """What is wrong with how ``ts.forward`` hands the knobs to the stage methods (empty: nothing).

    In the saved graph every knob attribute must be read, and each read passed
    unchanged to a method of the module itself, as the parameter that bears the
    knob's name, and used nowhere else. Then a check of the stage methods over the
    knob sweep is a check of ``forward`` over that sweep.
    """
    graph = getattr(getattr(ts, "forward", None), "graph", None)
    if graph is None:
        return ["the module is not TorchScript: its forward() wiring cannot be checked"]
    self_value = next(graph.inputs())
    reads: Dict[str, list] = {k.name: [] for k in KNOBS}
    for node in graph.findAllNodes("prim::GetAttr"):
        if node.s("name") in reads and node.inputsAt(0).unique() == self_value.unique():
            reads[node.s("name")].append(node)
    problems = []
    for name, nodes in reads.items():
        if not nodes:
            problems.append(f"forward() never reads the knob attribute {name}")
        for node in nodes:
            for use in node.output().uses():
                user = use.user
                if user.kind() != "prim::CallMethod" or user.inputsAt(0).unique() != self_value.unique():
                    problems.append(f"forward() uses the knob {name} in {user.kind()} instead of passing it to a "
                                    f"stage method (move that math into the method, with {name} as a parameter)")
                    continue
                method = user.s("name")
                params = _method_params(ts, method)
                param = params[use.offset - 1] if 0 < use.offset <= len(params) else None
                if param != name:
                    problems.append(f"forward() passes the knob {name} to {method}() as its parameter {param!r}; "
                                    f"name the parameter {name}")
    return problems


# --------------------------------------------------------------------------- the reference


class _MemoNetwork:
    """The eager network for :func:`corridorkey_model.keying.frame.key_frame`, its outputs kept per input.

    A call with an input equal to an earlier one (or to one of ``known``: pairs of
    input and eager outputs computed elsewhere, e.g. by the export's trace run)
    returns the kept outputs instead of running the network again.
    """

    def __init__(self, model: nn.Module, known: Sequence[Tuple[Tensor, Logits]] = ()) -> None:
        self.model = model
        self.img_size = int(model.img_size)
        self.entries: List[Tuple[Tensor, Logits]] = [(x, tuple(out)) for x, out in known]
        self.forwards = 0

    def __call__(self, x: Tensor) -> Logits:
        for key, out in self.entries:
            if key.shape == x.shape and key.device == x.device and torch.equal(key, x):
                return out
        out = tuple(self.model(x))
        self.entries.append((x, out))
        self.forwards += 1
        return out

    def outputs_for(self, x: Tensor) -> Optional[Logits]:
        for key, out in self.entries:
            if key.shape == x.shape and key.device == x.device and torch.equal(key, x):
                return out
        return None


class _FixedOutputs:
    """A stand-in network for ``key_frame`` that returns given outputs: the reference of the post stage."""

    def __init__(self, img_size: int, outputs: Logits) -> None:
        self.img_size = img_size
        self.outputs = outputs

    def __call__(self, x: Tensor) -> Logits:
        return self.outputs


def _stage_kwargs(fn: Callable, knobs: Dict[str, object]) -> Dict[str, object]:
    """The knobs of ``knobs`` that the Python function ``fn`` takes, by parameter name."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in knobs.items() if k in params}


def _reference_problems(pre: Sequence[str], post: Sequence[str]) -> List[str]:
    """The reference and the file must split the knobs between the stages alike."""
    problems = []
    everything = inspect.signature(frame.key_frame).parameters
    for k in KNOBS:
        if k.name not in everything and k.name not in ROUTING_KNOBS:
            problems.append(f"the reference corridorkey_model.keying.frame.key_frame takes no parameter {k.name}")
        if k.name not in pre and k.name not in post:
            problems.append(f"the file's {PRE_STAGE}() and {POST_STAGE}() take no parameter {k.name}: "
                            f"the knob cannot reach the output")
    # the routing knobs pick the model resolution, i.e. the size preprocess resizes to
    ref_pre = set(_stage_kwargs(frame.preprocess, {k.name: 0 for k in KNOBS})) | set(ROUTING_KNOBS)
    if ref_pre != set(pre):
        problems.append(f"the file's {PRE_STAGE}() takes the knobs {sorted(pre)} but the reference "
                        f"corridorkey_model.keying.frame.preprocess takes {sorted(ref_pre)}")
    return problems


# --------------------------------------------------------------------------- the comparison


def _load(module: ModuleOrPath, device: torch.device) -> nn.Module:
    if isinstance(module, nn.Module):
        return module
    return torch.jit.load(str(module), map_location=device)


def _compare(out: Tensor, ref: Tensor, spec: PlateSpec, knobs: Dict[str, object], precision: str,
             stage: str = "forward") -> ValidationRow:
    out = out.float()
    finite = bool(torch.isfinite(out).all())
    err = (out - ref).abs().amax(dim=(0, 2, 3)) if finite else torch.full((4,), float("inf"))
    if stage == "preprocess":  # channel 3 is the hint, not an output alpha
        alpha_ok = finite
    else:
        alpha = out[:, 3]
        alpha_ok = finite and bool((alpha >= 0).all()) and bool((alpha <= 1).all())
    return ValidationRow(spec.name, spec.height, spec.width, dict(knobs),
                         tuple(float(e) for e in err.cpu()), finite, alpha_ok, precision, stage)


def _fp16_plan(fp16: Union[bool, str], device: torch.device, img_size: int) -> Optional[str]:
    """``None`` if fp16 is to be checked, else why not."""
    if fp16 is False or fp16 == "off":
        return "not requested"
    if fp16 == "auto" and device.type == "cpu" and img_size > FP16_CPU_AUTO_MAX_SIZE:
        return (f"skipped on CPU at S={img_size}: CPU half-precision convolutions are ~100x slower than fp32 "
                f"(pass --fp16 on to force it; a CUDA device checks it by default)")
    return None


def _bf16_plan(bf16: Union[bool, str], ts: nn.Module, device: torch.device) -> Optional[str]:
    """``None`` if the CPU bfloat16 copy is to be checked, else why not (issue #29)."""
    from corridorkey_model.devices import cpu_bf16_support

    if bf16 is False or bf16 == "off":
        return "not requested"
    if int(getattr(ts, "has_cpu_bf16", 0)) != 1:
        return "the file has no CPU bfloat16 copy"
    if device.type != "cpu":
        return f"the bfloat16 copy runs on a CPU only (validating on {device})"
    support = cpu_bf16_support()
    if bf16 == "auto" and not support.supported:
        return f"skipped: {support.describe()} (emulated bfloat16 is slow; pass bf16='on' to force it)"
    return None


def _distinct(settings: Sequence[Dict[str, object]], names: Sequence[str]) -> List[Dict[str, object]]:
    """``settings`` restricted to the knobs ``names``, without repeats, in first-seen order."""
    seen, out = set(), []
    for s in settings:
        part = {n: s[n] for n in names if n in s}
        key = tuple(part.items())
        if key not in seen:
            seen.add(key)
            out.append(part)
    return out


@dataclass(frozen=True)
class ValidationPlan:
    """What a validation will run: end-to-end cases and stage settings (see :func:`plan_validation`)."""

    plates: Tuple[PlateSpec, ...]
    end_to_end: Tuple[Tuple[PlateSpec, Dict[str, object]], ...]
    settings: Tuple[Dict[str, object], ...]
    sweep: str

    @property
    def forward_calls(self) -> int:
        return len(self.end_to_end)

    def describe(self, img_size: int, preview_size: int = 0) -> str:
        sizes = Counter(model_size(k, img_size, preview_size) for _p, k in self.end_to_end)
        where = ", ".join(f"{n} at {'S' if s == img_size else 'the preview size'}={s}" for s, n in sorted(
            sizes.items(), reverse=True))
        return (f"{self.forward_calls} end-to-end call(s) of the .pt ({where}; each a full forward, plus an "
                f"eager forward for its reference unless a trace run is reused) and stage checks of "
                f"{len(self.settings)} knob setting(s) on {len(self.plates)} plate(s) on cached network outputs "
                f"({self.sweep} sweep)")


def plan_validation(img_size: int, plates: Optional[Sequence[PlateSpec]] = None, sweep: str = "pairwise",
                    settings: Optional[Sequence[Dict[str, object]]] = None,
                    screen_channel: int = 1) -> ValidationPlan:
    """The cases of a validation. ``"full"`` runs every plate and setting (``settings`` when given) end to end."""
    plates = tuple(default_plates(img_size, screen_channel) if plates is None else plates)
    if not plates:
        raise ValueError("validation needs at least one plate")
    sweep_name = sweep if settings is None else "custom"
    # A given setting may name only some knobs: the others take the spec's default.
    defaults = {k.name: k.typed_default for k in KNOBS}
    settings = tuple(knob_settings(sweep) if settings is None else (dict(defaults, **s) for s in settings))
    if sweep == "full":  # every setting end to end (given settings too)
        cases = tuple((p, dict(s)) for p in plates for s in settings)
    else:
        e2e = [p for p in plates if p.end_to_end] or [plates[0]]
        cases = tuple(zip(e2e, end_to_end_settings(len(e2e))))
    return ValidationPlan(plates, cases, settings, sweep_name)


def manifest_problems(manifest: Dict[str, object], img_size: int, screen: str) -> List[str]:
    """What a ``.pt``'s manifest says that the loaded file contradicts: its model resolution ``img_size``
    (S) and its screen. Empty when they agree (or the manifest does not say)."""
    problems = []
    recorded = manifest.get("img_size")
    if recorded is not None and (type(recorded) is not int or recorded != img_size):
        problems.append(f"the manifest records img_size {recorded!r} but the file runs at S={img_size}")
    recorded_screen = (manifest.get("screen") or {}).get("name") if isinstance(manifest.get("screen"), dict) else None
    if recorded_screen is not None and recorded_screen != screen:
        problems.append(f"the manifest records the {recorded_screen!r} screen but the file is a {screen}-screen one")
    return problems


def validate_torchscript(module: ModuleOrPath, model: nn.Module, *, device: Union[str, torch.device] = "cpu",
                         plates: Optional[Sequence[PlateSpec]] = None, sweep: str = "pairwise",
                         settings: Optional[Sequence[Dict[str, object]]] = None,
                         tolerance: float = FP32_TOLERANCE, fp16: Union[bool, str] = "auto",
                         fp16_tolerance: float = FP16_TOLERANCE, bf16: Union[bool, str] = "auto",
                         bf16_tolerance: float = BF16_TOLERANCE, fused_attn: Optional[bool] = None,
                         progress: bool = True,
                         reference_outputs: Sequence[Tuple[Tensor, Logits]] = (),
                         preview_model: Optional[nn.Module] = None,
                         on_forward: Optional[Callable[[PlateSpec, Dict[str, object], Tensor], None]] = None
                         ) -> ValidationReport:
    """Compare a CorridorKey TorchScript module with the eager reference; returns a :class:`ValidationReport`.

    ``module``: path of a saved .pt (loaded with ``torch.jit.load`` onto ``device``)
    or a TorchScript module. ``model``: the eager GreenFormer the file was exported
    from (same weights, same S), moved to ``device``. ``plates``: default
    :func:`default_plates`. ``sweep``: ``"pairwise"`` or ``"full"`` (or give the
    stage ``settings`` explicitly). ``fp16``: ``True`` / ``"on"``, ``False`` /
    ``"off"`` or ``"auto"`` (CUDA always, CPU only up to S =
    :data:`FP16_CPU_AUTO_MAX_SIZE`). ``bf16``: the file's CPU bfloat16 copy (``cpu_bf16`` = 1) end
    to end on the first end-to-end call, ``"auto"`` where the CPU has bfloat16 units. ``fused_attn``:
    the attention kernel the file
    was traced with (from the manifest), applied to the eager model so both run
    the same kernel. ``reference_outputs``: ``(network input, eager outputs)``
    pairs computed already (the export's trace run), used instead of an eager
    forward on an equal input. ``preview_model``: the eager GreenFormer at the file's preview
    size (required when the file has a preview path; the ``quality`` 1 reference).
    ``on_forward(plate, knobs, output)`` is called with the output of every fp32 end-to-end
    call (the export keeps the Verify plate's). The module's knob attributes are restored afterwards.
    """
    from tqdm import tqdm

    device = torch.device(device)
    started = time.perf_counter()
    ts = _load(module, device)
    img_size = int(ts.img_size)
    reference_size = int(getattr(model, "img_size", img_size))
    if reference_size != img_size:
        raise ValueError(f"the .pt runs at S={img_size} but the reference model at S={reference_size}; "
                         f"build the reference with --img-size {img_size}")
    model = model.to(device).eval()
    preview_size = int(getattr(ts, "preview_size", 0))
    networks = {img_size: model}
    if preview_size > 0:
        if preview_model is None or int(getattr(preview_model, "img_size", -1)) != preview_size:
            raise ValueError(f"the .pt has a preview path at {preview_size} px; give its reference, the eager model "
                             f"at S={preview_size} (preview_model), not "
                             f"{None if preview_model is None else preview_model.img_size}")
        networks[preview_size] = preview_model.to(device).eval()
    screen_channel = int(getattr(ts, "screen_channel", 1))  # a constant of the file (green 1, blue 2)
    plan = plan_validation(img_size, plates, sweep, settings, screen_channel)
    fp16_skip = _fp16_plan(fp16, device, img_size)
    bf16_skip = _bf16_plan(bf16, ts, device)
    pre_knobs = [n for n in _method_params(ts, PRE_STAGE) if n in KNOBS_BY_NAME]
    post_knobs = [n for n in _method_params(ts, POST_STAGE) if n in KNOBS_BY_NAME]
    wiring = forward_wiring_problems(ts)
    problems: List[str] = wiring + _reference_problems(pre_knobs, post_knobs)
    if problems:  # the stage checks would not stand for forward(): report without running anything
        return ValidationReport(str(device), img_size, plan.sweep, tolerance, fp16_tolerance, (), (),
                                fp16_skip, 0, time.perf_counter() - started, True, tuple(problems), not wiring)

    pre_settings = _distinct(plan.settings, pre_knobs)
    post_settings = _distinct(plan.settings, post_knobs)
    stage_calls = len(plan.plates) * (len(pre_settings) + len(post_settings))
    known = [(x.to(device), tuple(t.to(device) for t in out)) for x, out in reference_outputs]
    memos = {size: _MemoNetwork(net, [k for k in known if k[0].shape[-1] == size]) for size, net in networks.items()}

    def memo_for(knobs: Dict[str, object]) -> _MemoNetwork:
        return memos[model_size(knobs, img_size, preview_size)]
    log.info("validating at S=%d on %s: %s; forward() wiring checked in the graph%s", img_size, device,
             plan.describe(img_size, preview_size), "" if fp16_skip else "; + 1 fp16 end-to-end call")
    saved_knobs = {k.name: getattr(ts, k.name) for k in KNOBS}
    rows: List[ValidationRow] = []
    fp16_rows: List[ValidationRow] = []
    bf16_rows: List[ValidationRow] = []
    bar = tqdm(total=plan.forward_calls + stage_calls + (0 if fp16_skip else 1) + (0 if bf16_skip else 1),
               desc="validate", unit="check",
               disable=not progress, leave=False)
    try:
        with torch.no_grad(), contextlib.ExitStack() as attention:
            for net in networks.values():
                attention.enter_context(fused_attention(net, fused_attn))
            outputs: Dict[str, Logits] = {}
            for spec, knobs in plan.end_to_end:  # the whole file, each call a full network forward
                plate = spec.for_setting(knobs).to(device)
                memo = memo_for(knobs)
                ref = frame.key_frame(memo, plate, screen_channel=screen_channel, **frame_knobs(knobs))
                set_knobs(ts, **knobs)
                out = ts(plate)
                rows.append(_compare(out, ref, spec, knobs, "fp32"))
                if on_forward is not None:
                    on_forward(spec, dict(knobs), out)
                outputs.setdefault(spec.name, memo.outputs_for(
                    frame.preprocess(plate, memo.img_size, screen_channel=screen_channel,
                                     **_stage_kwargs(frame.preprocess, knobs))))
                bar.update(1)
            any_outputs = next(iter(outputs.values()))
            for spec in plan.plates:  # the stages over the sweep, on cached network outputs
                for knobs in pre_settings:
                    plate = spec.for_setting(knobs).to(device)
                    ref = frame.preprocess(plate, model_size(knobs, img_size, preview_size),
                                           screen_channel=screen_channel, **_stage_kwargs(frame.preprocess, knobs))
                    rows.append(_compare(getattr(ts, PRE_STAGE)(plate, **knobs), ref, spec, knobs, "fp32",
                                         PRE_STAGE))
                    bar.update(1)
                cached = outputs.get(spec.name, any_outputs)
                plate = spec.tensor(linear=False).to(device)
                h, w = int(plate.shape[-2]), int(plate.shape[-1])
                for knobs in post_settings:
                    ref = frame.key_frame(_FixedOutputs(int(cached[0].shape[-1]), cached), plate,
                                          screen_channel=screen_channel, **frame_knobs(knobs))
                    out = getattr(ts, POST_STAGE)(cached[0], cached[1], cached[2], h, w, **knobs)
                    rows.append(_compare(out, ref, spec, knobs, "fp32", POST_STAGE))
                    bar.update(1)
            if not fp16_skip:
                spec, knobs = plan.end_to_end[0]
                # Despeckle off in half precision: an alpha within rounding of its 0.5 threshold can fall
                # on the other side and move a whole island's edge (0.016 seen), not an error of the file.
                knobs = dict(knobs, **{DESPECKLE_SIZE.name: 0})
                plate = spec.for_setting(knobs).to(device)
                fp16_rows.append(_run_fp16(module, ts, spec, knobs, plate,
                                           frame.key_frame(memo_for(knobs), plate, screen_channel=screen_channel,
                                                           **frame_knobs(knobs))))
                bar.update(1)
            if not bf16_skip:  # CPU bfloat16 copy (issue #29), same case as the first final end-to-end row
                # (its eager reference is known: no extra forward)
                spec, knobs = next(((s, k) for s, k in plan.end_to_end if int(k.get(QUALITY.name, 0)) == 0),
                                   plan.end_to_end[0])
                # as for fp16, despeckle off (a 0.5 threshold amplifies rounding); quality final: the bfloat16
                # copy is the final network's (the preview path runs fp32)
                knobs = dict(knobs, **{DESPECKLE_SIZE.name: 0, QUALITY.name: 0})
                plate = spec.for_setting(knobs).to(device)
                ref = frame.key_frame(memo_for(knobs), plate, screen_channel=screen_channel, **frame_knobs(knobs))
                set_knobs(ts, **knobs)
                saved_bf16 = int(ts.cpu_bf16)
                ts.cpu_bf16 = 1
                try:
                    bf16_rows.append(_compare(ts(plate), ref, spec, knobs, "bf16"))
                finally:
                    ts.cpu_bf16 = saved_bf16
                bar.update(1)
    finally:
        bar.close()
        set_knobs(ts, **saved_knobs)

    roundtrip = all(getattr(ts, k) == v for k, v in saved_knobs.items())
    problems += _judge(rows, tolerance, "fp32") + _judge(fp16_rows, fp16_tolerance, "fp16")
    problems += _judge(bf16_rows, bf16_tolerance, "bf16")
    if not roundtrip:
        problems.append("knob attributes did not keep the values written to them")
    report = ValidationReport(str(device), img_size, plan.sweep, tolerance, fp16_tolerance, tuple(rows),
                              tuple(fp16_rows), fp16_skip, plan.forward_calls + len(fp16_rows) + len(bf16_rows),
                              time.perf_counter() - started, roundtrip, tuple(problems), True,
                              sum(m.forwards for m in memos.values()), stage_calls, preview_size=preview_size,
                              bf16_tolerance=bf16_tolerance, bf16_rows=tuple(bf16_rows), bf16_skipped=bf16_skip)
    log.info("validation %s in %.1f s (%d .pt forward(s), %d eager forward(s), %d stage check(s)): max abs error "
             "fp32 %.3g%s", "passed" if report.passed else "FAILED", report.seconds, report.calls,
             report.reference_forwards, report.stage_calls, report.max_abs_fp32,
             ("" if report.max_abs_fp16 is None else f", fp16 {report.max_abs_fp16:.3g}")
             + ("" if report.max_abs_bf16 is None else f", CPU bf16 {report.max_abs_bf16:.3g}"))
    return report


def _run_fp16(module: ModuleOrPath, ts: nn.Module, spec: PlateSpec, knobs: Dict[str, object], plate: Tensor,
              ref: Tensor) -> ValidationRow:
    # A fresh copy: .half() would otherwise round the fp32 weights of the caller's module.
    half = (copy.deepcopy(ts) if isinstance(module, nn.Module) else _load(module, plate.device)).half()
    set_knobs(half, **knobs)
    return _compare(half(plate.half()), ref, spec, knobs, "fp16")


# --------------------------------------------------------------------------- printing


def _knob_text(knobs: Dict[str, object]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in knobs.items())


_SHORT = {GAMMA_INPUT.name: "gamma", DESPILL_STRENGTH.name: "despill", REFINER_STRENGTH.name: "refiner",
          AUTO_HINT.name: "autohint"}


def format_report(report: ValidationReport) -> str:
    """The error table: one line per comparison, max abs error per channel, then the verdict."""
    names = [k.name for k in KNOBS]
    width = max([7] + [len(_SHORT.get(n, n)) for n in names])
    head = (f"{'plate':<22} {'size':>11} {'stage':<11} {'prec':<4} "
            + " ".join(f"{_SHORT.get(n, n):>{width}}" for n in names)
            + " " + " ".join(f"{'max|err| ' + c:>13}" for c in CHANNEL_NAMES) + "  ok")
    preview = f", preview at {report.preview_size} (quality 1)" if report.preview_size else ", no preview path"
    lines = [f"Parity of the TorchScript file with the Python reference (S={report.img_size}{preview}, device "
             f"{report.device}, {report.sweep} knob sweep, {report.calls} full forward(s) of the .pt, "
             f"{report.reference_forwards} eager forward(s), {report.stage_calls} stage check(s), "
             f"{report.seconds:.1f} s)",
             "stage: forward = the whole file end to end; preprocess = its network input (A = hint); "
             "postprocess = its output from cached network outputs",
             head, "-" * len(head)]

    def cell(r: ValidationRow, n: str) -> str:
        v = r.knobs.get(n, "")
        return f"{v:>{width}g}" if isinstance(v, float) else f"{v:>{width}}"

    def line(r: ValidationRow, tol: float) -> str:
        ok = r.finite and r.alpha_in_range and r.max_error <= tol
        return (f"{r.plate:<22} {f'{r.height}x{r.width}':>11} {r.stage:<11} {r.precision:<4} "
                + " ".join(cell(r, n) for n in names) + " "
                + " ".join(f"{e:>13.3e}" for e in r.max_abs) + ("  ok" if ok else "  FAIL"))

    lines += [line(r, report.tolerance) for r in report.rows]
    lines.append("-" * len(head))
    if report.rows:
        per_channel = [max(r.max_abs[i] for r in report.rows) for i in range(4)]
        lines.append(f"{'max over fp32 rows':<22} {'':>11} {'':<11} {'fp32':<4} "
                     f"{'':>{(width + 1) * len(names) - 1}} "
                     + " ".join(f"{e:>13.3e}" for e in per_channel) + f"  (tolerance {report.tolerance:g})")
    for label, short, rows, tol, worst, skipped in (
            ("fp16 (module and input .half())", "fp16", report.fp16_rows, report.fp16_tolerance,
             report.max_abs_fp16, report.fp16_skipped),
            ("CPU bfloat16 copy (cpu_bf16 = 1)", "CPU bfloat16 copy", report.bf16_rows, report.bf16_tolerance,
             report.max_abs_bf16, report.bf16_skipped)):
        if rows:
            lines += [line(r, tol) for r in rows]
            lines.append(f"{label} against the fp32 reference: max abs error {worst:.3e} (tolerance {tol:g})")
        else:
            lines.append(f"{short}: {skipped}")
    lines.append("forward() wiring: " + ("each knob attribute goes unchanged to the stage parameter of its name "
                                         "(checked in the saved graph)" if report.wiring_ok else "FAILED"))
    if report.passed:
        lines.append("PASSED: the file computes what the Python reference computes.")
    else:
        lines.append(f"FAILED ({len(report.problems)} problem(s)):")
        lines += [f"  - {p}" for p in report.problems[:20]]
    return "\n".join(lines)


def cat_file_settings(screen: NukeModel = GREEN) -> str:
    """CatFileCreator settings for the exported file, generated from the knob spec."""
    lines = [
        "CatFileCreator settings (NukeX: Other > CatFileCreator), or run nuke/corridorkey_create_cat.py"
        + ("" if screen is GREEN else f" --screen {screen.name}") + ":",
        "  Torchscript File : <path of the .pt>",
        f"  Cat File         : <path>/{screen.cat_filename}",
        f"  Channels In      : {','.join(CHANNELS_IN)}",
        f"  Channels Out     : {','.join(CHANNELS_OUT)}",
        f"  Model Id         : {screen.model_id}",
        f"  Output Scale     : {OUTPUT_SCALE}",
        "  User knobs (add to the CatFileCreator before Create .cat file; the name must match exactly):",
    ]
    for k in KNOBS:
        if k.choices:  # an Int knob on the .cat (nuke/corridorkey_create_cat.py, make_knob, says why)
            kind = f"Integer knob, {k.describe_choices()}"
            nk = f'addUserKnob {{3 {k.name} l "{k.label}"}}'
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
    "FP32_TOLERANCE", "FP16_TOLERANCE", "BF16_TOLERANCE", "FP16_CPU_AUTO_MAX_SIZE", "SWEEP_VALUES", "SWEEPS",
    "PlateSpec", "default_plates", "verify_plate", "knob_settings", "end_to_end_settings", "trace_example",
    "trace_examples", "model_size", "frame_knobs", "ROUTING_KNOBS", "ValidationPlan", "plan_validation",
    "forward_wiring_problems", "ValidationRow", "ValidationReport", "validate_torchscript", "format_report",
    "cat_file_settings",
]
