"""The gizmo ``CorridorKey.gizmo`` and the template comp, generated from the one knob spec.

Text only: ``nuke_files.py`` writes, checks and installs what these functions return,
and ``nuke_script.py`` holds the Nuke-script syntax they use.

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

from typing import Dict, List, Sequence, Tuple

from corridorkey_export.nuke_contract import SCREENS, NukeModel
from corridorkey_export.nuke_script import (
    nk_number,
    nk_quote,
    nk_word,
    node_block,
    serialise_knob_links,
    user_knob_line,
    user_knob_value,
)
from corridorkey_model.keying import temporal_spec as temporal
from corridorkey_model.keying.hint_fit import HINT_FIT_TOLERANCE_PX
from corridorkey_model.keying.knobs import AUTO_HINT, CPU_BF16, CPU_BF16_FLAGS, DESPECKLE_SIZE, GAMMA_INPUT, KNOBS, QUALITY

#: The values of the .cat knob auto_hint (its menu's indices: corridorkey_model/keying/hint.py names them too).
HINT_FROM_INPUT, HINT_AUTOMATIC_VALUE, HINT_GARBAGE_MATTE = range(len(AUTO_HINT.choices))
#: The gizmo's plate input (input 0).
PLATE_INPUT = "Plate"
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
#: What the gizmo's Verify button runs (gizmos/Cattery/CorridorKey/corridorkey_verify.py). The module is
#: imported from the folder of the gizmo's own file (``Gizmo.filename()``, Foundry's Python reference,
#: nuke.Gizmo: "Gizmo filename"), because ``nukescripts/cattery.py`` adds Cattery package folders with
#: ``nuke.pluginAddPath(directory, addToSysPath=False)``: the package folder need not be on sys.path.
#: Any failure is a Status line, never a traceback.
VERIFY_LABEL = "Test Installed Model"
VERIFY_COMMAND = (
    "import os, sys\n"
    "import nuke\n"
    "ck_node = nuke.thisNode()\n"
    "try:\n"
    "    ck_dir = os.path.dirname(ck_node.filename())\n"
    "    if ck_dir and os.path.isfile(os.path.join(ck_dir, 'corridorkey_verify.py')) and ck_dir not in sys.path:\n"
    "        sys.path.insert(0, ck_dir)\n"
    "    import corridorkey_verify\n"
    "except Exception as ck_exc:\n"
    "    ck_node['status'].setValue('Verify could not start: corridorkey_verify.py was not found beside '\n"
    "                               'CorridorKey.gizmo (%s). Reinstall the Cattery package.' % ck_exc)\n"
    "else:\n"
    "    corridorkey_verify.verify(ck_node)\n"
)

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
#: The NoOp inside the gizmo whose knobs hold the .cat knob values the gizmo computes at render time
#: (expressions, not Python callbacks): ``auto_hint`` from the Hint input and Hint Channel,
#: ``despeckle_size`` scaled to proxy pixels. The Inference nodes' serialiseKnob links read them.
MODEL_KNOBS_NODE = "ModelKnobs"
#: True when the gizmo's input 1 (Hint) is connected: the TCL ``exists`` test on ``parent.input1`` as public
#: gizmos write it in a child node's expression (e.g. a Copy's ``disable {{"\\[exists parent.input1] ? 0 : 1"}}``
#: in Martin Tomek's MolochMaskCreator group and in public despill gizmos' Keymix nodes).
HINT_CONNECTED_EXPR = "[exists parent.input1]"
#: ... and the same test of input 2 (GarbageMatte).
GARBAGE_CONNECTED_EXPR = "[exists parent.input2]"
#: The gizmo's optional third input: a garbage matte (alpha: 1 where the subject may be) that multiplies the
#: automatic hint (knob auto_hint = 2, DESIGN §3.2a).
GARBAGE_INPUT = "GarbageMatte"
#: The proxy factor of a length: Root knobs ``proxy`` (on/off) and ``proxy_scale`` (studio menu.py files set
#: ``nuke.knobDefault('Root.proxy_scale', '.5')`` with ``Root.proxy_type`` "scale"). A "format" proxy type is
#: not read here (docs/nuke.md, "Proxy mode"; the probe script reports what proxy_scale holds then).
PROXY_FACTOR_EXPR = "(root.proxy ? root.proxy_scale : 1)"
#: What the Inference node's gpuName shows when no GPU can be used (its tooltip, Nuke 17: "Local GPU will be
#: shown as Not available"); the half-precision knob is disabled then, as it only acts on the GPU.
NO_GPU_TEXT = "not available"
#: Status sentences about the garbage matte (input 2).
GARBAGE_USED = "It is multiplied by the GarbageMatte input's alpha (automatic hint x garbage matte)."
GARBAGE_SUGGESTED = ("Where the screen does not fill the frame (set walls, light stands, the studio), connect a "
                     "garbage matte (white where the subject may be) to the GarbageMatte input.")
GARBAGE_IGNORED = ("CorridorKey: the GarbageMatte input is ignored: it only multiplies the automatic hint, and the "
                   "Hint input is in use.")
#: CPU precision (issue #29): the panel's menu, and the hidden Int knob the gizmo's onCreate sets on every
#: machine that loads the script (terminal renders included): 1 where /proc/cpuinfo lists a bfloat16 flag, else 0
#: (no such file on Windows and macOS: fp32 there). The .cat knob cpu_bf16 is computed from both at render time.
CPU_PRECISION_KNOB = "cpu_precision"
CPU_PRECISIONS = ("fp32", "bfloat16")
CPU_UNITS_KNOB = "cpu_bf16_units"
CPU_PRECISION_TOOLTIP = (
    "What the network computes in when this node renders on a CPU. fp32 (the default): full precision. "
    "bfloat16: on a machine whose CPU has bfloat16 units (Intel Xeon Sapphire Rapids and later, AMD Zen 4 and "
    "later, on Linux) about 2x faster; the matte differs from fp32 by bfloat16 rounding. Every machine that loads "
    "the script decides for itself from its CPU flags, so a CPU without the units, Windows and macOS keep fp32 "
    "(bfloat16 would be emulated there, slower than fp32). A farm of mixed CPUs then renders some frames in each "
    "precision: leave fp32 for final renders unless every render node has the units. No effect on the GPU "
    "(Optimize for Speed and Memory is the GPU's choice); a .cat exported with --no-cpu-bf16 ignores it.")
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
        + _cpu_units_script() +
        "try:\n"
        f"    ck_screens = [{screens}]\n"
        "    ck_screen, ck_inference_name, ck_cat = ck_screens[int(ck_node['screen'].getValue())]\n"
        "    for ck_name in set(n for _, n, _ in ck_screens):\n"
        "        ck_inf = ck_node.node(ck_name)\n"
        "        if ck_inf is not None and not ck_inf['disable'].getValue():\n"
        "            ck_inf.forceValidate()\n"
        "    ck_inf = ck_node.node(ck_inference_name)\n"
        "    ck_gpu = ck_inf['gpuName'].value()\n"
        "    ck_node['gpuName'].setValue(ck_gpu)\n"
        "    ck_node['halfPrecision'].setEnabled(bool(str(ck_gpu).strip()) and "
        f"{NO_GPU_TEXT!r} not in str(ck_gpu).lower())\n"
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
        + _colour_check_script() + _hint_state_script() + _quality_status_script() +
        "ck_node['status'].setValue('\\n'.join(ck_line for ck_line in (ck_message, ck_colour_note, ck_hint_note, "
        "ck_quality_note, ck_cpu_note) "
        "if ck_line))\n"
        "for ck_line in (ck_message, ck_colour_note):\n"
        "    if ck_line:\n"
        "        nuke.warning(ck_line)\n"
    )


def _cpu_units_script() -> str:
    """Python that sets the hidden knob ``cpu_bf16_units`` from THIS machine's CPU flags (issue #29), and
    ``ck_cpu_note`` for Status when CPU Precision asks for bfloat16 on a machine without the units.

    The first ``flags`` line of ``/proc/cpuinfo`` (Linux; the kernel's names, as
    ``corridorkey_model.devices.cpu_flags`` reads them); no such file (Windows, macOS) or no
    bfloat16 flag: 0, so the network stays fp32 there. Run by onCreate, which runs when a script
    loads on any machine, terminal renders included, so the saved value never travels to a farm.
    """
    return (
        "ck_units = 0\n"
        "try:\n"
        "    with open('/proc/cpuinfo') as ck_file:\n"
        "        for ck_line in ck_file:\n"
        "            if ck_line.split(':', 1)[0].strip() == 'flags':\n"
        f"                ck_units = int(bool(set(ck_line.split(':', 1)[1].split()) & set({tuple(CPU_BF16_FLAGS)!r})))\n"
        "                break\n"
        "except (IOError, OSError):\n"
        "    ck_units = 0\n"
        "ck_cpu_note = ''\n"
        "try:\n"
        f"    ck_node[{CPU_UNITS_KNOB!r}].setValue(ck_units)\n"
        f"    if int(ck_node[{CPU_PRECISION_KNOB!r}].getValue()) == 1 and not ck_units:\n"
        "        ck_cpu_note = ('CorridorKey: CPU Precision is bfloat16, but this machine has no bfloat16 units '\n"
        f"                       '({' or '.join(CPU_BF16_FLAGS)} in /proc/cpuinfo): on its CPU the network runs in "
        "fp32.')\n"
        "except Exception:\n"
        "    pass\n"
    )


def _colour_check_script() -> str:
    """Python that checks the colour conversion around the network and sets ``ck_colour_note``.

    * ToNetwork / FromNetwork in error after ``forceValidate()`` (``Node.hasError()``): an OCIO config
      without the ``scene_linear`` or ``color_picking`` role, or a colour space the config lacks.
    * The Network Colorspace resolving to a display-referred or output (view) transform, e.g.
      ``color_picking`` = ``Output - sRGB`` in the ACES 1.x configs: the network would be fed a
      tone-mapped image. Read with PyOpenColorIO (shipped with Nuke): the Root's
      ``customOCIOConfigPath`` when set, else the process's current config (``$OCIO``);
      ``ColorSpace.getReferenceSpaceType()`` (OCIO 2: display-referred spaces) or a family or
      name that starts with Output / Display. When no config can be read the check is skipped.
    """
    return (
        "ck_colour_note = ''\n"
        "try:\n"
        f"    ck_to = ck_node.node({TO_NETWORK_NODE!r})\n"
        f"    ck_from = ck_node.node({FROM_NETWORK_NODE!r})\n"
        "    ck_active = [n for n in (ck_to, ck_from) if not n['disable'].getValue()]\n"
        "    for ck_ocio_node in ck_active:\n"
        "        ck_ocio_node.forceValidate()\n"
        "    ck_failed = [n.name() for n in ck_active if n.hasError()]\n"
        "    if ck_failed:\n"
        "        ck_colour_note = ('CorridorKey: the colour conversion fails (%s): this OCIO config may lack the '\n"
        f"                          '{WORKING_ROLE} or {NETWORK_ROLE} role. Set Working Space and Network Colorspace '\n"
        "                          'to colour spaces of your config (Network Colorspace: the sRGB-encoded Rec.709 '\n"
        "                          'texture space).' % ', '.join(ck_failed))\n"
        "    elif not ck_to['disable'].getValue():\n"
        "        ck_space = ck_to['out_colorspace'].value()\n"
        "        ck_cs = None\n"
        "        try:\n"
        "            import PyOpenColorIO as ck_ocio\n"
        "            ck_path = nuke.root()['customOCIOConfigPath'].value() if nuke.root().knob('customOCIOConfigPath') "
        "else ''\n"
        "            ck_cfg = ck_ocio.Config.CreateFromFile(ck_path) if ck_path else ck_ocio.GetCurrentConfig()\n"
        "            ck_cs = ck_cfg.getColorSpace(ck_space)\n"
        "        except Exception:\n"
        "            ck_cs = None\n"
        "        if ck_cs is not None:\n"
        "            ck_display = False\n"
        "            try:\n"
        "                ck_display = ck_cs.getReferenceSpaceType() == ck_ocio.REFERENCE_SPACE_DISPLAY\n"
        "            except AttributeError:\n"
        "                pass\n"
        "            ck_words = (str(ck_cs.getFamily() or '') + '/' + str(ck_cs.getName())).lower()\n"
        "            if ck_display or ck_words.startswith(('output', 'display')) or '/output' in ck_words:\n"
        "                ck_colour_note = ('CorridorKey: Network Colorspace is %s, a display or view transform: the '\n"
        "                                  'network would get a tone-mapped plate. Choose the sRGB texture space of '\n"
        "                                  'your config instead (Utility - sRGB - Texture, sRGB - Texture, or sRGB '\n"
        "                                  'Encoded Rec.709 (sRGB)).' % ck_cs.getName())\n"
        "except Exception as ck_exc:\n"
        "    ck_colour_note = 'CorridorKey: could not check the colour conversion: %s' % ck_exc\n"
    )


def _quality_status_script() -> str:
    """Python that sets ``ck_quality_note``: which resolution keys when Quality is Preview or Auto.

    The sizes come from the Verify reference beside the chosen screen's .cat (``img_size``,
    ``preview_size``: 0 when the file has no preview path). Final (the default) says nothing.
    """
    refs = {s.name: s.verify_filename for s in SCREENS}
    return (
        "ck_quality_note = ''\n"
        "try:\n"
        f"    ck_mode = int(ck_node[{QUALITY_MODE_KNOB!r}].getValue())\n"
        "    if ck_mode and not ck_message:\n"
        "        import json\n"
        f"        ck_ref = os.path.join(os.path.dirname(ck_path), {refs!r}[ck_screen])\n"
        "        if not os.path.isfile(ck_ref):\n"
        "            ck_quality_note = ('CorridorKey: cannot tell this .cat\\'s preview resolution: %s is not beside '\n"
        "                               'it (install with --install-to --cat). A .cat exported without '\n"
        "                               '--preview-size keys at its model resolution whatever Quality says.' % ck_ref)\n"
        "        else:\n"
        "            with open(ck_ref) as ck_f:\n"
        "                ck_sizes = json.load(ck_f)\n"
        "            ck_final, ck_preview = int(ck_sizes.get('img_size', 0)), int(ck_sizes.get('preview_size', 0))\n"
        "            if not ck_preview:\n"
        "                ck_quality_note = ('CorridorKey: this .cat has no preview resolution (exported without '\n"
        "                                   '--preview-size): it keys at its model resolution %d whatever Quality says. '\n"
        "                                   'Export with --preview-size and rebuild the .cat for a faster preview.'\n"
        "                                   % ck_final)\n"
        "            elif ck_mode == 1:\n"
        "                ck_quality_note = ('CorridorKey: keying at the preview resolution %d (Final keys at %d): set '\n"
        "                                   'Quality to Final or Auto before rendering.' % (ck_preview, ck_final))\n"
        "            else:\n"
        "                ck_quality_note = ('CorridorKey: Quality Auto keys at the preview resolution %d in proxy mode '\n"
        "                                   'and at %d otherwise.' % (ck_preview, ck_final))\n"
        "except Exception as ck_exc:\n"
        "    ck_quality_note = 'CorridorKey: could not read the .cat\\'s resolutions: %s' % ck_exc\n"
    )


def _hint_state_script() -> str:
    """Python that writes the Status line's hint sentence (``ck_hint_note``, empty when the Hint input is used).

    Only the words: which hint the network gets is decided at render time by the expression
    of ``ModelKnobs.auto_hint`` (render_gizmo), so a script loaded before its inputs are
    connected, ``setInput()`` with the panel closed, or a farm render cannot leave it stale.
    """
    return (
        "ck_hint_note = ''\n"
        "try:\n"
        "    ck_unconnected = ck_node.input(1) is None\n"
        "    ck_garbage = ck_node.input(2) is not None\n"
        f"    ck_chosen = int(ck_node['hint_channel'].getValue()) == {HINT_AUTOMATIC}\n"
        f"    if ck_unconnected:\n"
        f"        ck_hint_note = {AUTO_HINT_UNCONNECTED!r}\n"
        f"    elif ck_chosen:\n"
        f"        ck_hint_note = {AUTO_HINT_CHOSEN!r}\n"
        "    if ck_hint_note:\n"
        f"        ck_hint_note += ' ' + ({GARBAGE_USED!r} if ck_garbage else {GARBAGE_SUGGESTED!r})\n"
        "    elif ck_garbage:\n"
        f"        ck_hint_note = {GARBAGE_IGNORED!r}\n"
        "    if not (ck_unconnected or ck_chosen):\n"
        # The pipeline's rule (frame_io.same_aspect): Node.width()/height() are the format of the node's output
        # (Foundry's Python reference, nuke.Node).
        "        try:\n"
        "            ck_pw, ck_ph = ck_node.input(0).width(), ck_node.input(0).height()\n"
        "            ck_hw, ck_hh = ck_node.input(1).width(), ck_node.input(1).height()\n"
        "            if min(ck_pw, ck_ph, ck_hw, ck_hh) > 0 and abs(float(ck_hh) * ck_pw / ck_hw - ck_ph) > "
        f"{HINT_FIT_TOLERANCE_PX!r} and abs(float(ck_hw) * ck_ph / ck_hh - ck_pw) > {HINT_FIT_TOLERANCE_PX!r}:\n"
        "                ck_hint_note = ('CorridorKey: the Hint input is %dx%d and the plate %dx%d, another aspect '\n"
        "                                'ratio: the hint is stretched to the plate (corridorkey run refuses such a '\n"
        "                                'hint). Use a hint made at the plate\\'s format or a scale of it.'\n"
        "                                % (ck_hw, ck_hh, ck_pw, ck_ph))\n"
        "        except Exception:\n"
        "            pass\n"
        "except Exception as ck_exc:\n"
        "    ck_hint_note = 'CorridorKey: could not describe the hint source: %s' % ck_exc\n"
    )


def _knob_changed_script() -> str:
    """Gizmo knobChanged: re-check the .cat when Screen or Model File changes; keep FromNetwork in step."""
    return (
        "if nuke.thisKnob().name() in ('screen', 'modelFile', 'working_colorspace', 'network_colorspace', "
        "'gamma_input', 'hint_channel', 'quality_mode', 'cpu_precision', 'inputChange', 'showPanel'):\n"
        + "".join("    " + line + "\n" for line in _cat_check_script().splitlines())
    )


def _to_network_knob_changed() -> str:
    """ToNetwork's own knobChanged keeps FromNetwork its inverse (how Foundry's BackgroundMatting.gizmo does it)."""
    return (
        f"ck_from = nuke.toNode({FROM_NETWORK_NODE!r})\n"
        "ck_from['in_colorspace'].setValue(nuke.thisNode()['out_colorspace'].value())\n"
        "ck_from['out_colorspace'].setValue(nuke.thisNode()['in_colorspace'].value())\n"
    )


def gizmo_defaults() -> Dict[str, float]:
    """The gizmo's default for each model knob: the knob spec's default."""
    return {k.name: k.typed_default for k in KNOBS}


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
    lines.append(f" addUserKnob {{4 {CPU_PRECISION_KNOB} l \"CPU Precision\" t {nk_quote(CPU_PRECISION_TOOLTIP)} "
                 f"M {{{' '.join(CPU_PRECISIONS)}}}}}")
    lines.append(f" addUserKnob {{3 {CPU_UNITS_KNOB} l \"CPU bfloat16 units\" +INVISIBLE}}")
    lines.append(
        " addUserKnob {26 status l Status t "
        + nk_quote("Empty when the chosen screen's .cat loaded and the Hint input is used. Otherwise what is "
                   "missing and where to put it, whether the .cat loaded with an error (damaged, or made for "
                   "another Nuke), and whether the node makes an automatic hint from the plate. It is checked "
                   "when the node is created and when Screen, Model File, the colour spaces, Hint Channel or "
                   "the inputs change, and when the panel opens; an error that appears only while rendering "
                   "shows on the node, not here. It also says when the colour conversion fails (a config "
                   "without the roles) or feeds the network a display or view transform. Test Installed Model "
                   "writes its verdict here.")
        + ' T ""}')
    # The Verify button: a PyScript_Knob (id 22, NDK "Knob Types"); the {22 name l Label T "python"} form is
    # that of public gizmos (manwhosoldthew/RIFE-for-Nuke RIFE.gizmo's reset_range). It imports the package's
    # corridorkey_verify.py from the gizmo's own folder (VERIFY_COMMAND).
    lines.append(
        f" addUserKnob {{22 verify l {nk_quote(VERIFY_LABEL)} t "
        + nk_quote("Tests the INSTALLED MODEL on this machine: runs the chosen screen's .cat on a small test "
                   "plate, with this node's Use GPU and Optimize for Speed and Memory settings, and compares "
                   "the result with the reference values written at export time. It does not test this node's "
                   "colour settings or hint. On a CPU at model resolution 1024 or more it takes a while and "
                   "asks first; a progress window lets you cancel. The verdict goes to Status.")
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
        if spec.name == QUALITY.name:
            lines.append(f" addUserKnob {{4 {QUALITY_MODE_KNOB} l {nk_quote(spec.label)} t {nk_quote(QUALITY_MODE_TOOLTIP)} "
                         f"M {{{' '.join(nk_word(m) for m in QUALITY_MODES)}}}}}")
            continue
        if spec.name in COMPUTED_KNOBS and spec.name not in PANEL_AND_COMPUTED_KNOBS:
            continue  # computed by ModelKnobs' expressions from other knobs: no knob of its own on the panel
        tooltip = spec.tooltip + (GAMMA_INPUT_GIZMO_NOTE if spec.name == GAMMA_INPUT.name else "")
        tooltip += PANEL_NOTES.get(spec.name, "")
        lines.append(" " + user_knob_line(spec, tooltip))
        lines.append(" " + user_knob_value(spec, defaults[spec.name]))
    lines.append(" addUserKnob {26 temporal_divider l \"<b>Temporal</b>\"}")
    lines.append(f" addUserKnob {{7 {TEMPORAL_KNOB} l Temporal t {nk_quote(TEMPORAL_TOOLTIP)} "
                 f"R {nk_number(temporal.STRENGTH_MIN)} {nk_number(temporal.STRENGTH_MAX)}}}")
    lines.append(f" {TEMPORAL_KNOB} {nk_number(temporal.STRENGTH_DEFAULT)}")
    return lines


def computed_knobs() -> Dict[str, str]:
    """ModelKnobs' knobs: .cat knob name -> the expression the gizmo computes it with at render time.

    * ``auto_hint``: automatic when Hint Channel is *automatic* or the Hint input (input 1) is not
      connected: 2 (the automatic hint times the garbage matte) when GarbageMatte (input 2) is connected,
      else 1; otherwise 0 (the Hint input). An expression, so that it holds in every render whatever
      callbacks ran.
    * ``despeckle_size``: the panel's area (full-resolution pixels) times the proxy factor squared,
      rounded: in proxy mode the plate has fewer pixels and an island has proportionally fewer.
    * ``cpu_bf16``: 1 when CPU Precision is bfloat16 and this machine's CPU has bfloat16 units
      (``cpu_bf16_units``, set by onCreate from the CPU flags), else 0.
    """
    automatic = f"parent.hint_channel == {HINT_AUTOMATIC} || !{HINT_CONNECTED_EXPR}"
    auto = QUALITY_MODES.index("Auto")
    return {
        AUTO_HINT.name: f"{automatic} ? ({GARBAGE_CONNECTED_EXPR} ? {HINT_GARBAGE_MATTE} : {HINT_AUTOMATIC_VALUE}) "
                        f": {HINT_FROM_INPUT}",
        QUALITY.name: f"parent.{QUALITY_MODE_KNOB} == {auto} ? (root.proxy ? 1 : 0) : parent.{QUALITY_MODE_KNOB}",
        DESPECKLE_SIZE.name: (f"int(parent.{DESPECKLE_SIZE.name} * {PROXY_FACTOR_EXPR} * {PROXY_FACTOR_EXPR} "
                              "+ 0.5)"),
        CPU_BF16.name: f"parent.{CPU_PRECISION_KNOB} == 1 && parent.{CPU_UNITS_KNOB} == 1",
    }


#: The .cat knobs the gizmo computes (ModelKnobs) instead of linking the panel knob of the same name.
COMPUTED_KNOBS = (AUTO_HINT.name, DESPECKLE_SIZE.name, QUALITY.name, CPU_BF16.name)
#: The gizmo's Quality menu (knob quality_mode): the .cat's choices, then Auto = Preview in proxy mode (the
#: Root's ``proxy`` knob, read by expression at render time), Final otherwise.
QUALITY_MODE_KNOB = "quality_mode"
QUALITY_MODES: Tuple[str, ...] = tuple(QUALITY.choices) + ("Auto",)
QUALITY_MODE_TOOLTIP = (
    "Which model resolution keys the frame. Final (the default): the file's model resolution, for renders. "
    "Preview: its preview resolution (export-torchscript --preview-size), for interactive work: at 1024 in a "
    "2048 file a frame costs about 1/5 on a GPU and 1/7 on a CPU. Auto: Preview while the script is in proxy "
    "mode, Final otherwise (decided at render time from the project's proxy switch, so a farm render of a script "
    "saved in full-resolution mode keys at Final). A .cat exported without a preview resolution always keys at "
    "its model resolution; Status says so. (No \"Preview in the GUI\" choice: nothing in a render could prove "
    "that it never reaches a farm frame.)")
#: Of those, the ones that still have a panel knob (the user's value the computation starts from).
PANEL_AND_COMPUTED_KNOBS = (DESPECKLE_SIZE.name,)
#: Extra tooltip text of a panel knob on the gizmo.
PANEL_NOTES: Dict[str, str] = {
    DESPECKLE_SIZE.name: ("\n\nIn proxy mode (proxy type scale) the area is scaled by the proxy scale squared, so "
                          "the same islands are removed; the 25 px grow and the 11 px blur of the kept islands "
                          "still act on proxy pixels (docs/nuke.md, Proxy mode)."),
}


def _model_knobs_node() -> List[str]:
    """The NoOp holding the computed .cat knob values as Int knobs with expressions."""
    knobs = ["inputs 0"]
    for name, expr in computed_knobs().items():
        knobs.append(f"addUserKnob {{3 {name}}}")
        knobs.append(f"{name} {{{{{nk_quote(expr)}}}}}")
    knobs += [f"name {MODEL_KNOBS_NODE}", "xpos 400", "ypos -200"]
    return node_block("NoOp", knobs)


def _inference_node(screen: NukeModel, index: int) -> List[str]:
    """One Inference node: its .cat found on the plugin path, its .cat knobs linked through serialiseKnob.

    Only the chosen screen's node is enabled: a disabled Inference node does not load
    its .cat, so a missing blue .cat does no harm while Green is chosen.
    """
    return node_block("Inference", [
        "useGPUIfAvailable {{parent.useGPUIfAvailable}}",
        f"modelFile {nk_quote(f'[lsearch -inline [plugins -all {screen.cat_filename}] *.cat]')}",
        "halfPrecision {{parent.halfPrecision}}",
        f"serialiseKnob {serialise_knob_links({n: f'{MODEL_KNOBS_NODE}.{n}' for n in COMPUTED_KNOBS})}",
        f"disable {{{{parent.screen != {index}}}}}",
        f"name {INFERENCE_NODES[screen.name]}",
        f"xpos {index * 160}", "ypos -100",
    ])


#: The gizmo's Temporal knob (not a .cat knob: the filter is built from Nuke nodes around the Inference node).
TEMPORAL_KNOB = "temporal"
TEMPORAL_TOOLTIP = (
    temporal.TOOLTIP + " Cost in Nuke: with Temporal above 0 each output frame needs the model's output at t-1, t "
    "and t+1, so a single frame costs three network runs; rendering a sequence in order, Nuke's cache can reuse "
    "them (about one run per frame when it holds them). 0 (the default) is off: the neighbours are never "
    "evaluated and the output is exactly as without it. The same formula as corridorkey run --temporal "
    "(docs/DESIGN.md 3.7).")


def _channels(index: int) -> str:
    """``channelN`` of an Expression / MergeExpression: only rgba's ``index``-th channel, written as RIFE.gizmo's
    Expression writes its channel knobs (``{rgba.red -rgba.green -rgba.blue none}``)."""
    names = ["rgba.red", "rgba.green", "rgba.blue"]
    if index == 3:
        return "{" + " ".join("-" + n for n in names) + " rgba.alpha}"
    return "{" + " ".join(n if i == index else "-" + n for i, n in enumerate(names)) + " none}"


def _per_pixel(cls: str, name: str, exprs: Sequence[str], x: int, y: int) -> List[str]:
    """An Expression (one input) or MergeExpression (B = input 0, A = input 1) with expr0..expr3 on r, g, b, a."""
    knobs = ["inputs 2"] if cls == "MergeExpression" else []
    for i, e in enumerate(exprs):
        knobs += [f"channel{i} {_channels(i)}", f"expr{i} {nk_quote(e)}"]
    return node_block(cls, knobs + [f"name {name}", f"xpos {x}", f"ypos {y}"])


def _temporal_nodes() -> List[str]:
    """The temporal filter around the Inference nodes (corridorkey_model/keying/temporal.py, DESIGN 3.7).

    Enters with the raw model output (frame t) on top of the stack and ``$NModelInput`` (the plate as the
    network receives it) set; leaves the Switch TemporalSwitch on top: input 0 the raw output (Temporal 0:
    nothing else is pulled), input 1 the smoothed output. Nodes: TimeOffset (``time_offset`` +-1 frames,
    Foundry's TimeOffset), MergeExpression (B = input 0, A = input 1; channels Ar..Aa, Br..Ba, Foundry's
    MergeExpression reference), Transform (integer ``translate``, ``filter impulse``: whole-pixel shifts, the
    box sum; ``black_outside false``, so that what a shift uncovers repeats the edge pixel, as the pipeline's
    replicate padding does: Transform's default is on, and public scripts save ``black_outside false`` where
    it is off, Nuke writing only non-default values) and Expression.
    """
    ex = temporal.nuke_expressions(f"parent.{TEMPORAL_KNOB}")
    every = lambda key: [ex[key]] * 4  # noqa: E731
    rgba = lambda key: [ex[f"{key}.{c}"] for c in "rgba"]  # noqa: E731
    r = temporal.RADIUS
    lines = ["set NRaw [stack 0]"]
    # TimeOffset's time_offset delays its input: output frame t is input frame t - offset, so t-1 is offset +1.
    for side, offset, x in (("Prev", 1, 600), ("Next", -1, 900)):
        # the neighbour's plate (A) against frame t's (B): the per-pixel difference
        lines.append("push $NModelInput")
        lines += node_block("TimeOffset", [f"time_offset {offset}", f"name Temporal{side}Plate", f"xpos {x}",
                                           "ypos -100"])
        lines.append("push $NModelInput")
        lines += _per_pixel("MergeExpression", f"Temporal{side}Difference", every("difference"), x, -60)
        # the box sum: shifted copies added in x, then the row sums shifted and added in y
        for axis in ("X", "Y"):
            lines.append(f"set NTemporal{side}Box{axis} [stack 0]")
            for i, d in enumerate(range(-r, r + 1)):
                if i:  # the first copy shifts the node on top itself; the others push it again
                    lines.append(f"push $NTemporal{side}Box{axis}")
                if d:
                    dx, dy = (d, 0) if axis == "X" else (0, d)
                    lines += node_block("Transform", [f"translate {{{dx} {dy}}}", "filter impulse", "black_outside false",
                                                      f"name Temporal{side}Shift{axis}{i}", f"xpos {x + 100}",
                                                      f"ypos {-40 + 20 * i}"])
                if i:  # the running sum (A, below) plus this copy (B, on top)
                    lines += _per_pixel("MergeExpression", f"Temporal{side}Sum{axis}{i}", rgba("add"), x,
                                        -40 + 20 * i)
        # on top: the box sum of the difference (the row sums summed in y)
        lines += _per_pixel("Expression", f"Temporal{side}Weight", every("weight"), x, 100)
        lines.append(f"set NTemporal{side}Weight [stack 0]")
        # the weighted neighbour output: A = the weight, B = the neighbour's raw output
        lines.append("push $NRaw")
        lines += node_block("TimeOffset", [f"time_offset {offset}", f"name Temporal{side}Output", f"xpos {x + 100}",
                                           "ypos 100"])
        lines += _per_pixel("MergeExpression", f"Temporal{side}Weighted", rgba("weighted"), x, 140)
        lines.append(f"set NTemporal{side}Weighted [stack 0]")
    def merge(name: str, a: str, b: str, exprs: Sequence[str], x: int, y: int) -> List[str]:
        """MergeExpression of the nodes set as ``$a`` (input 1, A) and ``$b`` (input 0, B), set as ``$N<name>``."""
        return ([f"push ${a}", f"push ${b}"] + _per_pixel("MergeExpression", name, exprs, x, y)
                + [f"set N{name} [stack 0]"])

    # numerator: (O_t + w_prev O_prev) + w_next O_next, in the pipeline's order
    lines += merge("TemporalSumPrev", "NTemporalPrevWeighted", "NRaw", rgba("sum"), 600, 180)
    lines += merge("TemporalSumNext", "NTemporalNextWeighted", "NTemporalSumPrev", rgba("sum"), 600, 220)
    # denominator 1 + w_prev + w_next: A = w_prev, B = w_next
    lines += merge("TemporalDenominator", "NTemporalPrevWeight", "NTemporalNextWeight", every("denominator"), 900, 220)
    # result: A = the numerator, B = the denominator
    lines += merge("TemporalResult", "NTemporalSumNext", "NTemporalDenominator", rgba("result"), 600, 260)
    # Switch: 0 the raw output (off: bit-identical, neighbours never pulled), 1 the smoothed one.
    lines.append("push $NRaw")
    lines += node_block("Switch", ["inputs 2", f"which {{{{parent.{TEMPORAL_KNOB} > 0}}}}", "name TemporalSwitch",
                                   "xpos 0", "ypos 0"])
    return lines


def render_gizmo() -> str:
    """The text of ``CorridorKey.gizmo``."""
    # "automatic" (3) falls through to luminance here; the .cat ignores the hint channel then (auto_hint = 1).
    hint_expr = (
        "parent.hint_channel == 0 ? a : (parent.hint_channel == 1 ? r : "
        f"{LUMINANCE_WEIGHTS[0]}*r + {LUMINANCE_WEIGHTS[1]}*g + {LUMINANCE_WEIGHTS[2]}*b)"
    )
    lines = [f"version {MINIMUM_NUKE} v1", "Gizmo {", " inputs 3"]
    lines.append(f" onCreate {nk_quote(_cat_check_script())}")
    lines.append(f" knobChanged {nk_quote(_knob_changed_script())}")
    lines.append(" tile_color 0x4caf50ff")
    lines += _gizmo_knobs()
    lines.append("}")

    # Node graph. Stack rule of .nk files: a node with N inputs takes the top of the
    # stack as input 0, the next as input 1, ...; push order below is chosen for that.
    lines += _model_knobs_node()
    # GarbageMatte (input 2), fitted to the plate's format like the hint; with auto_hint 2 the hint channel
    # carries its alpha instead of the hint (the .pt multiplies its automatic hint by it). Made first, so that
    # the Copy below takes HintToAlpha (on top of the stack) as B and the fitted matte as A.
    lines += node_block("Input", ["inputs 0", f"name {GARBAGE_INPUT}", "number 2", "xpos 400", "ypos -480"])
    lines += node_block("Reformat", ['type "to box"', f"box_width {{{{{PLATE_INPUT}.width}}}}",
                                     f"box_height {{{{{PLATE_INPUT}.height}}}}", "box_fixed true", "resize distort",
                                     "filter impulse", "name GarbageToPlateFormat", "xpos 400", "ypos -400"])
    lines += node_block("Input", ["inputs 0", "name Hint", "number 1", "xpos 200", "ypos -480"])
    # A hint of another size (a half-resolution roto, a proxy render's matte) is fitted to the plate's
    # format, nearest pixel (filter impulse: no new values in a matte); the pipeline fits it with the same
    # rule. Reformat "to box" with box_fixed and expressions of another node's width/height, resize
    # distort: public gizmos (e.g. a Reformat with box_width {{FormatReceiver.width}}, box_fixed true,
    # resize distort; filter impulse on a Reformat "to box" in Peter Mercell's 2023 gizmo).
    lines += node_block("Reformat", ['type "to box"', f"box_width {{{{{PLATE_INPUT}.width}}}}",
                                     f"box_height {{{{{PLATE_INPUT}.height}}}}", "box_fixed true", "resize distort",
                                     "filter impulse", "name HintToPlateFormat", "xpos 200", "ypos -400"])
    lines += node_block("Expression", [f"expr3 {nk_quote(hint_expr)}", "name HintToAlpha", "xpos 200", "ypos -320"])
    lines += node_block("Copy", ["inputs 2", "from0 rgba.alpha", "to0 rgba.alpha",
                                 f"disable {{{{{MODEL_KNOBS_NODE}.{AUTO_HINT.name} != {HINT_GARBAGE_MATTE}}}}}",
                                 "name GarbageIntoAlpha", "xpos 200", "ypos -280"])
    lines += node_block("Input", ["inputs 0", f"name {PLATE_INPUT}", "xpos 0", "ypos -480"])
    # Overscan: pixels outside the format are dropped before the network (the model keys exactly the
    # format, as the pipeline does). Crop to the format with "crop false" (no black edge), as RIFE.gizmo
    # (manwhosoldthew/RIFE-for-Nuke) does in front of its Inference node.
    lines += node_block("Crop", ["box {0 0 {width} {height}}", "crop false", "name PlateToFormat", "xpos 0",
                                 "ypos -400"])
    # Working space -> sRGB-encoded Rec.709 (the network's domain); bypassed for Input Gamma = Linear.
    lines += node_block("OCIOColorSpace", [
        f"in_colorspace {WORKING_ROLE}", f"out_colorspace {NETWORK_ROLE}",
        f"knobChanged {nk_quote(_to_network_knob_changed())}",
        f"disable {{{{parent.{GAMMA_INPUT.name} == 1}}}}",
        f"name {TO_NETWORK_NODE}", "xpos 0", "ypos -340"])
    # The hint goes into alpha after the colour conversion, so no colour transform touches it.
    lines += node_block("Copy", ["inputs 2", "from0 rgba.alpha", "to0 rgba.alpha", "name PlatePlusHint",
                            "xpos 0", "ypos -260"])
    lines.append("set NModelInput [stack 0]")
    # One Inference node per screen, pushed in reverse so that the Switch's input i is screen i.
    for order, index in enumerate(reversed(range(len(SCREENS)))):
        if order:
            lines.append("push $NModelInput")
        lines += _inference_node(SCREENS[index], index)
    lines += node_block("Switch", [f"inputs {len(SCREENS)}", "which {{parent.screen}}", "name ScreenSwitch",
                              "xpos 0", "ypos -30"])
    lines += _temporal_nodes()
    lines.append("set NModel [stack 0]")
    # Switch input 3: matte only.
    lines += node_block("Shuffle", ["red alpha", "green alpha", "blue alpha", "alpha alpha", "name MatteOnly",
                               "xpos 400", "ypos 40"])
    # Switch input 2: raw model output.
    lines.append("push $NModel")
    lines += node_block("Dot", ["name RawOutput", "xpos 304", "ypos 44"])
    # Switch inputs 1 and 0: the sRGB fg back to the working space, the network's alpha kept as it is.
    lines.append("push $NModel")
    lines.append("push $NModel")
    lines += node_block("OCIOColorSpace", [
        f"in_colorspace {NETWORK_ROLE}", f"out_colorspace {WORKING_ROLE}",
        f"name {FROM_NETWORK_NODE}", "xpos 0", "ypos 40"])
    # Copy: B (input 0) the converted fg, A (input 1) the model output whose alpha is restored.
    lines += node_block("Copy", ["inputs 2", "from0 rgba.alpha", "to0 rgba.alpha", "name KeepModelAlpha",
                            "xpos 0", "ypos 90"])
    lines.append("set NWorking [stack 0]")
    lines += node_block("Dot", ["name StraightWorking", "xpos 194", "ypos 144"])
    lines.append("push $NWorking")
    lines += node_block("Premult", ["name PremultWorking", "xpos 0", "ypos 140"])
    lines += node_block("Switch", ["inputs 4", "which {{parent.output_mode}}", "name OutputSwitch",
                              "xpos 0", "ypos 200"])
    lines += node_block("Output", ["name Output1", "xpos 0", "ypos 280"])
    lines.append("end_group")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- template comp


TEMPLATE_NOTES = (
    "CorridorKey template\n"
    "1. Plate: replace PlatePlaceholder (a flat screen colour, so the template renders as pasted) with a Read of "
    "your green- or blue-screen plate, default Read settings (the node converts it from the working space for "
    "the network with OCIO).\n"
    "2. Hint: connect a rough matte of the subject (garbage matte, roto, another keyer) to the node's Hint input; "
    "read a matte file with 'raw data' on and set Hint Channel to red (a matte file has no alpha), or alpha for a "
    "Roto or keyer output. Left unconnected, the node makes an automatic hint from the plate and says so on its "
    "Status line.\n"
    "3. CorridorKey outputs comp-ready premultiplied RGBA in the working space: Merge it over the background "
    "(BackgroundPlaceholder: replace it with your own). Pick Screen = Blue for a blue screen.\n"
    f"The node needs {CAT_FILENAME} in the Cattery/CorridorKey folder (see the README, section Nuke)."
)
#: The placeholders' colours: a typical green screen (sRGB ~ 0.16, 0.62, 0.28) in linear, and a dark grey.
PLATE_PLACEHOLDER_COLOUR = (0.0222, 0.3467, 0.0637, 1)
BACKGROUND_PLACEHOLDER_COLOUR = (0.05, 0.05, 0.05, 1)


def render_template() -> str:
    """The text of ``CorridorKey_template.nk``: nodes only, for ``nuke.nodePaste`` into the open script.

    No ``Root`` node: pasting must not change the user's project settings. No Read nodes: a Read of a file
    that does not exist pastes with red errors; the plate and the background are ``Constant`` placeholders
    that render (Foundry's own templates use generated images), and the Hint input is left unconnected.
    """
    def colour(values) -> str:
        return "{" + " ".join(nk_number(v) for v in values) + "}"

    lines = [f"version {MINIMUM_NUKE} v1"]
    lines += node_block("StickyNote", ["inputs 0", f"label {nk_quote(TEMPLATE_NOTES)}", "note_font_size 14",
                                       "name CorridorKeyNotes", "xpos -460", "ypos -340"], indent="")
    lines += node_block("Constant", ["inputs 0", "channels rgba", f"color {colour(PLATE_PLACEHOLDER_COLOUR)}",
                                     "name PlatePlaceholder", "xpos 0", "ypos -340"], indent="")
    # inputs 1: the plate on input 0, the Hint input (1) unconnected.
    lines += node_block(GIZMO_CLASS, ["inputs 1", "name CorridorKey1", "xpos 0", "ypos -200"], indent="")
    # Pushed on top of the keyed plate: Merge2 takes it as input 0 (B, the background), the keyed plate as A.
    lines += node_block("Constant", ["inputs 0", "channels rgba", f"color {colour(BACKGROUND_PLACEHOLDER_COLOUR)}",
                                     "name BackgroundPlaceholder", "xpos -200", "ypos -200"], indent="")
    lines += node_block("Merge2", ["inputs 2", "operation over", "name MergeOverBackground", "xpos -200",
                                   "ypos -100"], indent="")
    lines += node_block("Write", ["file corridorkey_comp.####.exr", "file_type exr", "name WriteComp",
                                  "xpos -200", "ypos 0"], indent="")
    return "\n".join(lines) + "\n"
