"""The one specification of CorridorKey's live knobs.

Every place that names a knob reads it from here: the TorchScript wrapper's
attributes, the ``corridorkey`` and ``export-torchscript`` CLIs, the gizmo and
the ``.cat`` creation script generators, the export manifest and the docs'
knob table (checked by tests). Nothing about a knob is typed twice. The Nuke
contract (channel names, Model Id, file names) is ``corridorkey_export.nuke_contract``.

A knob here is a plain value the network's pre/post-processing reads on every
call. Nuke's Inference node exposes each as a user knob of the .cat file and
writes its value into the module attribute of the same name before each
render.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple


@dataclass(frozen=True)
class ScreenSpec:
    """One released model's screen colour.

    The weights cannot tell a green checkpoint from a blue one, so the screen is
    a property of the exported file (a constant baked into the .pt, recorded in
    its manifest), never a live knob. ``channel`` is the RGB index of the
    screen colour (the despill acts on it). What Nuke calls each model (Model
    Id, file names) is the export's business: ``corridorkey_export.nuke_contract``.
    """

    name: str
    label: str
    channel: int


GREEN = ScreenSpec("green", "Green", 1)
BLUE = ScreenSpec("blue", "Blue", 2)
#: The released models' screens, in the order of the gizmo's Screen menu.
SCREENS: Tuple[ScreenSpec, ...] = (GREEN, BLUE)
SCREENS_BY_NAME: Dict[str, ScreenSpec] = {s.name: s for s in SCREENS}


@dataclass(frozen=True)
class KnobSpec:
    """One live knob.

    ``kind`` is ``"float"`` or ``"int"`` (TorchScript attributes and Nuke's
    Inference node know no other types). An ``int`` knob with ``choices`` is an
    enumeration: value ``i`` means ``choices[i]``.
    """

    name: str
    kind: str
    default: float
    minimum: float
    maximum: float
    label: str
    tooltip: str
    choices: Optional[Tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int"):
            raise ValueError(f"knob {self.name}: kind must be 'float' or 'int', not {self.kind!r}")
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"knob {self.name}: default {self.default} outside [{self.minimum}, {self.maximum}]")
        if self.choices is not None and (self.kind != "int" or len(self.choices) != self.maximum - self.minimum + 1):
            raise ValueError(f"knob {self.name}: choices need an int knob with one choice per value")

    @property
    def python_type(self) -> type:
        return float if self.kind == "float" else int

    @property
    def typed_default(self) -> Any:
        return self.python_type(self.default)

    def check(self, value: Any) -> Any:
        """Return ``value`` as this knob's type, or raise ``ValueError`` naming the range."""
        try:
            typed = self.python_type(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a {self.kind}, got {value!r}") from None
        if self.kind == "int" and typed != value:
            raise ValueError(f"{self.name} must be a whole number, got {value!r}")
        if not self.minimum <= typed <= self.maximum:
            raise ValueError(
                f"{self.name} = {value!r} is outside its range [{self.minimum:g}, {self.maximum:g}]"
                + (f" ({self.describe_choices()})" if self.choices else "")
            )
        return typed

    def describe_choices(self) -> str:
        return ", ".join(f"{i} = {c}" for i, c in enumerate(self.choices or ()))

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["default"] = self.typed_default
        d["minimum"] = self.python_type(self.minimum)
        d["maximum"] = self.python_type(self.maximum)
        if self.choices is not None:
            d["choices"] = list(self.choices)
        return d


DESPILL_STRENGTH = KnobSpec(
    name="despill_strength",
    kind="float",
    default=0.0,
    minimum=0.0,
    maximum=10.0,
    label="Despill",
    tooltip=(
        "Spill removal on the foreground colour, 0 = off, 10 = full, on the screen's "
        "colour (green, or blue for the blue-screen model). Luminance preserving: the "
        "screen colour above the average of the other two is removed and half of it "
        "added back to each of them."
    ),
)

GAMMA_INPUT = KnobSpec(
    name="gamma_input",
    kind="int",
    default=0,
    minimum=0,
    maximum=1,
    label="Input Gamma",
    tooltip=(
        "Encoding of the plate the network receives. sRGB: the plate is already "
        "sRGB-encoded (the network's training domain). Linear: the plate is "
        "scene-linear and is sRGB-encoded after the resize to the model resolution."
    ),
    choices=("sRGB", "Linear"),
)

REFINER_STRENGTH = KnobSpec(
    name="refiner_strength",
    kind="float",
    default=1.0,
    minimum=0.0,
    maximum=1.0,
    label="Refiner",
    tooltip=(
        "How much of the CNN refiner's edge correction is applied, in logit space: "
        "0 = the coarse transformer prediction, 1 = the full model."
    ),
)

DESPECKLE_SIZE = KnobSpec(
    name="despeckle_size",
    kind="int",
    default=0,
    minimum=0,
    maximum=10000,
    label="Despeckle",
    tooltip=(
        "Removes solid islands of the matte (tracking markers, noise) smaller than this many "
        "pixels, 0 = off. Upstream CorridorKey's despeckle on the alpha at plate resolution: "
        "8-connected islands of alpha > 0.5 below the size are dropped, and the alpha is "
        "multiplied by the kept islands grown by 25 px and softened (11 x 11 blur). "
        "400 is upstream's command-line default."
    ),
)

AUTO_HINT = KnobSpec(
    name="auto_hint",
    kind="int",
    default=0,
    minimum=0,
    maximum=2,
    label="Auto Hint",
    tooltip=(
        "Where the rough hint comes from. Hint Input: the hint channel (the 4th input channel). "
        "Automatic: made from the plate by a screen-difference key (screen colour estimated from "
        "the plate, thresholded, eroded inside the subject's edge and softened, at the model "
        "resolution, or at 512 px when that is larger); the hint channel is ignored. "
        "Automatic x garbage matte: the automatic hint times the hint channel clamped to [0, 1], a "
        "garbage matte (1: the subject may be here, 0: never subject); use it where the screen does "
        "not fill the frame (set walls, light stands, the studio are not screen-coloured, so the "
        "automatic hint alone takes them for subject)."
    ),
    choices=("Hint Input", "Automatic", "Automatic x garbage matte"),
)

# Issue #27: not frame math but which of the file's two traced networks runs (the export's --img-size or its
# --preview-size); a file exported without --preview-size has the knob and ignores it.
QUALITY = KnobSpec(
    name="quality",
    kind="int",
    default=0,
    minimum=0,
    maximum=1,
    label="Quality",
    tooltip=(
        "Which model resolution keys the frame. Final: the file's model resolution. Preview: its preview "
        "resolution (export-torchscript --preview-size), for interactive work: at 1024 in a 2048 file a frame "
        "costs about 1/5 on a GPU and 1/7 on a CPU. A file exported without a preview resolution ignores it "
        "and always keys at its model resolution."
    ),
    choices=("Final", "Preview"),
)

#: Not a member of KNOBS (issue #29): a run-time choice of how the network computes, not of what, so the
#: reference math (frame.key_frame) takes no such parameter and the knob sweep does not cover it. The .pt
#: has the attribute (0: fp32; 1: the network's bfloat16 copy, for fp32 input on a CPU); the validation
#: checks it end to end against fp32 with its own tolerance. It is a knob of the .cat (CAT_KNOBS); the gizmo
#: computes it per machine: 1 only where its Precision menu asks for bfloat16 AND that machine's CPU has
#: bfloat16 units (elsewhere bfloat16 would be emulated, slower than fp32).
#: CPU feature flags (Linux ``/proc/cpuinfo`` names) that give native bfloat16 arithmetic: what
#: ``corridorkey_model.devices.cpu_bf16_support`` and the gizmo's per-machine check read.
CPU_BF16_FLAGS: Tuple[str, ...] = ("avx512_bf16", "amx_bf16")

CPU_BF16 = KnobSpec(
    name="cpu_bf16",
    kind="int",
    default=0,
    minimum=0,
    maximum=1,
    label="CPU bfloat16",
    tooltip=(
        "On a CPU, run the network in bfloat16: faster on CPUs with bfloat16 units (Intel Xeon "
        "Sapphire Rapids and later, AMD Zen 4 and later), alpha within a few 1e-2 of fp32. Off: fp32. "
        "No effect on the GPU (use Optimize for Speed and Memory there). A CPU without bfloat16 units "
        "would emulate it, slower than fp32: leave it off there."
    ),
    choices=("Off", "On"),
)

#: All knobs, in the order they appear in Nuke and in help texts.
KNOBS: Tuple[KnobSpec, ...] = (DESPILL_STRENGTH, GAMMA_INPUT, REFINER_STRENGTH, DESPECKLE_SIZE, AUTO_HINT, QUALITY)

KNOBS_BY_NAME: Dict[str, KnobSpec] = {k.name: k for k in KNOBS}

#: The knobs of the .cat file (what Nuke's Inference node shows and writes into the .pt before each render):
#: the live knobs, then cpu_bf16.
CAT_KNOBS: Tuple[KnobSpec, ...] = KNOBS + (CPU_BF16,)


def knob_table_markdown() -> str:
    """The docs' knob table (README.md and docs/nuke.md; a test checks that every knob table is this)."""
    rows = [
        "| Knob | Type | Range | Default | What it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in KNOBS:
        rng = k.describe_choices() if k.choices else f"{k.minimum:g} to {k.maximum:g}"
        default = f"{k.typed_default}" + (f" ({k.choices[int(k.default)]})" if k.choices else "")
        rows.append(f"| `{k.name}` ({k.label}) | {k.kind} | {rng} | {default} | {k.tooltip} |")
    return "\n".join(rows)
