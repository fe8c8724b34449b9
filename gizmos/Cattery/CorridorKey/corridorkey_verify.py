"""CorridorKey node: the Verify button (runs inside Nuke; hand-written, shipped in the Cattery package).

``verify(node)`` runs the chosen screen's model on the small test plate written at export
time (``CorridorKey.verify.exr``, beside the .cat), on this machine, with the node's
"Use GPU if available" and "Optimize for Speed and Memory" settings, samples the result at
the pixels stored in ``CorridorKey.verify.json`` and compares them with the reference values
computed by the exported file in Python. It writes one line to the node's Status knob:
"Verified: max error X (tolerance Y) ..." or a plain failure message; never a traceback.

What it tests: the installed model (the .cat) on this machine, with this node's GPU settings; not
this node's colour settings or hint (the test plate goes straight into a bare Inference node), nor
its CPU Precision: on the CPU the test runs fp32, and when this node renders in bfloat16 here the
Status line says so and points to the parity kit's ``parity_bf16.nk``, which checks that path.

The gizmo's button (labelled "Test Installed Model") imports this module from the folder of the
gizmo's own file (``Gizmo.filename()``): ``nukescripts/cattery.py`` adds Cattery package folders
with ``nuke.pluginAddPath(directory, addToSysPath=False)``, so the folder need not be on sys.path.

Nuke Python calls used, and their sources (Foundry, Nuke Python API reference):

* ``nuke.nodes.Read()``, ``nuke.nodes.Inference()``: "nuke.nodes: create a node of the named
  class without the UI side effects of nuke.createNode"; ``Node.setInput(i, node)``;
  ``nuke.delete(node)``.
* ``nuke.root()``, ``Group.begin()`` / ``Group.end()``: the temporary nodes are made at the
  script's top level, never inside the (locked) gizmo.
* ``Node.knob(name)`` / ``node[name]``, ``Knob.value()``, ``Knob.getValue()``,
  ``Knob.setValue()``; ``File_Knob.evaluate()`` (the gizmo's Inference node's ``modelFile``
  holds a TCL expression, evaluated to the .cat's path).
* ``Node.forceValidate()``: loads the .cat (Foundry's Cattery gizmos call it in onCreate);
  ``Node.hasError()``: "True if the node itself has an error" (a .cat that failed to load, a plate
  the Read cannot open) - asked before any sample, so a broken .cat is never judged as a wrong result.
* ``File_Knob.fromUserText(text)``: sets the file and reads the file's format and frame range (as
  typing the path in the panel does), so the Read never takes the root format.
* ``nuke.ProgressTask(name)`` with ``setMessage``, ``setProgress`` and ``isCancelled`` (the progress
  window with a Cancel button; used so in many public tools), ``nuke.ask(prompt)`` (a yes/no dialog),
  ``nuke.GUI`` (True in an interactive session: no dialog in a terminal session).
* ``Node.sample(channel, x, y)``: "If the optional dx,dy are not given then the exact value of
  the square pixel that x,y lands in is returned ... to center on a pixel add .5 to both
  coordinates" (``nuke.sample``; ``Node.sample`` is its replacement).
* Knobs: Read ``file``, ``raw``; Inference ``modelFile``, ``useGPUIfAvailable``,
  ``halfPrecision``, ``gpuName`` (whose tooltip says "Local GPU will be shown as Not available"
  when no GPU can be used) - the node reference scanned from Nuke 17.0v3
  (kirkjr2/nuke-python-reference, data/nodes/Inference.json, Write.json).
"""

import json
import os

#: Per entry of the node's Screen menu: (Inference node inside the gizmo, .cat, reference JSON).
#: Equal to corridorkey_export.gizmo.INFERENCE_NODES and nuke_contract's file names (a test checks).
SCREENS = (
    ("Inference", "CorridorKey.cat", "CorridorKey.verify.json"),
    ("InferenceBlue", "CorridorKeyBlue.cat", "CorridorKeyBlue.verify.json"),
)
#: The reference file this module understands.
VERIFY_FORMAT = 1
#: What the Inference node's gpuName shows when no GPU can be used.
NO_GPU_TEXT = "not available"
#: From this model resolution on, a CPU run takes minutes (about 14 s per frame at 1024 and 100 s at 2048 on
#: two cores, docs/benchmarks.md): the button asks before it starts one.
ASK_FROM_IMG_SIZE = 1024


class VerifyError(Exception):
    """Why the check could not run, in words for the Status line."""


class Cancelled(Exception):
    """The user cancelled the test (before it started, or in the progress window)."""


def _knob_value(node, name, default=None):
    knob = node.knob(name)
    return default if knob is None else knob.value()


def run_mode(node, inference):
    """'cpu', 'gpu' or 'gpu-fp16': how this node runs the model on this machine."""
    use_gpu = bool(_knob_value(node, "useGPUIfAvailable", True))
    gpu_name = str(_knob_value(inference, "gpuName", "") or "")
    on_gpu = use_gpu and bool(gpu_name.strip()) and NO_GPU_TEXT not in gpu_name.lower()
    if not on_gpu:
        return "cpu"
    return "gpu-fp16" if bool(_knob_value(node, "halfPrecision", False)) else "gpu"


def renders_bf16_here(node, mode):
    """Whether ``node`` renders in bfloat16 on this machine: on the CPU, CPU Precision bfloat16 (menu index 1)
    and the hidden ``cpu_bf16_units`` its onCreate set from this machine's CPU flags."""
    precision, units = node.knob("cpu_precision"), node.knob("cpu_bf16_units")
    if mode != "cpu" or precision is None or units is None:
        return False
    return int(precision.getValue()) == 1 and int(units.getValue()) == 1


def _load_reference(cat_path, json_name):
    path = os.path.join(os.path.dirname(cat_path), json_name)
    if not os.path.isfile(path):
        raise VerifyError("no reference values %s beside %s. Re-export with export-torchscript and install with "
                          "python -m corridorkey_export.nuke_files --install-to ~/.nuke --cat %s (it copies them)"
                          % (json_name, cat_path, os.path.basename(cat_path)))
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise VerifyError("%s is not readable (%s); reinstall it with --install-to" % (path, exc)) from None
    if data.get("format") != VERIFY_FORMAT or not data.get("samples"):
        raise VerifyError("%s is not a CorridorKey reference file this node understands; re-export and reinstall"
                          % path)
    plate = os.path.join(os.path.dirname(path), data["plate"])
    if not os.path.isfile(plate):
        raise VerifyError("the test plate %s is missing; reinstall with --install-to --cat" % plate)
    return data, plate.replace("\\", "/")


def _run(nuke, node):
    """(message, passed): run the check; raises VerifyError for anything that stops it."""
    index = int(node["screen"].getValue())
    if not 0 <= index < len(SCREENS):
        raise VerifyError("unknown Screen %d" % index)
    inference_name, cat_name, json_name = SCREENS[index]
    inference = node.node(inference_name)
    if inference is None:
        raise VerifyError("the node has no %s inside; recreate it from the Cattery menu" % inference_name)
    cat_path = inference["modelFile"].evaluate()
    if not cat_path or not os.path.isfile(cat_path):
        raise VerifyError("%s was not found on the plugin path; build it in NukeX and install it" % cat_name)
    data, plate = _load_reference(cat_path, json_name)
    mode = run_mode(node, inference)
    tolerance = float(data["tolerances"][mode])
    img_size = int(data.get("img_size", 0))
    if mode == "cpu" and img_size >= ASK_FROM_IMG_SIZE and getattr(nuke, "GUI", False):
        if not nuke.ask("Test the installed CorridorKey model on the CPU? The model runs at %d x %d: this takes "
                        "about %s and Nuke waits until it is done." % (img_size, img_size,
                                                                        "2 minutes" if img_size >= 2048 else
                                                                        "20 seconds")):
            raise Cancelled("cancelled before it started")
    root = nuke.root()
    made = []
    task = nuke.ProgressTask("CorridorKey: testing the installed model")
    root.begin()
    try:
        read = nuke.nodes.Read()
        made.append(read)
        read["file"].fromUserText(plate)
        read["raw"].setValue(True)
        if read.hasError():
            raise VerifyError("Nuke cannot read the test plate %s; reinstall with --install-to --cat" % plate)
        test = nuke.nodes.Inference()
        made.append(test)
        test.setInput(0, read)
        test["modelFile"].setValue(cat_path.replace("\\", "/"))
        test["useGPUIfAvailable"].setValue(mode != "cpu")
        test["halfPrecision"].setValue(mode == "gpu-fp16")
        test.forceValidate()
        if test.hasError():
            raise VerifyError("%s did not load in this Nuke (its Inference node reports an error): the .cat is "
                              "damaged, or was built by another NukeX or from a .pt exported for another "
                              "--target-nuke. Build it again with corridorkey_create_cat.py in this NukeX"
                              % cat_path)
        task.setMessage("running the model at %d x %d on %s" % (img_size, img_size, mode.upper()))
        worst, where = 0.0, None
        samples = data["samples"]
        for i, s in enumerate(samples):
            if task.isCancelled():
                raise Cancelled("cancelled after %d of %d pixels" % (i, len(samples)))
            task.setProgress(int(100 * i / len(samples)))
            for channel, want in zip(data["channels"], s["values"]):
                got = float(test.sample(channel, s["x"] + 0.5, s["y"] + 0.5))
                err = abs(got - want) if got == got else float("inf")  # NaN is a failure
                if err > worst or where is None:
                    worst, where = max(err, worst), (s["x"], s["y"], channel)
        task.setProgress(100)
    finally:
        for n in reversed(made):
            nuke.delete(n)
        root.end()
        del task  # closes the progress window
    label = {"cpu": "CPU fp32", "gpu": "GPU fp32", "gpu-fp16": "GPU fp16"}[mode]
    if renders_bf16_here(node, mode):
        label += (" (this node renders in bfloat16 here, CPU Precision; the test runs fp32: the parity kit's "
                  "parity_bf16.nk checks bfloat16, docs/parity.md)")
    count = len(data["samples"])
    if worst <= tolerance:
        return ("Verified: max error %.3g (tolerance %.3g) on %s, %d pixels of the test plate"
                % (worst, tolerance, label, count)), True
    return ("Verify FAILED: max error %.3g (tolerance %.3g) on %s at pixel (%d, %d) %s. This Nuke does not compute "
            "what the exported file computes; run the parity kit (docs/parity.md) and report it"
            % (worst, tolerance, label, where[0], where[1], where[2])), False


def verify(node=None):
    """Run the check for ``node`` (default ``nuke.thisNode()``); write the result to its Status knob and return it."""
    import nuke

    if node is None:
        node = nuke.thisNode()
    try:
        message, _passed = _run(nuke, node)
    except VerifyError as exc:
        message = "Verify could not run: %s" % exc
    except Cancelled as exc:
        message = "Verify: %s; nothing was tested" % exc
    except Exception as exc:  # a Nuke error (a failing render, a missing knob): a plain line, never a traceback
        message = "Verify could not run: %s: %s" % (type(exc).__name__, exc)
    try:
        node["status"].setValue(message)
    except Exception:
        nuke.warning(message)
    return message
