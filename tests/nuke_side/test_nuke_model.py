"""The executable model of Nuke itself (tests/support/nuke_expr.py, nuke_graph.py), on small scripts written
here: expressions, TCL, typed knobs, callbacks and the node classes, each against Nuke's documented rule
(the rule is restated in each test, the expected values computed independently of the model)."""

from __future__ import annotations

import numpy as np
import pytest
from nuke_expr import Context, ExprError, evaluate, tcl_eval
from nuke_graph import NODE_CLASSES, GraphError, NukeSession, instance_script


def ev(text, names=None):
    names = names or {}
    return evaluate(text, Context(lambda path: names[".".join(path)], lambda cmd: {"one": "1"}[cmd]))


# --------------------------------------------------------------------------- expressions and TCL


@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("-2 * -3", 6), ("7 % 4", 3), ("10 / 4", 2.5),
    ("1 + 2 == 3", 1), ("2 < 1 || 3 >= 3", 1), ("!0 && 0", 0), ("!(1 != 1)", 1),
    ("0 ? 1 : 0 ? 2 : 3", 3), ("1 ? 0 ? 4 : 5 : 6", 5), ("k.x > 1 ? k.x : 0", 2.5),
    ("[one] + 1", 2), ("!\\[one]", 0), ('"parent.a == 3 || !\\[one]"', 1), ("max(1, 4) - min(2, 3)", 2),
    ("clamp(3)", 1), ("1.5e1 + .5", 15.5),
])
def test_expression_values(text, value):
    assert ev(text, {"k.x": 2.5, "parent.a": 3}) == value


def test_expressions_run_over_images():
    r = np.array([[0.2, 0.8]], np.float32)
    out = ev("r > 0.5 ? 1 : r * 2", {"r": r})
    np.testing.assert_array_equal(out, np.array([[0.4, 1.0]], np.float32))


@pytest.mark.parametrize("text", ["1 +", "foo(1)", "1 $ 2", "(1", "1 ? 2"])
def test_expressions_outside_the_subset_fail_loudly(text):
    with pytest.raises(ExprError):
        ev(text)


def test_tcl_results_stay_one_word():
    def run(words):
        if words[0] == "plugins":
            return "{/a b/x.cat} /c/x.cat"
        assert words[0] == "lsearch"
        return words[2]
    assert tcl_eval("lsearch -inline [plugins -all x.cat] *.cat", run) == "{/a b/x.cat} /c/x.cat"


def test_cat_lookup_finds_the_first_on_the_plugin_path(tmp_path):
    """[lsearch -inline [plugins -all X.cat] *.cat]: the first X.cat of the plugin path, "" when none."""
    first, second = tmp_path / "with space", tmp_path / "b"
    for d in (first, second):
        d.mkdir()
        (d / "X.cat").write_text("{}")
    session = NukeSession({}, [tmp_path / "empty", first, second])
    session.load("NoOp {\n inputs 0\n name N\n}\n")
    node = session.toNode("N")
    assert session.tcl_text(node, "[lsearch -inline [plugins -all X.cat] *.cat]") == str(first / "X.cat")
    assert session.tcl_text(node, "[lsearch -inline [plugins -all Y.cat] *.cat]") == ""


# --------------------------------------------------------------------------- typed knobs and callbacks


GIZMO = r"""Gizmo {
 inputs 2
 onCreate "n = nuke.thisNode()\nm = n\['mode'\]\nn\['seen'\].setValue('%s|%s|%s' % (m.value(), m.getValue(), bool(n.input(1))))"
 knobChanged "nuke.thisNode()\['seen'\].setValue('changed ' + nuke.thisKnob().name())"
 addUserKnob {20 T}
 addUserKnob {4 mode l Mode M {alpha red luminance automatic}}
 addUserKnob {6 flag}
 flag true
 addUserKnob {3 count}
 addUserKnob {7 gain}
 gain 0.5
 addUserKnob {26 seen T ""}
 addUserKnob {41 space T Colour.in_colorspace}
}
 Input {
  inputs 0
  name Hint
  number 1
 }
 NoOp {
  name HintSource
  addUserKnob {6 auto}
  auto {{"parent.mode == 3 || !\[exists parent.input1]"}}
 }
 Input {
  inputs 0
  name Plate
 }
 OCIOColorSpace {
  in_colorspace scene_linear
  out_colorspace scene_linear
  name Colour
 }
 Expression {
  expr1 "root.proxy ? 0 : parent.gain * g"
  name Gain
 }
 Output {
  name Output1
 }
end_group
"""


def load_test_gizmo(knobs, inputs=("/p.exr", "/h.exr")):
    session = NukeSession({"Test": GIZMO}, root_format=(3, 2))
    img = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) / 24
    session.files["/p.exr"], session.files["/h.exr"] = img, img[..., ::-1].copy()
    session.load(instance_script("Test", knobs, list(inputs), name="T1"))
    return session, session.toNode("T1"), img


def test_knobs_are_typed_from_the_addUserKnob_lines():
    _s, node, _img = load_test_gizmo({"mode": "luminance"})
    assert node["mode"].Class() == "Enumeration_Knob"
    assert node["mode"].value() == "luminance" and node["mode"].getValue() == 2.0  # name; index as a float
    assert node["flag"].value() is True and node["flag"].getValue() == 1.0
    assert node["gain"].value() == 0.5 and node["count"].value() == 0
    node["mode"].setValue("red")
    assert node["mode"].getValue() == 1.0
    node["mode"].setValue(3)
    assert node["mode"].value() == "automatic"
    with pytest.raises(ValueError):
        node["mode"].setValue("green")
    with pytest.raises(TypeError):
        node["count"].setValue(1.5)
    # a link knob is the child's knob
    node["space"].setValue("color_picking")
    assert node.node("Colour")["in_colorspace"].value() == "color_picking"
    with pytest.raises(NameError):
        node["gpuName"]
    assert node.knob("gpuName") is None
    with pytest.raises(AttributeError):
        node.no_such_call()


def test_oncreate_sees_the_saved_knobs_and_inputs_and_knobchanged_runs_only_for_the_artist():
    _s, node, _img = load_test_gizmo({"mode": "red"})
    assert node["seen"].value() == "red|1.0|True"
    _s, node, _img = load_test_gizmo({}, inputs=("/p.exr", None))
    assert node["seen"].value() == "alpha|0.0|False"
    node["mode"].setValue("automatic")  # Python: no knobChanged
    assert node["seen"].value() == "alpha|0.0|False"
    node.user_set("mode", "red")
    assert node["seen"].value() == "changed mode"
    node.user_connect(1, None)
    assert node["seen"].value() == "changed inputChange"


@pytest.mark.parametrize("mode, connected, auto", [
    ("alpha", True, False), ("automatic", True, True), ("alpha", False, True), ("red", False, True)])
def test_hint_source_expression_with_exists_parent_input1(mode, connected, auto):
    """`[exists parent.input1]` is true when the group's input 1 is connected (public gizmos' idiom)."""
    _s, node, _img = load_test_gizmo({"mode": mode}, inputs=("/p.exr", "/h.exr" if connected else None))
    assert node.node("HintSource")["auto"].value() is auto


def test_expression_node_reads_parent_and_root_knobs():
    session, node, img = load_test_gizmo({"gain": "2"})
    out = session.render(node)
    np.testing.assert_allclose(out[..., 1], 2 * img[..., 1])
    np.testing.assert_array_equal(out[..., [0, 2, 3]], img[..., [0, 2, 3]])  # blank expressions: unchanged
    session.root()["proxy"].setValue(True)
    assert (session.render(node)[..., 1] == 0).all()


def test_unknown_classes_and_knobs_fail_loudly():
    with pytest.raises(GraphError, match="not modelled"):
        NukeSession().load("Blur {\n inputs 0\n name B\n}\n")
    with pytest.raises(GraphError, match="not modelled for this class"):
        NukeSession().load("Switch {\n inputs 0\n mix 1\n name S\n}\n")
    assert {"Input", "Output", "Copy", "Expression", "OCIOColorSpace", "Inference", "Switch", "Shuffle", "Premult",
            "Dot", "Crop", "Reformat", "NoOp", "Read", "Constant"} <= set(NODE_CLASSES)


# --------------------------------------------------------------------------- node classes


def render_chain(img, nodes, root_format=None):
    """``img`` through a chain of nodes written as script blocks; the last node's image."""
    h, w = img.shape[:2]
    session = NukeSession(root_format=root_format or (w, h))
    session.files["/in.exr"] = img
    text = 'Read {\n inputs 0\n file "/in.exr"\n raw true\n name R\n}\n' + "".join(nodes)
    session.load(text)
    return session.render(session.root().children[-1])


def test_reformat_to_box_impulse_takes_the_pixel_under_each_output_centre():
    """Output pixel i takes input pixel floor((i + 0.5) * in / out), in Nuke's bottom-up rows too."""
    h, w = 5, 7
    img = np.zeros((h, w, 4), np.float32)
    for row in range(h):
        for col in range(w):
            img[row, col] = (col, h - 1 - row, 0, 1)  # red = x, green = y (from the bottom)
    for out_w, out_h in ((3, 2), (11, 9)):
        out = render_chain(img, [f"Reformat {{\n type \"to box\"\n box_width {out_w}\n box_height {out_h}\n"
                                 " box_fixed true\n resize distort\n filter impulse\n name F\n}\n"])
        assert out.shape == (out_h, out_w, 4)
        for i in range(out_w):
            for j in range(out_h):  # j counts from the bottom
                x, y = int((i + 0.5) * w / out_w), int((j + 0.5) * h / out_h)
                assert tuple(out[out_h - 1 - j, i, :2]) == (x, y)


def test_crop_to_the_format_changes_nothing_and_a_smaller_box_blackens_outside():
    img = np.random.default_rng(0).random((4, 6, 4), dtype=np.float32) + 0.1
    same = render_chain(img, ["Crop {\n box {0 0 {{width}} {{height}}}\n crop false\n name C\n}\n"])
    np.testing.assert_array_equal(same, img)
    out = render_chain(img, ["Crop {\n box {1 1 4 3}\n name C\n}\n"])
    inside = np.zeros((4, 6), bool)
    inside[4 - 3:4 - 1, 1:4] = True  # rows y = 1..2 from the bottom, columns 1..3
    np.testing.assert_array_equal(out[inside], img[inside])
    assert (out[~inside] == 0).all()


def test_copy_shuffle_premult_switch_and_disable():
    img = np.random.default_rng(1).random((3, 4, 4), dtype=np.float32)
    out = render_chain(img, ["Shuffle {\n red alpha\n green alpha\n blue alpha\n alpha alpha\n name S\n}\n"])
    np.testing.assert_array_equal(out, np.repeat(img[..., 3:], 4, axis=2))
    out = render_chain(img, ["Premult {\n name P\n}\n"])
    np.testing.assert_allclose(out[..., :3], img[..., :3] * img[..., 3:])
    out = render_chain(img, ["Premult {\n disable true\n name P\n}\n"])
    np.testing.assert_array_equal(out, img)
    # Copy: B is input 0, A input 1; A's red into B's alpha; a Switch past its last input takes the last one.
    script = ["set NR [stack 0]\n", "Shuffle {\n red green\n name A\n}\n", "push $NR\n",
              "Copy {\n inputs 2\n from0 rgba.red\n to0 rgba.alpha\n name C\n}\n"]
    out = render_chain(img, script)
    np.testing.assert_array_equal(out[..., :3], img[..., :3])
    np.testing.assert_array_equal(out[..., 3], img[..., 1])
    out = render_chain(img, ["set NR [stack 0]\n", "Shuffle {\n red white\n name A\n}\n", "push $NR\n",
                             "Switch {\n inputs 2\n which 7\n name W\n}\n"])
    np.testing.assert_array_equal(out[..., 0], 1.0)


# --------------------------------------------------------------------------- time, geometry and the Python calls


def _sequence_script():
    return """Read {
 inputs 0
 file /seq.####.exr
 name Seq
}
set NSeq [stack 0]
TimeOffset {
 time_offset 1
 name Later
}
push $NSeq
MergeExpression {
 inputs 2
 expr0 "Ar - Br"
 channel1 {-rgba.red -rgba.green -rgba.blue none}
 expr1 "99"
 name Diff
}
push $NSeq
Transform {
 translate {-1 1}
 filter impulse
 name Moved
}
push $NSeq
Transform {
 translate {-1 1}
 filter impulse
 black_outside false
 name MovedEdge
}
"""


def test_timeoffset_read_hold_and_mergeexpression():
    """TimeOffset +1: the output at t is the input at t - 1; a sequence holds its first/last frame outside its
    range (Read before/after "hold"); MergeExpression: input 0 is B, input 1 is A; channel1 with no channel on
    leaves green as B's."""
    session = NukeSession()
    frames = {f: np.full((2, 3, 4), 10.0 * f, np.float32) for f in (1, 2, 3)}
    session.files["/seq.####.exr"] = frames
    session.load(_sequence_script())
    later, diff = session.toNode("Later"), session.toNode("Diff")
    assert [session.render(later, f)[0, 0, 0] for f in (0, 1, 2, 3, 4, 5)] == [10, 10, 10, 20, 30, 30]
    # Diff at t: A = TimeOffset (frame t-1, held), B = the sequence at t: red = A - B
    assert [session.render(diff, f)[0, 0, 0] for f in (1, 2, 3, 4)] == [0, -10, -10, 0]
    assert session.render(diff, 2)[0, 0, 1] == 20  # green: B's, untouched (channel1 enables no channel)


def test_transform_whole_pixel_translate_and_black_outside():
    """translate (-1, 1) with filter impulse: output (x, y) = input (x + 1, y - 1), y up; black_outside (Nuke's
    default, on) makes the uncovered right column and bottom row black, off repeats the edge."""
    session = NukeSession()
    img = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)  # rows top-down
    session.files["/seq.####.exr"] = {1: np.repeat(img[..., None], 4, axis=2)}
    session.load(_sequence_script())
    moved = session.render(session.toNode("Moved"))[..., 0]
    edge = session.render(session.toNode("MovedEdge"))[..., 0]
    # Nuke y up 1: the array's row i shows row i + 1; x left 1: column j shows column j + 1
    np.testing.assert_array_equal(moved[:2, :3], img[1:, 1:])
    assert (moved[2] == 0).all() and (moved[:, 3] == 0).all()
    np.testing.assert_array_equal(edge, img[np.minimum(np.arange(3) + 1, 2)][:, np.minimum(np.arange(4) + 1, 3)])


def test_read_errors_fromusertext_progress_and_ask():
    """hasError on a Read that cannot read its file; fromUserText sets the Read's format to the file's (a Read made
    by Python has the root format); ProgressTask and ask record what the artist sees; no dialog in a terminal."""
    session = NukeSession(root_format=(16, 8))
    session.files["/small.exr"] = np.ones((2, 3, 4), np.float32)
    read = session.nodes.Read()
    read["file"].setValue("/small.exr")
    assert session.render(read).shape == (8, 16, 4)  # padded into the root format
    read["file"].fromUserText("/small.exr")
    assert session.render(read).shape == (2, 3, 4) and not read.hasError()
    read["file"].fromUserText("/missing.exr")
    assert read.hasError()
    with pytest.raises(GraphError):
        session.ask("go?")  # nuke.GUI is False: a terminal session has no dialog
    session.GUI, session.answer, session.cancel_after = True, False, 1
    assert session.ask("go?") is False and session.asked == ["go?"]
    task = session.ProgressTask("work")
    task.setProgress(50)
    assert [task.isCancelled(), task.isCancelled()] == [False, True]
    assert session.progress == [("task", "work"), ("progress", 50)]
    with pytest.raises(ValueError):
        task.setProgress(150)
