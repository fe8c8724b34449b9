"""Ask a real Nuke the facts the project's tests assume about it, and write them to a JSON file.

The repository has no Nuke: its tests run the gizmo in a model of Nuke
(tests/support/nuke_graph.py) whose assumptions are listed there (``ASSUMPTIONS``). This
script measures each of them in a licensed Nuke, once, so that the model can be checked
against the real thing (tests/nuke_side/test_probe.py compares a committed JSON).

Run it in a terminal session with the CorridorKey package on the plugin path (docs/nuke.md,
"The probe: checking the tests' model of Nuke")::

    NUKE_PATH=/path/to/CorridorKey-for-Nuke/nuke  nuke -t corridorkey_probe.py probe.json

It creates nodes only in its own empty script and changes no file but ``probe.json``.
Exit status 0 when the JSON was written, 1 when the CorridorKey gizmo is not available.

Nuke calls used (Foundry's Nuke Python API reference): ``nuke.scriptReadFile`` (load a .nk
into the current script), ``nuke.toNode``, ``nuke.nodes.<Class>()``, ``nuke.tcl``,
``Node.knob`` / ``node[...]``, ``Knob.value`` / ``getValue`` / ``setValue`` / ``setExpression``,
``Enumeration_Knob.value`` (the item's name), ``Node.setInput``, ``Node.sample``,
``Group.begin`` / ``end``, ``Group.nodes``, ``Node.knobs``, ``Array_Knob.hasExpression``,
``nuke.NUKE_VERSION_STRING``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

FORMAT = 1

#: The script the probe loads: a plate and a hint (Constants) into a CorridorKey node with saved knob values.
SCRIPT = """Constant {
 inputs 0
 color {0.25 0.5 0.75 1}
 name ProbePlate
}
set NPlate [stack 0]
Constant {
 inputs 0
 color {0 0 0 1}
 name ProbeHint
}
set NHint [stack 0]
push $NHint
push $NPlate
CorridorKey {
 inputs 2
 output_mode "Matte only"
 despill_strength 3
 name ProbeNode
}
"""


def _measure(facts, key, fn):
    try:
        facts[key] = fn()
    except Exception as exc:  # a fact that cannot be measured is recorded as such, never a traceback
        facts[key] = {"error": "%s: %s" % (type(exc).__name__, exc)}


def probe(nuke, workdir):
    """The facts, as a dict (``nuke``: Foundry's module, or the tests' model of it)."""
    path = os.path.join(workdir, "corridorkey_probe.nk")
    with open(path, "w") as f:
        f.write(SCRIPT)
    nuke.scriptReadFile(path)
    node = nuke.toNode("ProbeNode")
    if node is None:
        raise RuntimeError("the CorridorKey gizmo is not on the plugin path (set NUKE_PATH as docs/nuke.md says)")
    inside = {name: node.node(name) for name in ("Inference", "InferenceBlue", "ToNetwork", "FromNetwork")}
    facts = {}
    _measure(facts, "menu_value_is_item_name", lambda: node["screen"].value() == "Green")
    _measure(facts, "menu_getvalue_is_index", lambda: node["screen"].getValue() == 0
             and isinstance(node["screen"].getValue(), float))
    # Inference's disable is {{parent.screen != 0}}: false for Green only if the menu is its index there.
    _measure(facts, "menu_in_expression_is_index", lambda: (not inside["Inference"]["disable"].value())
             and bool(inside["InferenceBlue"]["disable"].value()))
    _measure(facts, "bool_value_is_bool", lambda: isinstance(node["useGPUIfAvailable"].value(), bool))
    _measure(facts, "knob_values_after_load", lambda: node["output_mode"].value() == "Matte only"
             and node["despill_strength"].value() == 3)
    # onCreate writes Status from the saved connections: the Hint input is connected (Hint Channel alpha), so
    # its Status has no "no Hint input is connected" line; and ModelKnobs.auto_hint, evaluated at render time
    # from [exists parent.input1], is 0.
    _measure(facts, "oncreate_sees_saved_inputs", lambda: "no Hint input" not in node["status"].value()
             and node.node("ModelKnobs")["auto_hint"].getValue() == 0)
    _measure(facts, "cat_lookup_returns_first_on_plugin_path", lambda: _cat_lookup(nuke, inside["Inference"]))

    def knob_changed_ran():
        to, frm = inside["ToNetwork"], inside["FromNetwork"]
        before = frm["out_colorspace"].value()
        other = "color_picking" if to["in_colorspace"].value() != "color_picking" else "scene_linear"
        to["in_colorspace"].setValue(other)  # a Python setValue, no panel open in a terminal session
        ran = frm["out_colorspace"].value() == other
        to["in_colorspace"].setValue(before)
        return ran
    _measure(facts, "knobchanged_runs_with_panel_closed", knob_changed_ran)
    _measure(facts, "tonode_in_child_callback_finds_sibling", lambda: _in_group(node, lambda: nuke.toNode(
        "FromNetwork") is not None))
    _measure(facts, "exists_parent_input1_is_connection", lambda: _exists_input1(nuke, node))
    _measure(facts, "ocio_colorspace_channels_rgb", lambda: inside["ToNetwork"]["channels"].value() == "rgb")
    plate = nuke.toNode("ProbePlate")
    _measure(facts, "expression_blank_channel_unchanged", lambda: _with_node(
        nuke, "Expression", plate, lambda n: (n["expr0"].setValue("r*2"), n.sample("rgba.green", 0.5, 0.5))[1]
        == 0.5 and n.sample("rgba.red", 0.5, 0.5) == 0.5))
    _measure(facts, "disabled_node_passes_input0", lambda: _with_node(
        nuke, "Expression", plate, lambda n: (n["expr0"].setValue("0"), n["disable"].setValue(True),
                                              n.sample("rgba.red", 0.5, 0.5))[2] == 0.25))
    _measure(facts, "switch_which_clamped", lambda: _switch_clamped(nuke, plate, nuke.toNode("ProbeHint")))
    _measure(facts, "transform_black_outside_default_on", lambda: _transform_uncovers_black(nuke, plate))
    info = {}
    _measure(info, "nuke_version", lambda: nuke.NUKE_VERSION_STRING)
    _measure(info, "status", lambda: node["status"].value())
    _measure(info, "model_file", lambda: inside["Inference"]["modelFile"].evaluate())
    _measure(info, "expressions", lambda: _expression_values(node))
    _measure(info, "colour_spaces", lambda: [inside[n][k].value() for n in ("ToNetwork", "FromNetwork")
                                             for k in ("in_colorspace", "out_colorspace")])
    return {"format": FORMAT, "facts": facts, "info": info}


def _expression_values(group):
    """Every knob of the gizmo's nodes that holds an expression -> its value ("Node.knob": value)."""
    values = {}
    for child in group.nodes():
        for name, knob in child.knobs().items():
            if hasattr(knob, "hasExpression") and knob.hasExpression():
                value = knob.value()
                values["%s.%s" % (child.name(), name)] = value if isinstance(value, (bool, int, float)) else str(value)
    return values


def _cat_lookup(nuke, inference):
    found = nuke.tcl("plugins", "-all", "CorridorKey.cat")
    first = found.split()[0] if found.split() else ""
    return inference["modelFile"].evaluate() == first


def _in_group(group, fn):
    group.begin()
    try:
        return fn()
    finally:
        group.end()


def _exists_input1(nuke, node):
    def measure():
        probe_node = nuke.nodes.NoOp()
        try:
            probe_node["disable"].setExpression("[exists parent.input1]")
            connected = bool(probe_node["disable"].value())
            hint = node.input(1)
            node.setInput(1, None)
            unconnected = bool(probe_node["disable"].value())
            node.setInput(1, hint)
            return connected and not unconnected
        finally:
            nuke.delete(probe_node)
    return _in_group(node, measure)


def _with_node(nuke, cls, source, fn):
    n = getattr(nuke.nodes, cls)()
    try:
        n.setInput(0, source)
        return fn(n)
    finally:
        nuke.delete(n)


def _switch_clamped(nuke, a, b):
    def measure(switch):
        switch.setInput(1, b)
        switch["which"].setValue(5)
        return switch.sample("rgba.red", 0.5, 0.5) == 0.0  # input 1 (black), the last one
    return _with_node(nuke, "Switch", a, measure)


def _transform_uncovers_black(nuke, plate):
    """A new Transform moving the plate 2 px left: is the column it uncovers at the right edge black?"""
    def measure(transform):
        transform["translate"].setValue([-2, 0])
        transform["filter"].setValue("impulse")
        return transform.sample("rgba.red", transform.width() - 0.5, 0.5) == 0.0
    return _with_node(nuke, "Transform", plate, measure)


def main(argv):
    import nuke

    out = argv[1] if len(argv) > 1 else "corridorkey_probe.json"
    try:
        result = probe(nuke, tempfile.mkdtemp(prefix="corridorkey_probe_"))
    except RuntimeError as exc:
        sys.stderr.write("corridorkey_probe: %s\n" % exc)
        return 1
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    sys.stdout.write("corridorkey_probe: wrote %s; send it to the CorridorKey-for-Nuke developers\n" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
