"""Parity in the real Nuke: the kit a TD renders, and the judge of its renders.

``export-torchscript parity-kit CorridorKey.pt --output KIT`` writes a
self-contained folder (docs/parity.md)::

    KIT/kit.json              the contract: every case, its input, knobs, reference and renders
    KIT/README.md             the three commands and the one Nuke render
    KIT/parity.nk             renders every case in fp32 (Nuke's CPU, or the GPU with --gpu)
    KIT/parity_fp16.nk        the same with "Optimize for Speed and Memory" (halfPrecision)
    KIT/parity_bf16.nk        the same on the CPU with the .pt's bfloat16 copy (.cat knob cpu_bf16 = 1;
                              the node's CPU Precision: bfloat16), when the .pt has that copy
    KIT/inputs/*.exr          what the Inference node receives: plate RGB, hint in alpha (float)
                              (synthetic plates, and frames of the TD's clip with --clip)
    KIT/reference/*.exr       the .pt's output for each case (float RGBA)
    KIT/renders/              where parity.nk writes (renders-fp16/ for parity_fp16.nk,
                              renders-bf16/ for parity_bf16.nk)

Each case is one plate and one knob setting of the validation's pairwise
sweep (:func:`corridorkey_export.validate.knob_settings`): every knob off its
default at least once, every pair of values of any two knobs at least once.
The references are computed with the saved ``.pt`` in Python, and each is
checked against the eager reference (:func:`corridorkey_model.keying.frame.key_frame`)
before anything is written; the kit is built in a hidden folder beside KIT
and renamed into place only when complete.

``export-torchscript parity-check KIT [RENDERS]`` compares each render with
its reference: per case and channel the max and mean abs error and the share
of pixels over the run mode's tolerance (:data:`corridorkey_model.pipeline.compare.RUN_MODES`),
a heat-map PNG per failing case and a Markdown report.

Nuke facts the script relies on, and their sources:

* ``Read`` knobs ``file`` and ``raw`` (raw data: no colour conversion), ``Write`` knobs
  ``channels``, ``file``, ``file_type``, ``raw``, ``create_directories``, ``use_limit``,
  ``first``, ``last`` and ``Inference`` knobs ``modelFile``, ``useGPUIfAvailable``,
  ``halfPrecision``, ``serialiseKnob``: the node reference of Nuke 17.0v3 scanned from
  Nuke itself (kirkjr2/nuke-python-reference ``data/nodes/Write.json``,
  ``data/nodes/Inference.json``) and Foundry's Write node reference guide
  (learn.foundry.com, reference_guide/image_nodes/write.html).
* ``datatype "32 bit float"`` of the EXR writer: Foundry's NDK example ``exrWriter.cpp``
  (knob ``datatype``) and public .nk files (e.g. the Shotgun Toolkit tk-nuke-writenode
  profiles, ``file_type exr`` / ``datatype "32 bit float"``).
* ``Root`` knobs ``first_frame`` / ``last_frame`` and ``project_directory
  "[python {nuke.script_directory()}]"`` so that relative paths resolve against the
  script's folder (the expression of Project Settings' "Script Directory" button;
  public ``menu.py`` files set it with ``nuke.knobDefault('Root.project_directory', ...)``).
* ``nuke -x -F first-last script.nk`` renders the script's Write nodes over a frame range
  (Foundry, "Command Line Operations" and "Defining Frame Ranges"); "To use the GPU when
  rendering from the command line, add --gpu to your command" (the Inference node's
  ``gpuName`` tooltip, Nuke 17).
* The Inference node's ``.cat`` knobs take their values through ``serialiseKnob`` links
  ``{name:{node.knob};...}`` (the gizmo's form, :mod:`corridorkey_export.nuke_files`),
  here to a ``NoOp`` holding the case's values as user knobs (``addUserKnob`` lines as
  the gizmo writes them).
* The gizmo in "Raw model output" mode with Working Space = Network Colorspace
  (``scene_linear`` both): an OCIO transform between a colour space and itself is a
  no-op processor (OpenColorIO ``Config.getProcessor``; checked with PyOpenColorIO 2.6,
  ``Processor.isNoOp()``), so the gizmo feeds the network the kit's input unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from corridorkey_export.export import returning_freed_memory
from corridorkey_export.exr import CHANNELS, ExrError, read_exr_rgba, write_exr
from corridorkey_export.gizmo import (
    COMPUTED_KNOBS,
    CPU_PRECISION_KNOB,
    CPU_PRECISIONS,
    GIZMO_CLASS,
    HINT_AUTOMATIC,
    HINT_CHANNELS,
    MINIMUM_NUKE,
    OUTPUT_MODES,
    PANEL_AND_COMPUTED_KNOBS,
    QUALITY_MODE_KNOB,
    QUALITY_MODES,
    WORKING_ROLE,
)
from corridorkey_export.nuke_contract import SCREENS, NukeModel
from corridorkey_export.nuke_script import (
    nk_path,
    nk_quote,
    nk_word,
    serialise_knob_links,
    user_knob_line,
    user_knob_value,
)
from corridorkey_export.validate import (
    FP32_TOLERANCE,
    PlateSpec,
    _MemoNetwork,
    frame_knobs,
    knob_settings,
    model_size,
)
from corridorkey_export.wrapper import set_knobs
from corridorkey_model import atomic
from corridorkey_model.keying import frame
from corridorkey_model.keying.knobs import AUTO_HINT, CAT_KNOBS, CPU_BF16, GAMMA_INPUT, KNOBS, QUALITY
from corridorkey_model.pipeline.compare import RUN_MODES, RunMode

log = logging.getLogger(__name__)

KIT_FORMAT = 1
KIT_KIND = "corridorkey-parity-kit"
KIT_JSON = "kit.json"
SCRIPT = "parity.nk"
SCRIPT_FP16 = "parity_fp16.nk"
SCRIPT_BF16 = "parity_bf16.nk"
RENDERS_DIR = "renders"
RENDERS_DIR_FP16 = "renders-fp16"
RENDERS_DIR_BF16 = "renders-bf16"
INPUTS_DIR = "inputs"
REFERENCE_DIR = "reference"
#: The two ways the script renders each case (sub-folders of the renders folder).
VARIANTS = ("inference", "gizmo")
#: ``parity-check``'s report folder inside the renders folder.
REPORT_DIR = "parity-report"
#: The kit's scripts by precision (the keys of kit.json's "scripts" and "renders"): (Nuke script, default renders
#: folder, the suffix a --renders folder gets for it).
PRECISION_FILES: Dict[str, Tuple[str, str, str]] = {"fp32": (SCRIPT, RENDERS_DIR, ""),
                                                    "fp16": (SCRIPT_FP16, RENDERS_DIR_FP16, "-fp16"),
                                                    "bf16": (SCRIPT_BF16, RENDERS_DIR_BF16, "-bf16")}
#: Run mode -> the precision of the script that renders it.
MODE_PRECISION: Dict[str, str] = {"cpu": "fp32", "gpu": "fp32", "gpu-fp16": "fp16", "cpu-bf16": "bf16"}
#: Run mode -> (Nuke script, default renders folder).
MODE_SCRIPTS: Dict[str, Tuple[str, str]] = {mode: PRECISION_FILES[p][:2] for mode, p in MODE_PRECISION.items()}


class KitError(ExrError):
    """The kit could not be built or read, or the renders cannot be judged; the message says why and what to do.

    (A subclass of :class:`~corridorkey_export.exr.ExrError`, which the EXR reads and writes raise.)
    """


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One render of the kit: a plate, a knob setting, and the frame of the Nuke script that renders it.

    ``source``: a synthetic :class:`PlateSpec`, or an ``H x W x 4`` float32 array (a frame of
    the TD's clip: plate RGB, hint in alpha).
    """

    name: str
    plate: str
    width: int
    height: int
    knobs: Dict[str, object]
    frame: int
    source: object = field(default=None, compare=False, repr=False)

    def tensor(self) -> torch.Tensor:
        """``[1, 4, H, W]``: what the Inference node receives for this case."""
        if isinstance(self.source, PlateSpec):
            return self.source.for_setting(self.knobs)
        return torch.from_numpy(np.ascontiguousarray(self.source, np.float32)).permute(2, 0, 1)[None].contiguous()

    @property
    def linear(self) -> bool:
        return self.knobs.get(GAMMA_INPUT.name, GAMMA_INPUT.typed_default) == 1

    @property
    def input_path(self) -> str:
        """Path of the input EXR relative to the kit (one per plate and encoding)."""
        return f"{INPUTS_DIR}/{self.plate}-{'linear' if self.linear else 'srgb'}.exr"

    @property
    def reference_path(self) -> str:
        return f"{REFERENCE_DIR}/{self.name}.exr"

    def render_path(self, variant: str = VARIANTS[0]) -> str:
        """Path of the render relative to the renders folder."""
        return f"{variant}/{self.name}.exr"


def kit_plates(img_size: int, screen_channel: int = 1) -> Tuple[PlateSpec, ...]:
    """The kit's plates on the file's screen colour: soft edges, wisps and spill larger than S and
    non-square; superwhite and negative values; an odd non-square size; a tiny one."""
    s, c = int(img_size), int(screen_channel)
    screen = "blue" if c == 2 else "green"
    return (
        PlateSpec(f"{screen}-soft-edges-spill", s + s // 8 + 1, s + s // 2, seed=11, screen_channel=c),
        PlateSpec(f"{screen}-superwhite-negative", s // 2 + 2, s // 2 + s // 4, seed=12, extremes=True,
                  screen_channel=c),
        PlateSpec(f"{screen}-odd-size", s // 2 + 1, s // 3 + 1, seed=13, screen_channel=c),
        PlateSpec(f"{screen}-tiny", 9, 7, seed=14, screen_channel=c),
    )


def kit_cases(img_size: int, screen_channel: int = 1,
              clip_frames: Sequence[Tuple[int, np.ndarray]] = (), clip_knobs: Optional[Dict[str, object]] = None
              ) -> List[Case]:
    """The pairwise sweep's settings, each on one plate in turn (every plate at least once), then the
    TD's clip frames (``(frame number, H x W x 4 array)``) at ``clip_knobs`` (default: the spec's defaults)."""
    plates = kit_plates(img_size, screen_channel)
    settings = knob_settings("pairwise")
    count = max(len(settings), len(plates))
    cases = []
    for i in range(count):
        plate = plates[i % len(plates)]
        cases.append(Case(f"{i + 1:02d}-{plate.name}", plate.name, plate.width, plate.height,
                          dict(settings[i % len(settings)]), i + 1, plate))
    knobs = {k.name: k.typed_default for k in KNOBS}
    knobs.update(clip_knobs or {})
    for number, img in clip_frames:
        i = len(cases)
        cases.append(Case(f"{i + 1:02d}-clip-{number}", f"clip-{number}", int(img.shape[1]), int(img.shape[0]),
                          dict(knobs), i + 1, img))
    return cases


# --------------------------------------------------------------------------- the Nuke script


def _node(cls: str, lines: Sequence[str]) -> List[str]:
    return [f"{cls} {{"] + [f" {line}" for line in lines] + ["}"]


def _knob_node_name(case: Case) -> str:
    return "Knobs_" + _nk_name(case.name)


def _nk_name(text: str) -> str:
    """A Nuke node name from a case name (letters, digits and underscores, not starting with a digit)."""
    name = "".join(ch if ch.isalnum() else "_" for ch in text)
    return name if name[:1].isalpha() else "c" + name


def _write_node(case: Case, variant: str, renders: str) -> List[str]:
    path = f"{renders.rstrip('/')}/{case.render_path(variant)}"
    return _node("Write", [
        "channels rgba",
        f"file {nk_quote(path)}",
        "file_type exr",
        'datatype "32 bit float"',
        "raw true",
        "create_directories true",
        "use_limit true",
        f"first {case.frame}",
        f"last {case.frame}",
        f"name Write_{variant}_{_nk_name(case.name)}",
    ])


def render_script(cases: Sequence[Case], screen: NukeModel, *, half: bool, renders: str,
                  cat: Optional[str] = None, cpu_bf16: bool = False) -> str:
    """The text of ``parity.nk`` (``half``: ``parity_fp16.nk``; ``cpu_bf16``: ``parity_bf16.nk``).

    Frame ``case.frame`` renders ``case``: a ``Read`` of its input (raw), then (1) the bare
    Inference node loading the ``.cat`` with the case's knob values and (2) the CorridorKey
    gizmo in "Raw model output" mode, each into a ``Write`` (EXR, 32-bit float, raw) limited
    to that frame. ``renders``: the renders folder as written in the Write nodes (relative
    paths resolve against the script's folder). ``cat``: the .cat path; default the
    screen's .cat found on the plugin path, as the gizmo finds it.

    ``cpu_bf16``: every node on the CPU (``useGPUIfAvailable`` off) with the .pt's bfloat16
    copy: the bare Inference node's .cat knob ``cpu_bf16`` linked to 1, the gizmo's CPU
    Precision set to bfloat16 (which it honours on a CPU with bfloat16 units: its onCreate
    reads this machine's CPU flags, docs/nuke.md "CPU precision").
    """
    if half and cpu_bf16:
        raise ValueError("a parity script is fp16 (GPU) or bfloat16 (CPU), not both")
    # Nuke file knobs want forward slashes: a Windows path's backslashes are TCL escapes (C:\\kit -> C:kit).
    model_file = nk_path(cat) if cat else f"[lsearch -inline [plugins -all {screen.cat_filename}] *.cat]"
    renders = nk_path(renders)
    flag = "true" if half else "false"
    use_gpu = "false" if cpu_bf16 else "true"
    lines = [f"version {MINIMUM_NUKE} v1"]
    lines += _node("Root", [
        "inputs 0",
        f"project_directory {nk_quote('[python {nuke.script_directory()}]')}",
        "first_frame 1",
        f"last_frame {len(cases)}",
    ])
    for i, case in enumerate(cases):
        read = f"N{i}"
        # Format and frame range written out, as Nuke saves a Read (format "W H 0 0 W H 1 ", first/last,
        # origfirst/origlast, origset true: public .nk files saved by Nuke): the Read never takes the
        # root format, so the model never gets a padded frame.
        f = case.frame
        lines += _node("Read", ["inputs 0", f"file {nk_quote(case.input_path)}",
                                f'format "{case.width} {case.height} 0 0 {case.width} {case.height} 1 "',
                                f"first {f}", f"last {f}", f"origfirst {f}", f"origlast {f}", "origset true",
                                "raw true", f"name Read_{_nk_name(case.name)}"])
        lines.append(f"set {read} [stack 0]")
        # The case's knob values (and cpu_bf16: 1 in the bfloat16 script, else 0), as user knobs the Inference
        # node's .cat knobs link to.
        knob_lines = ["inputs 0"]
        values = {**case.knobs, CPU_BF16.name: int(cpu_bf16)}
        for spec in CAT_KNOBS:
            knob_lines += [user_knob_line(spec, spec.tooltip), user_knob_value(spec, values[spec.name])]
        knob_lines.append(f"name {_knob_node_name(case)}")
        lines += _node("NoOp", knob_lines)
        links = serialise_knob_links({k.name: f"{_knob_node_name(case)}.{k.name}" for k in CAT_KNOBS})
        lines.append(f"push ${read}")
        lines += _node("Inference", [
            f"useGPUIfAvailable {use_gpu}",
            f"modelFile {nk_quote(model_file)}",
            f"halfPrecision {flag}",
            f"serialiseKnob {links}",
            f"name Inference_{_nk_name(case.name)}",
        ])
        lines += _write_node(case, VARIANTS[0], renders)
        # The gizmo: Plate (input 0) and Hint (input 1) both the input; its alpha is the hint.
        lines.append(f"push ${read}")
        lines.append(f"push ${read}")
        # The gizmo computes auto_hint itself (ModelKnobs: automatic when Hint Channel is "automatic" or
        # the Hint input is unconnected), so the case's auto_hint is set through Hint Channel.
        automatic = int(case.knobs[AUTO_HINT.name]) == 1
        gizmo = ["inputs 2", f"screen {nk_word(screen.label)}", f"useGPUIfAvailable {use_gpu}",
                 f"halfPrecision {flag}", f"output_mode {nk_quote(OUTPUT_MODES[2])}",
                 f"hint_channel {HINT_CHANNELS[HINT_AUTOMATIC if automatic else 0]}",
                 f"working_colorspace {WORKING_ROLE}", f"network_colorspace {WORKING_ROLE}"]
        gizmo += [user_knob_value(spec, case.knobs[spec.name]) for spec in KNOBS if spec.name not in COMPUTED_KNOBS
                  or spec.name in PANEL_AND_COMPUTED_KNOBS]
        # quality through the gizmo's Quality menu (Final / Preview; its Auto would follow the root's proxy mode)
        quality = int(case.knobs.get(QUALITY.name, QUALITY.typed_default))
        gizmo.append(f"{QUALITY_MODE_KNOB} {nk_word(QUALITY_MODES[quality])}")
        if cpu_bf16:
            gizmo.append(f"{CPU_PRECISION_KNOB} {nk_word(CPU_PRECISIONS[1])}")
        gizmo.append(f"name Gizmo_{_nk_name(case.name)}")
        lines += _node(GIZMO_CLASS, gizmo)
        lines += _write_node(case, VARIANTS[1], renders)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the kit


@dataclass(frozen=True)
class KitResult:
    path: Path
    cases: int
    max_eager_error: float
    seconds: float


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _screen_of(ts: torch.nn.Module, pt_path: Path) -> NukeModel:
    channel = int(getattr(ts, "screen_channel", 1))
    screen = next((s for s in SCREENS if s.channel == channel), None)
    if screen is None:
        raise KitError(f"{pt_path} despills channel {channel}, which is neither screen; re-export it")
    return screen


def _modes_json(bf16: bool) -> Dict[str, Dict[str, object]]:
    """kit.json's run modes (``cpu-bf16`` only when the kit has its script: ``bf16``)."""
    return {m.name: {"label": m.label, "tolerance": m.tolerance, "outlier_share": m.outlier_share,
                     "measured": m.measured, "basis": m.basis, "script": MODE_SCRIPTS[m.name][0],
                     "renders": MODE_SCRIPTS[m.name][1]} for m in RUN_MODES.values()
            if bf16 or MODE_PRECISION[m.name] != "bf16"}


@contextlib.contextmanager
def _building(final: Path, force: bool) -> Iterator[Path]:
    """A hidden folder beside ``final`` to build in; renamed onto ``final`` on success, removed on failure."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{atomic.TEMP_MARK}{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if final.exists():
            if not force:
                raise KitError(f"{final} exists; choose another --output or pass --force to replace it")
            old = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_kit(pt_path: Path, model: torch.nn.Module, output: Path, *, device: str = "cpu",
              renders: Optional[str] = None, cat: Optional[str] = None, force: bool = False,
              tolerance: float = FP32_TOLERANCE, progress: bool = True,
              module: Optional[torch.nn.Module] = None, clip_frames: Sequence[Tuple[int, np.ndarray]] = (),
              clip_knobs: Optional[Dict[str, object]] = None,
              preview_model: Optional[torch.nn.Module] = None) -> KitResult:
    """Write the parity kit for ``pt_path`` into ``output`` (see the module docstring).

    ``model``: the eager GreenFormer the file was exported from (the reference of the
    check). ``renders``: where the Nuke script writes (default ``renders`` /
    ``renders-fp16`` in the kit; a path given here is written into the Write nodes as
    it is). ``module``: ``pt_path`` already loaded (onto ``device``). Raises
    :class:`KitError`; nothing is left under ``output`` on failure. ``clip_frames``: frames of
    the TD's own clip, ``(frame number, H x W x 4 float32: plate RGB, hint in alpha)``, keyed
    at ``clip_knobs`` (default: every knob at its default). ``preview_model``: the eager
    GreenFormer at the file's preview size (the reference of its ``quality`` = 1 cases; required
    when the file has a preview path).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    pt_path, output = Path(pt_path), Path(output)
    if output.exists() and not force:
        raise KitError(f"{output} exists; choose another --output or pass --force to replace it")
    if output.exists() and not output.is_dir():
        raise KitError(f"{output} is a file; give a folder for the kit")
    dev = torch.device(device)
    try:
        ts = (module if module is not None else torch.jit.load(str(pt_path), map_location=dev)).eval()
    except Exception as exc:  # torch raises many kinds for a bad file
        raise KitError(f"{pt_path} is not a loadable TorchScript file ({type(exc).__name__}); re-export it") from None
    img_size = int(getattr(ts, "img_size", -1))
    if img_size <= 0:
        raise KitError(f"{pt_path} is not a CorridorKey export: it has no img_size attribute")
    if int(getattr(model, "img_size", img_size)) != img_size:
        raise KitError(f"{pt_path} runs at S={img_size} but the reference model at S={model.img_size}; "
                       f"build the reference with --img-size {img_size}")
    screen = _screen_of(ts, pt_path)
    cases = kit_cases(img_size, screen.channel, clip_frames, clip_knobs)
    model = model.to(dev).eval()
    # ---- quality (issue #27): the cases' quality picks the reference network of that model resolution ----
    preview_size = int(getattr(ts, "preview_size", 0))
    memos = {img_size: _MemoNetwork(model)}
    if preview_size:
        if preview_model is None or int(getattr(preview_model, "img_size", -1)) != preview_size:
            raise KitError(f"{pt_path} has a preview path at {preview_size} px: the kit needs its eager reference "
                           f"at S={preview_size} too")
        memos[preview_size] = _MemoNetwork(preview_model.to(dev).eval())
    saved = {k.name: getattr(ts, k.name) for k in KNOBS}
    inputs: Dict[str, np.ndarray] = {}
    references: Dict[str, np.ndarray] = {}
    worst = 0.0
    log.info("parity kit: %d cases at S=%d (%s screen), each checked against the eager reference", len(cases),
             img_size, screen.name)
    try:
        # large buffers mmapped, as every tool here runs a .pt: the first call's heap stays small (issue #29)
        with torch.no_grad(), returning_freed_memory():
            for case in tqdm(cases, desc="parity kit", unit="case", disable=not progress, leave=False):
                plate = case.tensor().to(dev)
                set_knobs(ts, **case.knobs)
                out = ts(plate)
                ref = frame.key_frame(memos[model_size(case.knobs, img_size, preview_size)], plate,
                                      screen_channel=screen.channel, **frame_knobs(case.knobs))
                if not bool(torch.isfinite(out).all()):
                    raise KitError(f"case {case.name}: the .pt's output holds NaN or Inf; nothing was written")
                err = float((out - ref).abs().max())
                worst = max(worst, err)
                if not err <= tolerance:
                    raise KitError(f"case {case.name}: the .pt differs from the eager reference by {err:.3g} (above "
                                   f"{tolerance:g}); the file does not compute the reference, so no kit was written. "
                                   "Run export-torchscript validate on it")
                inputs[case.input_path] = plate[0].permute(1, 2, 0).cpu().numpy()
                references[case.reference_path] = out[0].permute(1, 2, 0).cpu().numpy()
    finally:
        set_knobs(ts, **saved)

    # the bfloat16 script only for a file with the bfloat16 copy (exported without --no-cpu-bf16)
    bf16 = int(getattr(ts, "has_cpu_bf16", 0)) == 1
    precisions = ("fp32", "fp16", "bf16") if bf16 else ("fp32", "fp16")
    scripts = {p: PRECISION_FILES[p][0] for p in precisions}
    renders_dirs = {p: renders.rstrip("/") + PRECISION_FILES[p][2] if renders else PRECISION_FILES[p][1]
                    for p in precisions}
    kit = {
        "format": KIT_FORMAT,
        "kind": KIT_KIND,
        "pt": {"file": pt_path.name, "sha256": _sha256(pt_path), "img_size": img_size,
               "preview_size": preview_size, "screen": screen.name,
               "model_id": screen.model_id, "cat_file": screen.cat_filename},
        "torch": torch.__version__,
        "eager_check": {"tolerance": tolerance, "max_abs_error": worst},
        "channels": list(CHANNELS),
        "variants": list(VARIANTS),
        "scripts": scripts,
        "renders": renders_dirs,
        "frames": {"first": 1, "last": len(cases)},
        "modes": _modes_json(bf16),
        "knob_spec": [k.to_dict() for k in KNOBS],
        "cases": [{"name": c.name, "frame": c.frame, "plate": c.plate, "width": c.width,
                   "height": c.height, "input": c.input_path, "knobs": dict(c.knobs),
                   "reference": c.reference_path, "render": c.render_path(VARIANTS[0]),
                   "renders": {v: c.render_path(v) for v in VARIANTS}} for c in cases],
    }
    with _building(output, force) as tmp:
        for folder in (INPUTS_DIR, REFERENCE_DIR):
            (tmp / folder).mkdir()
        if renders is None:
            for folder in renders_dirs.values():
                (tmp / folder).mkdir()
        for rel, img in {**inputs, **references}.items():
            write_exr(tmp / rel, img)
        for p in precisions:
            (tmp / scripts[p]).write_text(render_script(cases, screen, half=p == "fp16", cpu_bf16=p == "bf16",
                                                        renders=renders_dirs[p], cat=cat))
        (tmp / KIT_JSON).write_text(json.dumps(kit, indent=2) + "\n")
        (tmp / "README.md").write_text(kit_readme(kit, renders is not None))
    seconds = time.perf_counter() - started
    log.info("parity kit written to %s: %d cases, max error against the eager reference %.3g, %.1f s", output,
             len(cases), worst, seconds)
    return KitResult(output, len(cases), worst, seconds)


def kit_readme(kit: Dict[str, object], custom_renders: bool) -> str:
    """The kit's README: the TD's three commands and one Nuke render."""
    n = len(kit["cases"])
    pt = kit["pt"]
    r32, r16 = kit["renders"]["fp32"], kit["renders"]["fp16"]
    r_bf16 = kit["renders"].get("bf16")
    modes = "\n".join(f"| `{name}` | {m['label']} | {m['tolerance']:g} | {m['outlier_share'] * 100:g}% | "
                      f"{'measured' if m['measured'] else 'derived, not measured'} |"
                      for name, m in kit["modes"].items())
    bf16_folder = (f", `{r_bf16}{'' if custom_renders else '/'}` (bfloat16)") if r_bf16 else ""
    where = (f"The Write nodes write to `{r32}` (fp32), `{r16}` (fp16){bf16_folder}, as given to "
             "`parity-kit --renders`."
             if custom_renders else
             f"The Write nodes write into this folder: `{r32}/` (fp32), `{r16}/` (fp16){bf16_folder}. To render "
             "elsewhere "
             "(a read-only kit, a farm's scratch disk), rebuild the kit with `export-torchscript parity-kit ... "
             "--renders /scratch/ck-renders`, or copy the kit folder there; then pass the folder to parity-check "
             "as RENDERS.")
    renders_cmds = [(f"nuke -x -F 1-{n} {kit['scripts']['fp32']}", "Nuke's CPU, fp32"),
                    (f"nuke -x --gpu -F 1-{n} {kit['scripts']['fp32']}", "the GPU, fp32"),
                    (f"nuke -x --gpu -F 1-{n} {kit['scripts']['fp16']}",
                     'the GPU, "Optimize for Speed and Memory" (fp16)')]
    if r_bf16:
        renders_cmds.append((f"nuke -x -F 1-{n} {kit['scripts']['bf16']}", "the CPU in bfloat16 (the node's CPU "
                                                                            "Precision)"))
    width = max(len(c) for c, _ in renders_cmds) + 2
    render_lines = "\n".join(f"    {c.ljust(width)}# {why}" for c, why in renders_cmds)
    bf16_render = (f"\n`{kit['scripts']['bf16']}` runs every node on the CPU with the file's bfloat16 copy. Render it on "
                   "a CPU with bfloat16 units (Intel Xeon Sapphire Rapids and later, AMD Zen 4 and later, on "
                   "Linux): elsewhere the CorridorKey node falls back to fp32 (it reads the machine's CPU flags) "
                   "and the bare Inference node runs bfloat16 emulated, slowly.\n" if r_bf16 else "")
    bf16_judge = (f"\n    export-torchscript parity-check . --mode cpu-bf16   # reads {r_bf16}/" if r_bf16 else "")
    return f"""# CorridorKey parity kit

Checks that your Nuke, on your CPU or GPU, computes what the Python reference computes for
`{pt['file']}` ({pt['screen']}-screen model, S={pt['img_size']}, SHA-256 `{pt['sha256'][:16]}...`).
{n} cases (frames 1-{n}): the knob settings of the export's pairwise validation sweep on small
plates (soft edges and spill, superwhite and negative values, an odd size, a tiny one). Each frame
is rendered twice: by a bare Inference node loading your `{pt['cat_file']}`, and by the CorridorKey
node in its "Raw model output" mode. `kit.json` lists every case (its input, knobs and renders).

## 1. Install the node and the .cat

Build `{pt['cat_file']}` from `{pt['file']}` in NukeX (`nuke/corridorkey_create_cat.py`) and install it:
`python -m corridorkey_export.nuke_files --install-to ~/.nuke --cat {pt['cat_file']}`. The script finds
the .cat on the plugin path, as the node does (or rebuild the kit with `--cat PATH`).

## 2. Render (one Nuke render)

From this folder:

{render_lines}
{bf16_render}
Nuke uses the GPU from a terminal only with `--gpu`. {where}

## 3. Judge

    export-torchscript parity-check . --mode cpu        # or gpu, or gpu-fp16 (reads {r16}/){bf16_judge}

It prints per case and channel the max and mean abs error and the share of pixels over the
tolerance, writes `parity-report/report.md` and a heat map per failing case into the renders
folder, and exits 0 when every case passes, 1 when any fails (naming the worst case).
A missing render is an error, never a pass.

| mode | run | tolerance | pixels allowed over it | basis |
| --- | --- | --- | --- | --- |
{modes}
"""


# --------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class CaseResult:
    """One render judged: per channel (R, G, B, A) max and mean abs error and share of pixels over tolerance."""

    case: str
    variant: str
    render: str
    max_abs: Tuple[float, ...]
    mean_abs: Tuple[float, ...]
    share_over: Tuple[float, ...]
    finite: bool
    passed: bool

    @property
    def max_error(self) -> float:
        return max(self.max_abs)


@dataclass(frozen=True)
class CheckReport:
    mode: RunMode
    renders: Path
    results: Tuple[CaseResult, ...]
    report_path: Optional[Path]
    heat_maps: Tuple[Path, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def worst(self) -> CaseResult:
        failing = [r for r in self.results if not r.passed] or list(self.results)
        return max(failing, key=lambda r: (not r.finite, r.max_error))


def read_kit(kit: Path) -> Dict[str, object]:
    """``kit.json`` of the kit folder ``kit``, checked for the fields ``parity-check`` needs."""
    path = Path(kit) / KIT_JSON
    if not path.is_file():
        raise KitError(f"{kit} is not a parity kit: it has no {KIT_JSON} (make one with export-torchscript "
                       "parity-kit CorridorKey.pt --output KIT)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KitError(f"{path} is not readable JSON ({exc}); rebuild the kit") from None
    if data.get("kind") != KIT_KIND or data.get("format") != KIT_FORMAT or not data.get("cases"):
        raise KitError(f"{path} is not a format-{KIT_FORMAT} CorridorKey parity kit; rebuild it with this version")
    return data


def default_renders(kit: Path, data: Dict[str, object], mode: str) -> Path:
    """The renders folder the kit's script for ``mode`` writes to (relative ones resolve against the kit)."""
    rel = data["renders"][MODE_PRECISION[mode]]
    return Path(rel) if Path(rel).is_absolute() else Path(kit) / rel


def heat_map(err: np.ndarray, tolerance: float) -> np.ndarray:
    """``H x W`` abs error -> ``H x W x 3`` uint8, log scale: black at 1% of the tolerance or less, red at
    the tolerance, yellow at 10x, white at 100x and above (and for NaN / inf)."""
    err = np.where(np.isfinite(err), err, np.inf)
    t = np.clip((np.log10(np.maximum(err, 1e-30) / tolerance) + 2.0) / 4.0, 0.0, 1.0)
    rgb = np.stack([np.clip(2 * t, 0, 1), np.clip(4 * t - 2, 0, 1), np.clip(4 * t - 3, 0, 1)], axis=-1)
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import OpenImageIO as oiio

    with atomic.atomic_path(path) as tmp:
        spec = oiio.ImageSpec(int(rgb.shape[1]), int(rgb.shape[0]), 3, oiio.UINT8)
        out = oiio.ImageOutput.create(str(tmp))
        if out is None or not out.open(str(tmp), spec):
            raise KitError(f"cannot write {path}: {oiio.geterror()}")
        try:
            out.write_image(np.ascontiguousarray(rgb))
        finally:
            out.close()


def judge(render: np.ndarray, reference: np.ndarray, mode: RunMode) -> Tuple[Tuple[float, ...], Tuple[float, ...],
                                                                            Tuple[float, ...], bool, bool, np.ndarray]:
    """Per channel max / mean abs error and share of pixels over tolerance; finite; passed; the error image.

    ``finite``: no NaN or infinity in the render nor in the reference (:data:`compare.NAN_RULE`, the rule of
    ``corridorkey compare`` too); a case with one fails whatever its share over the tolerance.
    """
    diff = np.abs(render.astype(np.float64) - reference.astype(np.float64))
    finite = bool(np.isfinite(render).all() and np.isfinite(reference).all())  # compare.NAN_RULE
    diff = np.where(np.isfinite(diff), diff, np.inf)
    over = diff > mode.tolerance
    max_abs = tuple(float(diff[..., c].max()) for c in range(4))
    mean_abs = tuple(float(diff[..., c].mean()) for c in range(4))
    share = tuple(float(over[..., c].mean()) for c in range(4))
    passed = finite and all(s <= mode.outlier_share for s in share)
    return max_abs, mean_abs, share, finite, passed, diff.max(axis=-1)


def check_renders(kit: Path, renders: Optional[Path] = None, mode: str = "cpu",
                  variants: Sequence[str] = VARIANTS, report_dir: Optional[Path] = None) -> CheckReport:
    """Judge the renders of a kit (see the module docstring). Raises :class:`KitError` for a missing render."""
    if mode not in RUN_MODES:
        raise KitError(f"unknown mode {mode!r}; choose from {', '.join(RUN_MODES)}")
    kit = Path(kit)
    data = read_kit(kit)
    run_mode = RUN_MODES[mode]
    if MODE_PRECISION[mode] not in data.get("renders", {}):
        raise KitError(f"{kit} has no {MODE_SCRIPTS[mode][0]}: its .pt ({data['pt']['file']}) was exported without "
                       "the CPU bfloat16 copy (--no-cpu-bf16), or the kit was built before kits had that script, so "
                       "it holds no bfloat16 renders to check. Build the kit again from a .pt exported without "
                       "--no-cpu-bf16")
    renders = Path(renders) if renders is not None else default_renders(kit, data, mode)
    if not renders.is_dir():
        raise KitError(f"renders folder {renders} does not exist: render the kit first (see {kit / 'README.md'}), "
                       "or give the folder the Write nodes wrote to as RENDERS")
    expected = [(c, v, c["renders"][v]) for c in data["cases"] for v in variants]
    missing = [rel for _c, _v, rel in expected if not (renders / rel).is_file()]
    if missing:
        wanted = {rel for _c, _v, rel in expected}
        found = sorted(str(p.relative_to(renders)) for p in renders.rglob("*.exr")
                       if str(p.relative_to(renders)).replace(os.sep, "/") not in wanted)
        raise KitError(f"{len(missing)} of {len(expected)} render(s) missing in {renders}: {', '.join(missing[:6])}"
                       + (", ..." if len(missing) > 6 else "")
                       + (f"; found instead: {', '.join(found[:6])}" if found else "")
                       + f". Render all frames (nuke -x -F {data['frames']['first']}-{data['frames']['last']} ...) "
                         "with the kit's script unchanged; kit.json names each file")
    results: List[CaseResult] = []
    failing_errors: Dict[Tuple[str, str], np.ndarray] = {}
    for case, variant, rel in expected:
        reference = read_exr_rgba(kit / case["reference"])
        render = read_exr_rgba(renders / rel)
        if render.shape != reference.shape:
            raise KitError(f"{renders / rel} is {render.shape[1]}x{render.shape[0]}, but case {case['name']} is "
                           f"{reference.shape[1]}x{reference.shape[0]}: the render does not belong to this case "
                           "(another kit's file, a Reformat, or a render in proxy mode?); render the kit's script "
                           "unchanged, proxy mode off")
        max_abs, mean_abs, share, finite, passed, err = judge(render, reference, run_mode)
        results.append(CaseResult(case["name"], variant, rel, max_abs, mean_abs, share, finite, passed))
        if not passed:
            failing_errors[(case["name"], variant)] = err
    report_dir = Path(report_dir) if report_dir is not None else renders / REPORT_DIR
    report_dir.mkdir(parents=True, exist_ok=True)
    heat_maps = []
    for (name, variant), err in failing_errors.items():
        path = report_dir / f"{name}-{variant}-error.png"
        _write_png(path, heat_map(err, run_mode.tolerance))
        heat_maps.append(path)
    report = CheckReport(run_mode, renders, tuple(results), report_dir / "report.md", tuple(heat_maps))
    atomic.write_bytes(report.report_path, format_markdown(report, data).encode())
    return report


def format_table(report: CheckReport) -> str:
    """The pass/fail table: one line per render, max / mean abs error and share over tolerance per channel."""
    mode = report.mode
    head = (f"{'case':<34} {'variant':<9} " + " ".join(f"{'max ' + c:>10}" for c in CHANNELS)
            + f" {'mean max':>10} {'over tol':>9}  verdict")
    lines = [f"Parity of the renders in {report.renders} ({mode.label}; tolerance {mode.tolerance:g}, "
             f"{mode.outlier_share * 100:g}% of pixels may exceed it; "
             f"{'measured' if mode.measured else 'derived, not measured'})", head, "-" * len(head)]
    for r in report.results:
        lines.append(f"{r.case:<34} {r.variant:<9} " + " ".join(f"{e:>10.3e}" for e in r.max_abs)
                     + f" {max(r.mean_abs):>10.3e} {max(r.share_over) * 100:>8.3f}%  "
                     + ("ok" if r.passed else "FAIL" + ("" if r.finite else " (NaN/inf)")))
    lines.append("-" * len(head))
    failed = [r for r in report.results if not r.passed]
    if failed:
        w = report.worst
        lines.append(f"FAILED: {len(failed)} of {len(report.results)} render(s); worst: case {w.case} ({w.variant}), "
                     f"max abs error {w.max_error:.3g}")
    else:
        lines.append(f"PASSED: all {len(report.results)} render(s) within tolerance (max abs error "
                     f"{max(r.max_error for r in report.results):.3g})")
    return "\n".join(lines)


def format_markdown(report: CheckReport, kit: Dict[str, object]) -> str:
    """The report a TD attaches to a ticket."""
    mode = report.mode
    pt = kit["pt"]
    knobs = {c["name"]: c["knobs"] for c in kit["cases"]}
    rows = []
    for r in report.results:
        setting = ", ".join(f"{k}={v}" for k, v in knobs[r.case].items())
        rows.append(f"| {r.case} | {r.variant} | {setting} | " + " | ".join(f"{e:.3e}" for e in r.max_abs)
                    + f" | {max(r.mean_abs):.3e} | {max(r.share_over) * 100:.3f}% | "
                    + ("pass" if r.passed else "**FAIL**") + " |")
    verdict = ("PASSED: every render is within tolerance." if report.passed else
               f"FAILED: {sum(not r.passed for r in report.results)} of {len(report.results)} render(s); worst: "
               f"case {report.worst.case} ({report.worst.variant}), max abs error {report.worst.max_error:.3g}.")
    maps = "\n".join(f"- `{p.name}`" for p in report.heat_maps) or "- none (no failing case)"
    return f"""# CorridorKey parity report

- File: `{pt['file']}` ({pt['screen']} screen, S={pt['img_size']}, SHA-256 `{pt['sha256']}`)
- Renders: `{report.renders}`
- Mode: {mode.label}; tolerance {mode.tolerance:g} per channel, {mode.outlier_share * 100:g}% of pixels may exceed it
  ({'measured' if mode.measured else 'derived, not measured'}: {mode.basis})
- Reference: the .pt in Python (torch {kit.get('torch')}), checked against the eager reference
  (max abs error {kit['eager_check']['max_abs_error']:.3g})

**{verdict}**

| case | variant | knobs | max R | max G | max B | max A | mean (max channel) | pixels over tol | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Heat maps of the failing renders (max abs error over the channels; black at 1% of the tolerance,
red at the tolerance, yellow at 10x, white at 100x):

{maps}
"""


__all__ = ["KitError", "Case", "kit_plates", "kit_cases", "render_script", "build_kit", "KitResult", "read_kit",
           "check_renders", "CheckReport", "CaseResult", "format_table", "format_markdown", "heat_map", "judge",
           "write_exr", "read_exr_rgba", "default_renders", "VARIANTS", "RENDERS_DIR", "RENDERS_DIR_FP16",
           "RENDERS_DIR_BF16", "SCRIPT", "SCRIPT_FP16", "SCRIPT_BF16", "MODE_SCRIPTS"]
