"""Generator of the Nuke-side files, all from the one knob spec.

Writes (relative to the repository root):

* ``gizmos/CorridorKey.gizmo``       the node compositors use (a Group around the Inference node)
* ``gizmos/CorridorKey_template.nk`` a template comp: Read plate + Read hint -> CorridorKey -> Merge -> Write
* ``gizmos/cat.json``, ``gizmos/CorridorKey.png``  the Cattery package description and its icon
* ``nuke/corridorkey_cat_spec.json`` what ``nuke/corridorkey_create_cat.py`` sets on CatFileCreator

``gizmos/`` is the plugin folder: put ``CorridorKey.cat`` next to the gizmo. The
committed files must equal this module's output (``--check``, and a test).

Usage::

    python -m corridorkey_export.nuke_files --write      # regenerate
    python -m corridorkey_export.nuke_files --check      # exit 1 if a committed file is stale
    python -m corridorkey_export.nuke_files --install-to ~/.nuke --cat CorridorKey.cat
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import click

from corridorkey_model.knobs import CHANNELS_IN, CHANNELS_OUT, KNOBS, MODEL_ID, OUTPUT_SCALE, KnobSpec

log = logging.getLogger(__name__)

#: Node class of the gizmo (its file name without ``.gizmo``) and of the package.
GIZMO_CLASS = "CorridorKey"
#: File name of the .cat the gizmo's Inference node looks for on Nuke's plugin path.
CAT_FILENAME = "CorridorKey.cat"
#: Name of the Inference node inside the gizmo.
INFERENCE_NODE = "Inference"
#: Oldest Nuke the package claims (TorchScript from a PyTorch 2.x export; see export/targets.py).
MINIMUM_NUKE = 15.1

#: Output choice of the gizmo, in menu order (the Switch node's input order).
OUTPUT_MODES: Tuple[str, ...] = (
    "Comp-ready (premultiplied linear)",
    "Straight linear fg + alpha",
    "Raw model output",
    "Matte only",
)
#: Which channel of the Hint input becomes the hint (rgba.alpha of the model input), in menu order.
HINT_CHANNELS: Tuple[str, ...] = ("alpha", "red", "luminance")
#: Rec.709 luminance weights (Nuke works in linear with Rec.709 primaries by default).
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)

#: Gizmo defaults that differ on purpose from the .cat defaults of the knob spec, with the reason.
GIZMO_DEFAULT_OVERRIDES: Dict[str, int] = {
    # A default Read node linearises PNG/JPG/MOV/EXR, so in a linear comp the plate arrives scene-linear.
    "gamma_input": 1,
}
GAMMA_INPUT_GIZMO_NOTE = (
    "\n\nDefault here: Linear. In Nuke's scene-linear working space a default Read node "
    "already converts PNG, JPG, MOV and EXR plates to linear, so the plate arriving at this "
    "node is linear. Choose sRGB only for a plate that is still sRGB-encoded (a Read with "
    "'raw data' on, or after a linear-to-sRGB Colorspace)."
)

GIZMO_PATH = "gizmos/CorridorKey.gizmo"
TEMPLATE_PATH = "gizmos/CorridorKey_template.nk"
CAT_JSON_PATH = "gizmos/cat.json"
ICON_PATH = "gizmos/CorridorKey.png"
CAT_SPEC_PATH = "nuke/corridorkey_cat_spec.json"

#: Hand-written plugin files that the ~/.nuke install copies along with the generated ones.
PLUGIN_FILES = ("nuke/init.py", "nuke/menu.py", "nuke/corridorkey_create_cat.py", CAT_SPEC_PATH)
PACKAGE_FILES = (GIZMO_PATH, TEMPLATE_PATH, CAT_JSON_PATH, ICON_PATH)

INIT_MARK = "# CorridorKey plugin path (added by corridorkey_export.nuke_files --install-to)"


# --------------------------------------------------------------------------- Nuke script syntax


def nk_quote(text: str) -> str:
    """``text`` as a double-quoted Nuke script string (TCL: no command or variable substitution)."""
    out = []
    for ch in text:
        if ch in '\\"[]{}$':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def nk_word(text: str) -> str:
    """A bare word when safe, else a quoted string."""
    if text and all(c.isalnum() or c in "._-/+" for c in text):
        return text
    return nk_quote(text)


def nk_number(value: float) -> str:
    """Numbers the way Nuke writes them: ``1`` not ``1.0``."""
    return format(float(value), "g")


def gizmo_defaults() -> Dict[str, float]:
    """The gizmo's default for each model knob: the spec's default unless overridden on purpose."""
    return {k.name: GIZMO_DEFAULT_OVERRIDES.get(k.name, k.typed_default) for k in KNOBS}


def user_knob_line(spec: KnobSpec, tooltip: str) -> str:
    """``addUserKnob`` for one knob spec: float -> 7 (slider), int with choices -> 4 (pulldown), int -> 3."""
    head = f"{spec.name} l {nk_quote(spec.label)} t {nk_quote(tooltip)}"
    if spec.kind == "float":
        return f"addUserKnob {{7 {head} R {nk_number(spec.minimum)} {nk_number(spec.maximum)}}}"
    if spec.choices:
        return f"addUserKnob {{4 {head} M {{{' '.join(nk_word(c) for c in spec.choices)}}}}}"
    return f"addUserKnob {{3 {head}}}"


def user_knob_value(spec: KnobSpec, value: float) -> str:
    """The knob's value line (an enumeration is written by its item name, as Nuke does)."""
    if spec.choices:
        return f"{spec.name} {nk_word(spec.choices[int(value)])}"
    return f"{spec.name} {nk_number(value)}"


def serialise_knob_value(values: Dict[str, float]) -> str:
    """The Inference node's ``serialiseKnob`` text: ``{name:value;...}`` (the .cat's custom knobs)."""
    return "{" + "".join(f"{k.name}:{nk_number(values[k.name])};" for k in KNOBS) + "}"


def _node(cls: str, knobs: Sequence[str], indent: str = " ") -> List[str]:
    return [f"{indent}{cls} {{"] + [f"{indent} {line}" for line in knobs] + [f"{indent}}}"]


# --------------------------------------------------------------------------- the gizmo


def _on_create_script() -> str:
    """Group onCreate: (re)link the .cat's custom knobs on the Inference node to the group's knobs.

    The .cat's knobs exist on the Inference node only once the .cat is loaded; this
    puts the expression links back if Nuke dropped them (e.g. the .cat was missing
    when the script was opened).
    """
    names = ", ".join(repr(k.name) for k in KNOBS)
    return (
        "n = nuke.thisNode()\n"
        f"inf = n.node('{INFERENCE_NODE}')\n"
        f"for name in ({names},):\n"
        "    k = inf.knob(name) if inf is not None else None\n"
        "    if k is not None and not k.hasExpression():\n"
        "        k.setExpression('parent.' + name)\n"
    )


def render_gizmo() -> str:
    """The text of ``CorridorKey.gizmo``."""
    defaults = gizmo_defaults()
    hint_expr = (
        "parent.hint_channel == 0 ? a : (parent.hint_channel == 1 ? r : "
        f"{LUMINANCE_WEIGHTS[0]}*r + {LUMINANCE_WEIGHTS[1]}*g + {LUMINANCE_WEIGHTS[2]}*b)"
    )
    lines = [f"version {MINIMUM_NUKE} v1", "Gizmo {", " inputs 2"]
    lines.append(f" onCreate {nk_quote(_on_create_script())}")
    lines.append(" tile_color 0x4caf50ff")
    lines.append(" addUserKnob {20 CorridorKey}")
    lines.append(
        " addUserKnob {41 modelFile l \"Model File\" t "
        + nk_quote(
            f"The {CAT_FILENAME} this node runs. Default: the first {CAT_FILENAME} on Nuke's plugin "
            "path (put it next to CorridorKey.gizmo). Build it from CorridorKey.pt with "
            "nuke/corridorkey_create_cat.py in NukeX."
        )
        + f" T {INFERENCE_NODE}.modelFile}}"
    )
    lines.append(
        " addUserKnob {6 useGPUIfAvailable l \"Use GPU if available\" t "
        + nk_quote("Render on the local GPU when there is one, else on the CPU.")
        + " +STARTLINE}"
    )
    lines.append(" useGPUIfAvailable true")
    lines.append(
        " addUserKnob {6 halfPrecision l \"Optimize for Speed and Memory\" t "
        + nk_quote(
            "Run the network in 16-bit half float on the GPU: faster, less GPU memory, larger "
            "plates; small differences in the matte are possible. Only used on the GPU."
        )
        + " +STARTLINE}"
    )
    lines.append(" addUserKnob {26 \"\"}")
    lines.append(
        " addUserKnob {4 output_mode l Output t "
        + nk_quote(
            "Comp-ready: linear premultiplied RGBA, ready to Merge over a background (the network's "
            "sRGB foreground is converted to linear, THEN premultiplied by the alpha).\n"
            "Straight linear fg + alpha: the same linear foreground, not premultiplied.\n"
            "Raw model output: what the network returns, straight sRGB-encoded fg + linear alpha.\n"
            "Matte only: the alpha in all four channels."
        )
        + f" M {{{' '.join(nk_quote(m) for m in OUTPUT_MODES)}}}}}"
    )
    lines.append(
        " addUserKnob {4 hint_channel l \"Hint Channel\" t "
        + nk_quote(
            "Which channel of the Hint input is the rough matte the network refines: its alpha, its "
            "red channel, or its Rec.709 luminance."
        )
        + f" M {{{' '.join(HINT_CHANNELS)}}}}}"
    )
    lines.append(" addUserKnob {26 model_divider l \"<b>Model</b>\"}")
    for spec in KNOBS:
        tooltip = spec.tooltip + (GAMMA_INPUT_GIZMO_NOTE if spec.name == "gamma_input" else "")
        lines.append(" " + user_knob_line(spec, tooltip))
        lines.append(" " + user_knob_value(spec, defaults[spec.name]))
    lines.append("}")

    # Node graph. Stack rule of .nk files: a node with N inputs takes the top of the
    # stack as input 0, the next as input 1, ...; push order below is chosen for that.
    lines += _node("Input", ["inputs 0", "name Hint", "number 1", "xpos 180", "ypos -300"])
    lines += _node("Expression", [f"expr3 {nk_quote(hint_expr)}", "name HintToAlpha", "xpos 180", "ypos -220"])
    lines += _node("Input", ["inputs 0", "name Plate", "xpos 0", "ypos -300"])
    lines += _node("Copy", ["inputs 2", "from0 rgba.alpha", "to0 rgba.alpha", "name PlatePlusHint",
                            "xpos 0", "ypos -220"])
    inference = [
        "useGPUIfAvailable {{parent.useGPUIfAvailable}}",
        f"modelFile {nk_quote(f'[lsearch -inline [plugins -all {CAT_FILENAME}] *.cat]')}",
        "halfPrecision {{parent.halfPrecision}}",
        f"serialiseKnob {serialise_knob_value(defaults)}",
    ]
    inference += [f"{k.name} {{{{parent.{k.name}}}}}" for k in KNOBS]
    inference += [f"name {INFERENCE_NODE}", "xpos 0", "ypos -140"]
    lines += _node("Inference", inference)
    lines.append("set NInference [stack 0]")
    # Switch input 3: matte only.
    lines += _node("Shuffle", ["red alpha", "green alpha", "blue alpha", "alpha alpha", "name MatteOnly",
                               "xpos 330", "ypos -60"])
    # Switch input 2: raw model output.
    lines.append("push $NInference")
    lines += _node("Dot", ["name RawOutput", "xpos 254", "ypos -56"])
    # Switch inputs 1 and 0: sRGB -> linear on the fg, then premultiply.
    lines.append("push $NInference")
    lines += _node("Colorspace", ["colorspace_in sRGB", "colorspace_out linear", "channels rgb",
                                  "name FgToLinear", "xpos 0", "ypos -60"])
    lines.append("set NLinear [stack 0]")
    lines += _node("Dot", ["name StraightLinear", "xpos 144", "ypos -56"])
    lines.append("push $NLinear")
    lines += _node("Premult", ["name PremultLinear", "xpos 0", "ypos 0"])
    lines += _node("Switch", ["inputs 4", "which {{parent.output_mode}}", "name OutputSwitch",
                              "xpos 0", "ypos 60"])
    lines += _node("Output", ["name Output1", "xpos 0", "ypos 140"])
    lines.append("end_group")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- template comp


TEMPLATE_NOTES = (
    "CorridorKey template\n"
    "1. Plate: your green-screen plate, default Read settings (Nuke linearises it; the node's "
    "Input Gamma is Linear for that).\n"
    "2. Hint: a rough matte of the subject (garbage matte, roto, another keyer). Read with "
    "'raw data' on so its values are not colour-converted; pick its channel on the node.\n"
    "3. CorridorKey outputs comp-ready linear premultiplied RGBA: Merge it over the background.\n"
    f"The node needs {CAT_FILENAME} on the plugin path (see the README, section Nuke)."
)


def render_template() -> str:
    """The text of ``CorridorKey_template.nk``."""
    lines = [f"version {MINIMUM_NUKE} v1", "Root {", " inputs 0", " name CorridorKey_template.nk", "}"]
    lines += _node("StickyNote", ["inputs 0", f"label {nk_quote(TEMPLATE_NOTES)}", "note_font_size 14",
                                  "name Notes", "xpos -420", "ypos -340"], indent="")
    lines += _node("Read", ["inputs 0", "file hint.####.png", "raw true", "name ReadHint",
                            "xpos 140", "ypos -340"], indent="")
    lines += _node("Read", ["inputs 0", "file plate.####.exr", "name ReadPlate", "xpos 0", "ypos -340"],
                   indent="")
    knobs = ["inputs 2"] + [user_knob_value(k, gizmo_defaults()[k.name]) for k in KNOBS]
    knobs += ["name CorridorKey1", "xpos 0", "ypos -200"]
    lines += _node(GIZMO_CLASS, knobs, indent="")
    lines += _node("Read", ["inputs 0", "file background.####.exr", "name ReadBackground",
                            "xpos -200", "ypos -200"], indent="")
    lines += _node("Merge2", ["inputs 2", "operation over", "name MergeOverBackground", "xpos -200",
                              "ypos -100"], indent="")
    lines += _node("Write", ["file corridorkey_comp.####.exr", "file_type exr", "name WriteComp",
                             "xpos -200", "ypos 0"], indent="")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Cattery package + .cat spec


def render_cat_json() -> str:
    """``cat.json``: the Cattery package description (the menu entry for the gizmo)."""
    data = {
        "minimum_nuke_version_required": MINIMUM_NUKE,
        "version": 1,
        "category": "Keying",
        "description": "CorridorKey neural green-screen keyer (plate + rough hint -> clean matte and despilled fg).",
        "cats": [{"filepath": Path(GIZMO_PATH).name, "name": GIZMO_CLASS, "icon": Path(ICON_PATH).name}],
    }
    return json.dumps(data, indent=4) + "\n"


def render_cat_spec() -> str:
    """What the .cat creation script sets on CatFileCreator (read by nuke/corridorkey_create_cat.py)."""
    data = {
        "modelId": MODEL_ID,
        "channelsIn": ", ".join(CHANNELS_IN),
        "channelsOut": ", ".join(CHANNELS_OUT),
        "outputScale": OUTPUT_SCALE,
        "knobs": [k.to_dict() for k in KNOBS],
    }
    return json.dumps(data, indent=2) + "\n"


def render_icon(size: int = 32) -> bytes:
    """A small PNG icon (a green square with a white key shape), made without image libraries."""
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type 0
        for x in range(size):
            inside_ring = (x - 11) ** 2 + (y - 16) ** 2 <= 49 and (x - 11) ** 2 + (y - 16) ** 2 >= 9
            shaft = 16 <= x <= 27 and 15 <= y <= 17
            teeth = (22 <= x <= 23 or 26 <= x <= 27) and 18 <= y <= 21
            rgba = (255, 255, 255, 255) if inside_ring or shaft or teeth else (46, 160, 67, 255)
            row += bytes(rgba)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def generated_files() -> Dict[str, bytes]:
    """Every generated file, by path relative to the repository root."""
    return {
        GIZMO_PATH: render_gizmo().encode(),
        TEMPLATE_PATH: render_template().encode(),
        CAT_JSON_PATH: render_cat_json().encode(),
        ICON_PATH: render_icon(),
        CAT_SPEC_PATH: render_cat_spec().encode(),
    }


# --------------------------------------------------------------------------- write / check / install


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folder) through the project's one atomic-write helper."""
    from corridorkey_model import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, data)


def write(root: Path) -> List[Path]:
    """Write every generated file under ``root``; return the paths whose content changed."""
    changed = []
    for rel, data in generated_files().items():
        path = Path(root) / rel
        if not path.is_file() or path.read_bytes() != data:
            _atomic_write(path, data)
            changed.append(path)
            log.info("wrote %s", path)
    return changed


def check(root: Path) -> List[str]:
    """Paths (relative) of generated files under ``root`` that are missing or differ from the generator."""
    return [rel for rel, data in generated_files().items()
            if not (Path(root) / rel).is_file() or (Path(root) / rel).read_bytes() != data]


def install(root: Path, nuke_dir: Path, cat: Optional[Path] = None, folder: str = GIZMO_CLASS) -> Path:
    """Install the plugin into ``nuke_dir/folder`` (e.g. ``~/.nuke/CorridorKey``) and register it.

    Copies the gizmo, template, cat.json, icon, init.py/menu.py and the .cat script,
    plus ``cat`` (a built CorridorKey.cat) when given, and appends one
    ``nuke.pluginAddPath`` line to ``nuke_dir/init.py`` (once).
    """
    stale = check(root)
    if stale:
        raise click.ClickException(f"generated files are out of date: {', '.join(stale)}; run --write first")
    if cat is not None and not Path(cat).is_file():
        raise click.ClickException(f"--cat {cat}: no such file. Build it in NukeX with nuke/corridorkey_create_cat.py")
    target = Path(nuke_dir).expanduser() / folder
    target.mkdir(parents=True, exist_ok=True)
    for rel in PLUGIN_FILES + PACKAGE_FILES:
        src = Path(root) / rel
        if not src.is_file():
            raise click.ClickException(f"missing {src}: run this from a full checkout of the repository")
        _atomic_write(target / src.name, src.read_bytes())
    if cat is not None:
        tmp = target / f".{CAT_FILENAME}.partial"
        shutil.copyfile(cat, tmp)
        os.replace(tmp, target / CAT_FILENAME)
    init = Path(nuke_dir).expanduser() / "init.py"
    text = init.read_text() if init.is_file() else ""
    if INIT_MARK not in text:
        line = f"{INIT_MARK}\nimport nuke\nnuke.pluginAddPath({str(target)!r})\n"
        _atomic_write(init, (text + ("\n" if text and not text.endswith("\n") else "") + line).encode())
    return target


def default_root() -> Path:
    """The repository root when running from a checkout (export/ is its child)."""
    return Path(__file__).resolve().parent.parent


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--write", "do_write", is_flag=True, help="Regenerate the gizmo, template, cat.json, icon and .cat spec.")
@click.option("--check", "do_check", is_flag=True, help="Exit with status 1 if a committed generated file is stale.")
@click.option("--install-to", "install_to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install the plugin into this Nuke home folder (usually ~/.nuke) as <dir>/CorridorKey.")
@click.option("--cat", "cat", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --install-to: a built CorridorKey.cat to copy next to the gizmo.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=default_root,
              show_default=True, help="Repository root holding gizmos/ and nuke/.")
def main(do_write: bool, do_check: bool, install_to: Optional[Path], cat: Optional[Path], root: Path) -> None:
    """Generate, check or install CorridorKey's Nuke files.

    Every knob name, type, range and default in the gizmo, the template comp and the
    .cat creation script comes from corridorkey_model.knobs. --check exits 1 and names
    the stale files; --write rewrites them. --install-to copies the plugin into a Nuke
    home folder and registers it in that folder's init.py.
    """
    if sum([do_write, do_check, install_to is not None]) != 1:
        raise click.UsageError("give exactly one of --write, --check, --install-to")
    if cat is not None and install_to is None:
        raise click.UsageError("--cat only goes with --install-to")
    if do_write:
        changed = write(root)
        click.echo(f"{len(changed)} file(s) updated" + "".join(f"\n  {p}" for p in changed))
    elif do_check:
        stale = check(root)
        if stale:
            raise click.ClickException(
                "stale generated Nuke files: " + ", ".join(stale)
                + "; run: python -m corridorkey_export.nuke_files --write")
        click.echo(f"{len(generated_files())} generated Nuke files are up to date")
    else:
        target = install(root, install_to, cat)
        click.echo(f"installed into {target}; restart Nuke and find CorridorKey in the Nodes toolbar")
        if cat is None:
            click.echo(f"note: copy {CAT_FILENAME} into {target} (build it with nuke/corridorkey_create_cat.py)")


if __name__ == "__main__":  # pragma: no cover
    main()
