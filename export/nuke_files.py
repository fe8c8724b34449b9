"""Generator of the Nuke-side files, all from the one knob spec.

Writes (relative to the repository root):

* ``gizmos/Cattery/CorridorKey/``: the Cattery package, the folder layout Nuke's own
  Cattery menu looks for (``nukescripts/cattery.py`` scans every plugin-path folder
  named ``Cattery`` for ``<package>/cat.json``):

  * ``CorridorKey.gizmo``: the node compositors use (a Group around the Inference nodes)
  * ``CorridorKey_template.nk``: a template comp pasted into the current script
  * ``cat.json``, ``CorridorKey.png``: the package description and its icon
  * ``menu.py`` is hand-written; ``CorridorKey.cat`` (and ``CorridorKeyBlue.cat``) are
    built by the user in NukeX and put here.

* ``nuke/corridorkey_cat_spec.json``: what ``nuke/corridorkey_create_cat.py`` sets on
  CatFileCreator. ``nuke/`` holds what runs inside Nuke to build or register things
  (that script, and the ``init.py`` of the NUKE_PATH route).

The committed files must equal this module's output (``--check``, and a test). The
wheel carries ``gizmos/`` and ``nuke/`` as package data (``corridorkey_export/nuke_package/``,
see pyproject.toml), so ``--install-to`` works from an installed copy as from a checkout.

Usage::

    python -m corridorkey_export.nuke_files --write      # regenerate
    python -m corridorkey_export.nuke_files --check      # exit 1 if a committed file is stale
    python -m corridorkey_export.nuke_files --install-to ~/.nuke --cat CorridorKey.cat

Facts about Nuke that these files rely on, and where they come from:

* ``serialiseKnob {name:{parent.knob};...}`` links an Inference node's .cat knobs to
  the gizmo's knobs (pedroCabrera/CatteryNodes ``PC_RobustVideoMatting.gizmo``,
  manwhosoldthew/RIFE-for-Nuke ``RIFE.gizmo``); the .cat knobs exist only once the
  .cat is loaded, so the gizmo writes no plain knob lines for them and its onCreate
  calls ``forceValidate()`` on the Inference node first (Foundry's ``RAFT.gizmo`` and
  ``BackgroundMatting.gizmo``).
* ``modelFile "[lsearch -inline [plugins -all X.cat] *.cat]"`` finds the .cat on the
  plugin path (the same Foundry gizmos); ``nukescripts/cattery.py`` adds the folder of a
  package's gizmo to the plugin path.
* Colour conversion with ``OCIOColorSpace`` and config roles, ``scene_linear`` ->
  ``color_picking`` before the network and back after it (Foundry's
  ``BackgroundMatting.gizmo``); the nuke-default config maps ``color_picking`` to
  ``sRGB`` (imageworks/OpenColorIO-Configs ``nuke-default/config.ocio``).
* The automatic hint (knob ``auto_hint``): the gizmo's Python decides it in onCreate and
  knobChanged and says so on the Status line, where the node already reports a missing
  .cat. (Foundry's own RAFT.gizmo / BackgroundMatting.gizmo text was not available to
  check how they report a missing input; the facts used come from Foundry's Python
  documentation and public gizmos.) ``Node.input(i)`` is the node connected to input ``i`` or ``None`` (Foundry's Python
  reference, ``nuke.Node``; community gizmos test ``n.input(1) is None``); knobChanged also
  runs "when the inputs to the node changes" (Foundry's Python Developer's Guide,
  ``nuke.addKnobChanged``), with ``nuke.thisKnob().name() == 'inputChange'`` (the dummy
  knob's name as public gizmos and scripts test it). onCreate runs when a script loads,
  terminal renders included, so the saved ``auto_hint`` is re-derived from the connections
  before any render. An Enumeration knob's ``setValue`` takes the item's index (Foundry's
  Python reference, ``Enumeration_Knob``); ``+INVISIBLE`` on ``addUserKnob`` hides a knob
  that scripts drive (public gizmos, e.g. ``addUserKnob {4 name l label +INVISIBLE M {...}}``).
* Startup: Nuke runs ``init.py`` (every session, terminal ones too) then ``menu.py``
  (interactive only) in each plugin-path folder, and ``nuke.pluginAddPath`` called from
  an ``init.py`` runs that folder's ``init.py`` (Foundry Python Developer's Guide,
  "Start-up Scripts" and ``nuke.pluginAddPath``).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import click

from corridorkey_export.nuke_contract import CHANNELS_IN, CHANNELS_OUT, OUTPUT_SCALE, SCREENS, NukeModel
from corridorkey_model.keying.knobs import AUTO_HINT, GAMMA_INPUT, KNOBS, KnobSpec

log = logging.getLogger(__name__)

#: Node class of the gizmo (its file name without ``.gizmo``) and name of the Cattery package.
GIZMO_CLASS = "CorridorKey"
#: File name of the green model's .cat (the one every install needs).
CAT_FILENAME = SCREENS[0].cat_filename
#: Name of the Inference node of each screen inside the gizmo, in Screen-menu order.
INFERENCE_NODES: Dict[str, str] = {"green": "Inference", "blue": "InferenceBlue"}
#: Name of the green model's Inference node (the gizmo's Model File knob shows its modelFile).
INFERENCE_NODE = INFERENCE_NODES["green"]
#: Oldest Nuke the package claims (TorchScript from a PyTorch 2.x export; see export/targets.py).
MINIMUM_NUKE = 15.1
#: The screen whose Inference node the gizmo's Model File knob links to.
MODEL_FILE_SCREEN = "green"
#: What the gizmo's Verify button runs (gizmos/Cattery/CorridorKey/corridorkey_verify.py).
VERIFY_COMMAND = "import nuke\nimport corridorkey_verify\ncorridorkey_verify.verify(nuke.thisNode())"

#: Output choice of the gizmo, in menu order (the Switch node's input order).
OUTPUT_MODES: Tuple[str, ...] = (
    "Comp-ready (premultiplied linear)",
    "Straight linear fg + alpha",
    "Raw model output",
    "Matte only",
)
#: Which channel of the Hint input becomes the hint (rgba.alpha of the model input), in menu order;
#: "automatic" ignores the Hint input and makes the hint from the plate (knob auto_hint = 1).
HINT_CHANNELS: Tuple[str, ...] = ("alpha", "red", "luminance", "automatic")
#: Index of "automatic" in the Hint Channel menu.
HINT_AUTOMATIC = HINT_CHANNELS.index("automatic")
#: Status line texts of the automatic hint (the gizmo's Python writes them).
AUTO_HINT_UNCONNECTED = ("CorridorKey: no Hint input is connected, so the node makes an automatic hint from the "
                         "plate (connect a rough matte to Hint to use your own).")
AUTO_HINT_CHOSEN = ("CorridorKey: Hint Channel is automatic: the hint is made from the plate and the Hint input "
                    "is ignored.")
#: Rec.709 luminance weights (the luma of the nuke-default config).
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)

#: OCIO roles of the colour conversion around the network (Foundry's Cattery gizmos use these two).
WORKING_ROLE = "scene_linear"
NETWORK_ROLE = "color_picking"
#: The OCIOColorSpace nodes: working space -> network space, and the network's fg back.
TO_NETWORK_NODE = "ToNetwork"
FROM_NETWORK_NODE = "FromNetwork"

GAMMA_INPUT_GIZMO_NOTE = (
    "\n\nIn this node: sRGB (the default) feeds the network the plate converted by OCIO from the "
    "Working Space to the Network Colorspace (an sRGB-encoded Rec.709 space), in any OCIO config. "
    "Linear bypasses that conversion: the scene-linear plate goes in as it is and the model "
    "sRGB-encodes it after its resize (upstream CorridorKey's linear mode); use it only in a "
    "linear Rec.709 working space such as nuke-default's."
).replace("\\n", "\n")

#: The Cattery package folder in the repository (nuke/init.py puts gizmos/ and it on the plugin path).
PACKAGE_DIR = "gizmos/Cattery/" + GIZMO_CLASS
GIZMO_PATH = f"{PACKAGE_DIR}/{GIZMO_CLASS}.gizmo"
TEMPLATE_PATH = f"{PACKAGE_DIR}/{GIZMO_CLASS}_template.nk"
CAT_JSON_PATH = f"{PACKAGE_DIR}/cat.json"
ICON_PATH = f"{PACKAGE_DIR}/{GIZMO_CLASS}.png"
MENU_PATH = f"{PACKAGE_DIR}/menu.py"
CAT_SPEC_PATH = "nuke/corridorkey_cat_spec.json"
CREATE_CAT_PATH = "nuke/corridorkey_create_cat.py"
NUKE_INIT_PATH = "nuke/init.py"

#: The Verify button's Python (hand-written; runs inside Nuke): corridorkey_verify.verify(node).
VERIFY_MODULE_PATH = f"{PACKAGE_DIR}/corridorkey_verify.py"

#: What ``--install-to`` copies into ``<nuke home>/Cattery/CorridorKey/``.
PACKAGE_FILES = (GIZMO_PATH, TEMPLATE_PATH, CAT_JSON_PATH, ICON_PATH, MENU_PATH, CREATE_CAT_PATH, CAT_SPEC_PATH,
                 VERIFY_MODULE_PATH)

INIT_MARK = "# CorridorKey Cattery package (added by corridorkey_export.nuke_files --install-to)"


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
    """The gizmo's default for each model knob: the knob spec's default."""
    return {k.name: k.typed_default for k in KNOBS}


def user_knob_line(spec: KnobSpec, tooltip: str, flags: str = "") -> str:
    """``addUserKnob`` for one knob spec: float -> 7 (slider), int with choices -> 4 (pulldown), int -> 3.

    ``flags``: e.g. ``"+INVISIBLE"`` for a knob the gizmo's Python drives.
    """
    head = f"{spec.name} l {nk_quote(spec.label)} t {nk_quote(tooltip)}" + (f" {flags}" if flags else "")
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


def serialise_knob_links() -> str:
    """The Inference node's ``serialiseKnob`` text: every .cat knob linked to the gizmo knob of the same name.

    ``{despill_strength:{parent.despill_strength};...}``: the form community Cattery gizmos
    use (PC_RobustVideoMatting.gizmo), one entry per knob of the knob spec.
    """
    return "{" + "".join(f"{k.name}:{{parent.{k.name}}};" for k in KNOBS) + "}"


def _node(cls: str, knobs: Sequence[str], indent: str = " ") -> List[str]:
    return [f"{indent}{cls} {{"] + [f"{indent} {line}" for line in knobs] + [f"{indent}}}"]


# --------------------------------------------------------------------------- the gizmo


def _cat_check_script() -> str:
    """Python run by the gizmo's onCreate and on a change of Screen: load the .cat, say plainly if it is missing.

    ``forceValidate()`` first, as Foundry's Cattery gizmos do: the Inference node reads its
    .cat (and so gets the .cat's knobs, linked through ``serialiseKnob``) only when
    validated. Then the chosen screen's .cat is looked up; when it is missing the node's
    Status line and Nuke's error console name the file and where to put it (Model File is
    mentioned only for the screen whose Inference node it links to). A .cat that exists but
    leaves the Inference node in error after ``forceValidate()`` (``Node.hasError()``: "True if
    the node itself has an error", Foundry's Python reference, nuke.Node) is reported as
    damaged or made for another Nuke. Any failure becomes a message too, never a Python
    traceback.
    """
    screens = ", ".join(f"({s.name!r}, {INFERENCE_NODES[s.name]!r}, {s.cat_filename!r})" for s in SCREENS)
    return (
        "import os\n"
        "import nuke\n"
        "ck_node = nuke.thisNode()\n"
        "ck_message = ''\n"
        "try:\n"
        f"    ck_screens = [{screens}]\n"
        "    ck_screen, ck_inference_name, ck_cat = ck_screens[int(ck_node['screen'].getValue())]\n"
        "    for ck_name in set(n for _, n, _ in ck_screens):\n"
        "        ck_inf = ck_node.node(ck_name)\n"
        "        if ck_inf is not None and not ck_inf['disable'].getValue():\n"
        "            ck_inf.forceValidate()\n"
        "    ck_inf = ck_node.node(ck_inference_name)\n"
        "    ck_node['gpuName'].setValue(ck_inf['gpuName'].value())\n"
        f"    ck_to = ck_node.node({TO_NETWORK_NODE!r})\n"
        f"    ck_from = ck_node.node({FROM_NETWORK_NODE!r})\n"
        "    ck_from['in_colorspace'].setValue(ck_to['out_colorspace'].value())\n"
        "    ck_from['out_colorspace'].setValue(ck_to['in_colorspace'].value())\n"
        "    ck_path = ck_inf['modelFile'].evaluate()\n"
        "    if not ck_path or not os.path.isfile(ck_path):\n"
        "        ck_message = ('CorridorKey: %s (the %s-screen model) was not found on the plugin path. '\n"
        "                      'Build it from the exported .pt with corridorkey_create_cat.py in NukeX and put it '\n"
        "                      'in the Cattery/CorridorKey folder next to CorridorKey.gizmo%s.'\n"
        f"                      % (ck_cat, ck_screen, ' (or point Model File at it)' if ck_screen == {MODEL_FILE_SCREEN!r} "
        "else ''))\n"
        "    elif ck_inf.hasError():\n"
        "        ck_message = ('CorridorKey: %s was found (%s) but its Inference node reports an error: the .cat '\n"
        "                      'is damaged, or was made for another Nuke (by a newer NukeX, or from a .pt '\n"
        "                      'exported for another --target-nuke). Build it again with corridorkey_create_cat.py '\n"
        "                      'in this NukeX.' % (ck_cat, ck_path))\n"
        "except Exception as ck_exc:\n"
        "    ck_message = 'CorridorKey: the node could not be set up: %s' % ck_exc\n"
        + _hint_state_script() +
        "ck_node['status'].setValue('\\n'.join(ck_line for ck_line in (ck_message, ck_hint_note) if ck_line))\n"
        "if ck_message:\n"
        "    nuke.warning(ck_message)\n"
    )


def _hint_state_script() -> str:
    """Python that sets the .cat's ``auto_hint`` (through the gizmo knob it links to) and the hint note.

    Automatic when the Hint input (input 1) is not connected or Hint Channel is "automatic".
    Sets ``ck_hint_note`` (the Status line's hint sentence, empty when the Hint input is used).
    """
    return (
        "ck_hint_note = ''\n"
        "try:\n"
        "    ck_unconnected = ck_node.input(1) is None\n"
        f"    ck_chosen = int(ck_node['hint_channel'].getValue()) == {HINT_AUTOMATIC}\n"
        f"    ck_node[{AUTO_HINT.name!r}].setValue(1 if (ck_unconnected or ck_chosen) else 0)\n"
        f"    if ck_unconnected:\n"
        f"        ck_hint_note = {AUTO_HINT_UNCONNECTED!r}\n"
        f"    elif ck_chosen:\n"
        f"        ck_hint_note = {AUTO_HINT_CHOSEN!r}\n"
        "except Exception as ck_exc:\n"
        "    ck_hint_note = 'CorridorKey: could not decide the hint source: %s' % ck_exc\n"
    )


def _knob_changed_script() -> str:
    """Gizmo knobChanged: re-check the .cat when Screen or Model File changes; keep FromNetwork in step."""
    return (
        "if nuke.thisKnob().name() in ('screen', 'modelFile', 'working_colorspace', 'network_colorspace', "
        "'hint_channel', 'inputChange'):\n"
        + "".join("    " + line + "\n" for line in _cat_check_script().splitlines())
    )


def _to_network_knob_changed() -> str:
    """ToNetwork's own knobChanged keeps FromNetwork its inverse (how Foundry's BackgroundMatting.gizmo does it)."""
    return (
        f"ck_from = nuke.toNode({FROM_NETWORK_NODE!r})\n"
        "ck_from['in_colorspace'].setValue(nuke.thisNode()['out_colorspace'].value())\n"
        "ck_from['out_colorspace'].setValue(nuke.thisNode()['in_colorspace'].value())\n"
    )


def _gizmo_knobs() -> List[str]:
    """The gizmo's own knob lines (addUserKnob + values), in panel order."""
    defaults = gizmo_defaults()
    lines = [" addUserKnob {20 CorridorKey}"]
    # Local GPU line, as on Foundry's Cattery gizmos (filled from the Inference node by onCreate).
    lines.append(' addUserKnob {26 localGPU l "Local GPU:" T ""}')
    lines.append(' addUserKnob {26 gpuName l "" -STARTLINE T ""}')
    lines.append(
        " addUserKnob {6 useGPUIfAvailable l \"Use GPU if available\" t "
        + nk_quote("Render on the local GPU when there is one, else on the CPU. Leave it on for farm "
                   "renders started with --gpu.")
        + " +STARTLINE}")
    lines.append(" useGPUIfAvailable true")
    lines.append(
        " addUserKnob {6 halfPrecision l \"Optimize for Speed and Memory\" t "
        + nk_quote("Run the network in 16-bit half float on the GPU: faster, less GPU memory, larger "
                   "plates; small differences in the matte are possible. Only used on the GPU.")
        + " +STARTLINE}")
    lines.append(
        " addUserKnob {26 status l Status t "
        + nk_quote("Empty when the chosen screen's .cat loaded and the Hint input is used. Otherwise what is "
                   "missing and where to put it, whether the .cat loaded with an error (damaged, or made for "
                   "another Nuke), and whether the node makes an automatic hint from the plate. It is checked "
                   "when the node is created and when Screen, Model File, the colour spaces, Hint Channel or "
                   "the inputs change; an error that appears only while rendering shows on the node, not here. "
                   "Verify runs the model on a test plate and writes its verdict here.")
        + ' T ""}')
    # The Verify button: a PyScript_Knob (id 22, NDK "Knob Types"); the {22 name l Label T "python"} form is
    # that of public gizmos (manwhosoldthew/RIFE-for-Nuke RIFE.gizmo's reset_range). It calls the package's
    # corridorkey_verify.py (gizmos/Cattery/CorridorKey/), on sys.path through nuke.pluginAddPath.
    lines.append(
        " addUserKnob {22 verify l Verify t "
        + nk_quote("Run this node's model on a small test plate on this machine, with its GPU and Optimize for "
                   "Speed and Memory settings, and compare the result with the reference values written at "
                   "export time. The verdict goes to Status.")
        + " T " + nk_quote(VERIFY_COMMAND) + " +STARTLINE}")
    lines.append(' addUserKnob {26 ""}')
    screen_tip = ("Which model keys the plate: the green-screen model (" + SCREENS[0].cat_filename
                  + ") or the blue-screen model (" + SCREENS[1].cat_filename + "). Each is its own .cat, "
                  "found on the plugin path; an install with only the green one works as long as Green "
                  "is chosen. The plate goes in unchanged either way.")
    lines.append(" addUserKnob {4 screen l Screen t " + nk_quote(screen_tip)
                 + f" M {{{' '.join(s.label for s in SCREENS)}}}}}")
    lines.append(
        " addUserKnob {41 modelFile l \"Model File\" t "
        + nk_quote(f"The green-screen model's .cat. Default: the first {CAT_FILENAME} on Nuke's plugin path "
                   "(the Cattery/CorridorKey folder). Build it from CorridorKey.pt with "
                   "corridorkey_create_cat.py in NukeX.")
        + f" T {INFERENCE_NODE}.modelFile}}")
    lines.append(
        " addUserKnob {4 output_mode l Output t "
        + nk_quote(
            "Comp-ready: premultiplied RGBA in the working space, ready to Merge over a background (the "
            "network's sRGB foreground is converted to the working space, THEN premultiplied by the alpha).\n"
            "Straight linear fg + alpha: the same foreground, not premultiplied.\n"
            "Raw model output: what the network returns, straight sRGB-encoded fg + linear alpha.\n"
            "Matte only: the alpha in all four channels.")
        + f" M {{{' '.join(nk_quote(m) for m in OUTPUT_MODES)}}}}}")
    lines.append(
        " addUserKnob {4 hint_channel l \"Hint Channel\" t "
        + nk_quote("Which channel of the Hint input is the rough matte the network refines: its alpha (a "
                   "Roto or keyer output), its red channel (a greyscale or RGB matte file, which has no "
                   "alpha), or its Rec.709 luminance. automatic: ignore the Hint input and make a rough "
                   "hint from the plate (a screen-difference key, eroded inside the subject). With no Hint "
                   "input connected the node always uses the automatic hint, and its Status line says so.")
        + f" M {{{' '.join(HINT_CHANNELS)}}}}}")
    lines.append(" addUserKnob {26 colour_divider l \"<b>Colour</b>\"}")
    lines.append(
        " addUserKnob {41 working_colorspace l \"Working Space\" t "
        + nk_quote(f"The colour space of the plate and of this node's output. Default: the config's "
                   f"{WORKING_ROLE} role (nuke-default: linear; ACES configs: ACEScg).")
        + f" T {TO_NETWORK_NODE}.in_colorspace}}")
    lines.append(
        " addUserKnob {41 network_colorspace l \"Network Colorspace\" t "
        + nk_quote(f"The sRGB-encoded Rec.709 space the network was trained on. Default: the config's "
                   f"{NETWORK_ROLE} role, which is sRGB in nuke-default. In an ACES 1.x config whose "
                   f"{NETWORK_ROLE} role is a display transform (Output - sRGB), choose the sRGB texture "
                   "space instead (Utility - sRGB - Texture, or sRGB - Texture). The foreground is converted "
                   "back from this space to the Working Space.")
        + f" T {TO_NETWORK_NODE}.out_colorspace}}")
    lines.append(" addUserKnob {26 model_divider l \"<b>Model</b>\"}")
    for spec in KNOBS:
        tooltip = spec.tooltip + (GAMMA_INPUT_GIZMO_NOTE if spec.name == GAMMA_INPUT.name else "")
        # auto_hint follows the Hint input and Hint Channel (the gizmo's Python sets it): not a panel knob
        flags = "+INVISIBLE" if spec.name == AUTO_HINT.name else ""
        lines.append(" " + user_knob_line(spec, tooltip, flags))
        lines.append(" " + user_knob_value(spec, defaults[spec.name]))
    return lines


def _inference_node(screen: NukeModel, index: int) -> List[str]:
    """One Inference node: its .cat found on the plugin path, its .cat knobs linked through serialiseKnob.

    Only the chosen screen's node is enabled: a disabled Inference node does not load
    its .cat, so a missing blue .cat does no harm while Green is chosen.
    """
    return _node("Inference", [
        "useGPUIfAvailable {{parent.useGPUIfAvailable}}",
        f"modelFile {nk_quote(f'[lsearch -inline [plugins -all {screen.cat_filename}] *.cat]')}",
        "halfPrecision {{parent.halfPrecision}}",
        f"serialiseKnob {serialise_knob_links()}",
        f"disable {{{{parent.screen != {index}}}}}",
        f"name {INFERENCE_NODES[screen.name]}",
        f"xpos {index * 160}", "ypos -100",
    ])


def render_gizmo() -> str:
    """The text of ``CorridorKey.gizmo``."""
    # "automatic" (3) falls through to luminance here; the .cat ignores the hint channel then (auto_hint = 1).
    hint_expr = (
        "parent.hint_channel == 0 ? a : (parent.hint_channel == 1 ? r : "
        f"{LUMINANCE_WEIGHTS[0]}*r + {LUMINANCE_WEIGHTS[1]}*g + {LUMINANCE_WEIGHTS[2]}*b)"
    )
    lines = [f"version {MINIMUM_NUKE} v1", "Gizmo {", " inputs 2"]
    lines.append(f" onCreate {nk_quote(_cat_check_script())}")
    lines.append(f" knobChanged {nk_quote(_knob_changed_script())}")
    lines.append(" tile_color 0x4caf50ff")
    lines += _gizmo_knobs()
    lines.append("}")

    # Node graph. Stack rule of .nk files: a node with N inputs takes the top of the
    # stack as input 0, the next as input 1, ...; push order below is chosen for that.
    lines += _node("Input", ["inputs 0", "name Hint", "number 1", "xpos 200", "ypos -400"])
    lines += _node("Expression", [f"expr3 {nk_quote(hint_expr)}", "name HintToAlpha", "xpos 200", "ypos -320"])
    lines += _node("Input", ["inputs 0", "name Plate", "xpos 0", "ypos -400"])
    # Working space -> sRGB-encoded Rec.709 (the network's domain); bypassed for Input Gamma = Linear.
    lines += _node("OCIOColorSpace", [
        f"in_colorspace {WORKING_ROLE}", f"out_colorspace {NETWORK_ROLE}",
        f"knobChanged {nk_quote(_to_network_knob_changed())}",
        f"disable {{{{parent.{GAMMA_INPUT.name} == 1}}}}",
        f"name {TO_NETWORK_NODE}", "xpos 0", "ypos -340"])
    # The hint goes into alpha after the colour conversion, so no colour transform touches it.
    lines += _node("Copy", ["inputs 2", "from0 rgba.alpha", "to0 rgba.alpha", "name PlatePlusHint",
                            "xpos 0", "ypos -260"])
    lines.append("set NModelInput [stack 0]")
    # One Inference node per screen, pushed in reverse so that the Switch's input i is screen i.
    for order, index in enumerate(reversed(range(len(SCREENS)))):
        if order:
            lines.append("push $NModelInput")
        lines += _inference_node(SCREENS[index], index)
    lines += _node("Switch", [f"inputs {len(SCREENS)}", "which {{parent.screen}}", "name ScreenSwitch",
                              "xpos 0", "ypos -30"])
    lines.append("set NModel [stack 0]")
    # Switch input 3: matte only.
    lines += _node("Shuffle", ["red alpha", "green alpha", "blue alpha", "alpha alpha", "name MatteOnly",
                               "xpos 400", "ypos 40"])
    # Switch input 2: raw model output.
    lines.append("push $NModel")
    lines += _node("Dot", ["name RawOutput", "xpos 304", "ypos 44"])
    # Switch inputs 1 and 0: the sRGB fg back to the working space, the network's alpha kept as it is.
    lines.append("push $NModel")
    lines.append("push $NModel")
    lines += _node("OCIOColorSpace", [
        f"in_colorspace {NETWORK_ROLE}", f"out_colorspace {WORKING_ROLE}",
        f"name {FROM_NETWORK_NODE}", "xpos 0", "ypos 40"])
    # Copy: B (input 0) the converted fg, A (input 1) the model output whose alpha is restored.
    lines += _node("Copy", ["inputs 2", "from0 rgba.alpha", "to0 rgba.alpha", "name KeepModelAlpha",
                            "xpos 0", "ypos 90"])
    lines.append("set NWorking [stack 0]")
    lines += _node("Dot", ["name StraightWorking", "xpos 194", "ypos 144"])
    lines.append("push $NWorking")
    lines += _node("Premult", ["name PremultWorking", "xpos 0", "ypos 140"])
    lines += _node("Switch", ["inputs 4", "which {{parent.output_mode}}", "name OutputSwitch",
                              "xpos 0", "ypos 200"])
    lines += _node("Output", ["name Output1", "xpos 0", "ypos 280"])
    lines.append("end_group")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- template comp


TEMPLATE_NOTES = (
    "CorridorKey template\n"
    "1. Plate: your green- or blue-screen plate, default Read settings (the node converts it from the "
    "working space for the network with OCIO).\n"
    "2. Hint: a rough matte of the subject (garbage matte, roto, another keyer). Read with 'raw data' on "
    "so its values are not colour-converted. A matte file has no alpha, so the node's Hint Channel is "
    "set to red here; use alpha for a Roto or keyer output.\n"
    "3. CorridorKey outputs comp-ready premultiplied RGBA in the working space: Merge it over the "
    "background. Pick Screen = Blue for a blue screen.\n"
    f"The node needs {CAT_FILENAME} in the Cattery/CorridorKey folder (see the README, section Nuke)."
)


def render_template() -> str:
    """The text of ``CorridorKey_template.nk``: nodes only, for ``nuke.nodePaste`` into the open script.

    No ``Root`` node: pasting must not change the user's project settings.
    """
    lines = [f"version {MINIMUM_NUKE} v1"]
    lines += _node("StickyNote", ["inputs 0", f"label {nk_quote(TEMPLATE_NOTES)}", "note_font_size 14",
                                  "name CorridorKeyNotes", "xpos -460", "ypos -340"], indent="")
    lines += _node("Read", ["inputs 0", "file hint.####.png", "raw true", "name ReadHint",
                            "xpos 140", "ypos -340"], indent="")
    lines += _node("Read", ["inputs 0", "file plate.####.exr", "name ReadPlate", "xpos 0", "ypos -340"],
                   indent="")
    lines += _node(GIZMO_CLASS, ["inputs 2", f"hint_channel {HINT_CHANNELS[1]}", "name CorridorKey1",
                                 "xpos 0", "ypos -200"], indent="")
    lines += _node("Read", ["inputs 0", "file background.####.exr", "name ReadBackground",
                            "xpos -200", "ypos -200"], indent="")
    lines += _node("Merge2", ["inputs 2", "operation over", "name MergeOverBackground", "xpos -200",
                              "ypos -100"], indent="")
    lines += _node("Write", ["file corridorkey_comp.####.exr", "file_type exr", "name WriteComp",
                             "xpos -200", "ypos 0"], indent="")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- Cattery package + .cat spec


def render_cat_json() -> str:
    """``cat.json``: the Cattery package description (its menu entry, category and minimum Nuke).

    Fields as nukescripts/cattery.py reads them: ``minimum_nuke_version_required``,
    ``version``, ``category``, ``description``, ``cats`` [{``filepath``, ``name``, ``icon``}].
    """
    data = {
        "minimum_nuke_version_required": MINIMUM_NUKE,
        "version": 1,
        "category": "Keying",
        "description": ("CorridorKey neural green- and blue-screen keyer (plate + rough hint -> clean matte "
                        "and despilled foreground)."),
        "cats": [{"filepath": Path(GIZMO_PATH).name, "name": GIZMO_CLASS, "icon": Path(ICON_PATH).name}],
    }
    return json.dumps(data, indent=4) + "\n"


def channel_list(channels: Sequence[str]) -> str:
    """Channels In/Out as CatFileCreator stores them: comma-separated, no spaces (RVMNukeCatCreator.py)."""
    return ",".join(channels)


def render_cat_spec() -> str:
    """What the .cat creation script sets on CatFileCreator (read by nuke/corridorkey_create_cat.py)."""
    data = {
        "channelsIn": channel_list(CHANNELS_IN),
        "channelsOut": channel_list(CHANNELS_OUT),
        "outputScale": OUTPUT_SCALE,
        "screens": [{"name": s.name, "modelId": s.model_id, "pt": s.pt_filename, "cat": s.cat_filename}
                    for s in SCREENS],
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


#: The init.py block of the earlier layout (``<nuke home>/CorridorKey``), replaced on install.
_OLD_INIT_MARK = "# CorridorKey plugin path (added by corridorkey_export.nuke_files --install-to)"


def nuke_path(path: Path) -> str:
    """An absolute path the way Nuke writes paths: forward slashes on every OS (nukescripts/cattery.py)."""
    return Path(path).expanduser().absolute().as_posix()


def init_block(package_dir: Path) -> str:
    """The lines ``--install-to`` adds to ``<nuke home>/init.py``.

    Nuke's Cattery menu finds ``<nuke home>/Cattery/CorridorKey/cat.json`` by itself in an
    interactive session (and honours its minimum Nuke version); this line also puts the
    package folder on the plugin path in terminal and render sessions (``nuke -x``,
    ``nuke -t``), where no menu is built, so that the ``CorridorKey`` node class and its
    .cat files are found there too, in Nuke MINIMUM_NUKE or later only; an older Nuke gets
    a warning saying why. The version comes from ``nuke.env['NukeVersionMajor']`` /
    ``['NukeVersionMinor']``, as public init.py files read it (nim-labs/connectors
    plugins/Nuke/install/init.py). One statement, so the block stays three lines.
    """
    major, minor = (int(v) for v in str(MINIMUM_NUKE).split("."))
    too_old = (f"nuke.warning('CorridorKey needs Nuke {MINIMUM_NUKE} or later (its .cat runs on the PyTorch 2.1 "
               f"runtime of Nuke {MINIMUM_NUKE}+): not added to this Nuke %s.%s' % "
               "(nuke.env['NukeVersionMajor'], nuke.env['NukeVersionMinor']))")
    return (f"{INIT_MARK}\nimport nuke\n"
            f"nuke.pluginAddPath({nuke_path(package_dir)!r}) if (int(nuke.env['NukeVersionMajor']), "
            f"int(nuke.env['NukeVersionMinor'])) >= ({major}, {minor}) else {too_old}\n")


def _registered_init(text: str, package_dir: Path) -> str:
    """``text`` of an init.py with our block present exactly once (an earlier layout's block replaced)."""
    block = init_block(package_dir)
    kept, skip = [], 0
    for line in text.splitlines(keepends=True):
        if skip:
            skip -= 1
            continue
        if line.rstrip("\n") in (INIT_MARK, _OLD_INIT_MARK):
            skip = 2  # the mark is followed by "import nuke" and the pluginAddPath line
            continue
        kept.append(line)
    body = "".join(kept)
    return body + ("\n" if body and not body.endswith("\n") else "") + block


def install(root: Path, nuke_dir: Path, cat: Optional[Path] = None, blue_cat: Optional[Path] = None) -> Path:
    """Install the Cattery package into ``<nuke_dir>/Cattery/CorridorKey`` and register it in ``<nuke_dir>/init.py``.

    Copies the gizmo, template, cat.json, icon, menu.py, the Verify button's module and the
    .cat creation script, plus the built .cat files when given (saved under the names the
    gizmo looks for) with the Verify plate and reference values found beside them,
    and keeps exactly one registration block in ``init.py``. Returns the package folder.
    """
    stale = check(root)
    if stale:
        fix = ("run: python -m corridorkey_export.nuke_files --write" if checkout_root() == Path(root).resolve()
               else "reinstall corridorkey-nuke, or give --root CHECKOUT")
        raise click.ClickException(f"generated files in {root} are out of date or missing: {', '.join(stale)}; {fix}")
    cats = {}
    for given, screen in ((cat, SCREENS[0]), (blue_cat, SCREENS[1])):
        if given is None:
            continue
        if not Path(given).is_file():
            raise click.ClickException(f"{given}: no such file. Build the {screen.name}-screen .cat in NukeX with "
                                       "corridorkey_create_cat.py (see the README, section Nuke)")
        cats[screen.cat_filename] = Path(given)
    nuke_dir = Path(nuke_dir).expanduser()
    target = nuke_dir / "Cattery" / GIZMO_CLASS
    files: Dict[Path, bytes] = {}
    for rel in PACKAGE_FILES:
        src = Path(root) / rel
        if not src.is_file():
            raise click.ClickException(f"missing {src}: the installation of corridorkey-nuke is incomplete; "
                                       "reinstall it (pip install --force-reinstall corridorkey-nuke)")
        files[target / src.name] = src.read_bytes()
    for name, src in cats.items():
        files[target / name] = src.read_bytes()
    for screen in SCREENS:  # the Verify button's plate and reference values, exported beside the .pt
        given = cat if screen is SCREENS[0] else blue_cat
        if given is None:
            continue
        for extra in (screen.verify_filename, screen.verify_plate_filename):
            src = Path(given).parent / extra
            if src.is_file():
                files[target / extra] = src.read_bytes()
            else:
                log.warning("no %s beside %s: the node's Verify button needs it (export-torchscript writes it "
                            "beside the .pt; build the .cat in that folder or copy it there)", extra, given)
    init = nuke_dir / "init.py"
    text = _read_init(init)
    if _OLD_INIT_MARK in text:
        log.warning("replaced the registration of the earlier layout %s in %s; that folder can be deleted",
                    nuke_dir / GIZMO_CLASS, init)
    new_text = _registered_init(text, target)
    try:
        init_bytes = new_text.encode("utf-8", "surrogateescape")  # bytes that were not UTF-8 come back unchanged
    except UnicodeEncodeError:
        raise click.ClickException(
            f"{init} is not UTF-8 and the package path {target} is not ASCII, so the registration line cannot be "
            f"added in the file's own encoding: save {init} as UTF-8, or install into a folder with an ASCII "
            f"path") from None
    _check_can_write(nuke_dir, init, target)  # before anything is touched
    _install_files(files, target)
    if new_text != text:
        try:
            _atomic_write(init, init_bytes)
        except OSError as exc:
            raise click.ClickException(f"installed {target}, but could not register it in {init}: "
                                       f"{_why(init, exc)}. Add these lines to it yourself:\n"
                                       f"{init_block(target)}") from None
    return target


def _why(path: Path, exc: OSError) -> str:
    from corridorkey_model import atomic

    return atomic.why_write_failed(path, exc)


def _read_init(init: Path) -> str:
    """``init.py``'s text ('' if absent). Bytes that are not UTF-8 (an older file in another encoding) are kept
    as they are (``surrogateescape``), so the rest of the file is written back byte for byte."""
    try:
        return init.read_bytes().decode("utf-8", "surrogateescape") if init.exists() else ""
    except OSError as exc:
        raise click.ClickException(f"cannot read {init} ({exc.strerror or exc}); fix its permissions or install "
                                   f"into another Nuke home folder") from None


def _check_can_write(nuke_dir: Path, init: Path, target: Path) -> None:
    """ClickException unless the package folder and ``init.py`` can be written: a probe file is made and removed
    in the nearest existing folder of each, so a read-only or full folder stops the install with nothing done."""
    from corridorkey_model import atomic

    for folder in {target, init.parent}:
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise click.ClickException(f"cannot install into {nuke_dir}: {existing} is a file, not a folder")
        try:
            atomic.discard(atomic.temp_path_for(existing / "install-probe"))
        except OSError as exc:
            raise click.ClickException(f"cannot install into {nuke_dir}: {existing} is not writable "
                                       f"({_why(existing / 'x', exc)}); nothing was changed. Fix its permissions "
                                       f"or give another --install-to folder") from None


def _install_files(files: Dict[Path, bytes], target: Path) -> None:
    """Write every file to a temporary name first, then rename them all into place; on a failure nothing of the
    package is changed (temporaries and folders made here are removed)."""
    from corridorkey_model import atomic

    created = []
    p = target
    while not p.exists():
        created.append(p)
        p = p.parent
    temps: List[Tuple[Path, Path]] = []
    try:
        for folder in reversed(created):
            folder.mkdir()
        for final, data in files.items():
            tmp = atomic.temp_path_for(final)
            temps.append((tmp, final))
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        for tmp, _final in temps:
            atomic.discard(tmp)
        for folder in created:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                pass
        raise click.ClickException(f"cannot install into {target}: {_why(target / 'x', exc)}; nothing was "
                                   f"changed") from None
    for tmp, final in temps:
        atomic.commit(tmp, final)


#: Where an installed wheel keeps ``gizmos/`` and ``nuke/`` (package data; pyproject.toml maps them here).
INSTALLED_DATA_DIR = Path(__file__).resolve().parent / "nuke_package"


def checkout_root() -> Optional[Path]:
    """The repository root when this module runs from a checkout (``export/`` is its child), else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "export" / Path(__file__).name).is_file():
        return root
    return None


def default_root() -> Path:
    """Where the Nuke files are read from: the checkout, or the installed wheel's package data."""
    return checkout_root() or INSTALLED_DATA_DIR


def _refuse_outside_checkout(root: Path) -> None:
    """``--write`` regenerates a checkout's files; an installed package (site-packages) is never written."""
    resolved = Path(root).resolve()
    if resolved == INSTALLED_DATA_DIR or INSTALLED_DATA_DIR in resolved.parents:
        raise click.ClickException(
            f"--write regenerates the files of a source checkout; {root} is the installed package's copy. "
            "Run it in a checkout (or give --root CHECKOUT); --check and --install-to work from here.")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--write", "do_write", is_flag=True, help="Regenerate the gizmo, template, cat.json, icon and .cat spec.")
@click.option("--check", "do_check", is_flag=True, help="Exit with status 1 if a committed generated file is stale.")
@click.option("--install-to", "install_to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install the Cattery package into this Nuke home folder (usually ~/.nuke): "
                   "<dir>/Cattery/CorridorKey, registered in <dir>/init.py.")
@click.option("--cat", "cat", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"With --install-to: the built green-screen .cat, installed as {SCREENS[0].cat_filename}.")
@click.option("--blue-cat", "blue_cat", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"With --install-to: the built blue-screen .cat, installed as {SCREENS[1].cat_filename}.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder holding gizmos/ and nuke/. Default: this checkout, or the installed package's copy.")
def main(do_write: bool, do_check: bool, install_to: Optional[Path], cat: Optional[Path], blue_cat: Optional[Path],
         root: Optional[Path]) -> None:
    """Generate, check or install CorridorKey's Nuke files.

    Every knob name, type, range and default in the gizmo, the template comp and the
    .cat creation script comes from corridorkey_model.keying.knobs. --check exits 1 and names
    the stale files; --write rewrites them. --install-to copies the Cattery package into
    a Nuke home folder and registers it in that folder's init.py.
    """
    if sum([do_write, do_check, install_to is not None]) != 1:
        raise click.UsageError("give exactly one of --write, --check, --install-to")
    if (cat is not None or blue_cat is not None) and install_to is None:
        raise click.UsageError("--cat and --blue-cat only go with --install-to")
    root = root if root is not None else default_root()
    if do_write:
        _refuse_outside_checkout(root)
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
        target = install(root, install_to, cat, blue_cat)
        click.echo(f"installed into {target.absolute()}; restart Nuke and find CorridorKey under Cattery > Keying "
                   "(and Nodes > CorridorKey)")
        if cat is None and not (target / CAT_FILENAME).is_file():
            click.echo(f"note: no {CAT_FILENAME} there yet: build it with corridorkey_create_cat.py in NukeX and "
                       f"copy it into {target} (or rerun with --cat)")


if __name__ == "__main__":  # pragma: no cover
    main()
