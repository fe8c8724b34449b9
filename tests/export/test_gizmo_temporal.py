"""The gizmo's temporal filter (issue #28) as a graph: the parser checks its wiring and knobs.

What it computes, frame by frame, is checked by the executable model of the node against
``corridorkey run --temporal`` (tests/nuke_side); here: that the nodes are wired as the formula
of corridorkey_model/keying/temporal.py reads (DESIGN 3.7), and that Temporal 0 is the raw output.
"""

from __future__ import annotations

import pytest
from nukescript import parse
from repo_paths import REPO

from corridorkey_export import gizmo as gz
from corridorkey_export import nuke_files
from corridorkey_model.keying import temporal


@pytest.fixture(scope="module")
def gizmo():
    return parse((REPO / nuke_files.GIZMO_PATH).read_text()).nodes[0]


def node_or_none(gizmo, name):
    try:
        return gizmo.node(name)
    except KeyError:
        return None


def names(node):
    return [i.name if i is not None else None for i in node.inputs]


def test_temporal_knob_is_a_strength_off_by_default(gizmo):
    knob = gizmo.user_knob(gz.TEMPORAL_KNOB)
    assert knob.type_id == 7 and knob.range == (temporal.STRENGTH_MIN, temporal.STRENGTH_MAX)
    assert float(gizmo.value(gz.TEMPORAL_KNOB)) == temporal.STRENGTH_DEFAULT == 0
    assert "three network runs" in knob.tooltip and "cache" in knob.tooltip


def test_the_switch_passes_the_raw_output_when_off(gizmo):
    switch = gizmo.node("TemporalSwitch")
    assert switch.expression("which") == f"parent.{gz.TEMPORAL_KNOB} > 0"
    assert names(switch) == ["ScreenSwitch", "TemporalResult"]
    # everything after the model reads the switch: the colour conversion back and the matte
    for node in ("FromNetwork", "MatteOnly", "KeepModelAlpha"):
        assert "TemporalSwitch" in names(gizmo.node(node)), node


@pytest.mark.parametrize("side,offset", [("Prev", 1), ("Next", -1)])  # output t = input t - offset
def test_each_neighbour_is_weighted_by_its_plate_difference(gizmo, side, offset):
    ex = temporal.nuke_expressions(f"parent.{gz.TEMPORAL_KNOB}")
    plate = gizmo.node(f"Temporal{side}Plate")
    assert plate.cls == "TimeOffset" and int(plate.value("time_offset")) == offset
    assert names(plate) == ["PlatePlusHint"]  # the plate as the network receives it
    diff = gizmo.node(f"Temporal{side}Difference")
    assert diff.cls == "MergeExpression" and names(diff) == ["PlatePlusHint", f"Temporal{side}Plate"]  # B, A
    assert [diff.value(f"expr{i}") for i in range(4)] == [ex["difference"]] * 4
    # the box: 2 RADIUS whole-pixel shifts per axis (filter impulse), summed in order
    r = temporal.RADIUS
    for axis, first_input in (("X", f"Temporal{side}Difference"), ("Y", f"Temporal{side}Sum{'X'}{2 * r}")):
        shifts = [node_or_none(gizmo, f"Temporal{side}Shift{axis}{i}") for i in range(2 * r + 1)]
        assert shifts[r] is None  # the unshifted copy is the node itself
        for i, s in enumerate(shifts):
            if s is None:
                continue
            assert s.cls == "Transform" and s.value("filter") == "impulse" and s.value("black_outside") == "false"
            d = i - r
            assert s.value("translate") == (f"{d} 0" if axis == "X" else f"0 {d}")
            assert names(s) == [first_input]
        for i in range(1, 2 * r + 1):
            total = gizmo.node(f"Temporal{side}Sum{axis}{i}")
            copy = f"Temporal{side}Shift{axis}{i}" if i != r else first_input
            running = f"Temporal{side}Shift{axis}0" if i == 1 else f"Temporal{side}Sum{axis}{i - 1}"
            assert names(total) == [copy, running]  # B the copy, A the running sum
            assert [total.value(f"expr{k}") for k in range(4)] == [ex[f"add.{c}"] for c in "rgba"]
    weight = gizmo.node(f"Temporal{side}Weight")
    assert weight.cls == "Expression" and names(weight) == [f"Temporal{side}SumY{2 * r}"]
    assert [weight.value(f"expr{i}") for i in range(4)] == [ex["weight"]] * 4
    assert f"/{temporal.BOX_TAPS}" in ex["weight"]
    output = gizmo.node(f"Temporal{side}Output")
    assert output.cls == "TimeOffset" and int(output.value("time_offset")) == offset
    assert names(output) == ["ScreenSwitch"]  # the neighbour's raw model output
    weighted = gizmo.node(f"Temporal{side}Weighted")
    assert names(weighted) == [f"Temporal{side}Output", f"Temporal{side}Weight"]


def test_the_mean_is_taken_in_the_pipelines_order(gizmo):
    ex = temporal.nuke_expressions(f"parent.{gz.TEMPORAL_KNOB}")
    assert names(gizmo.node("TemporalSumPrev")) == ["ScreenSwitch", "TemporalPrevWeighted"]
    assert names(gizmo.node("TemporalSumNext")) == ["TemporalSumPrev", "TemporalNextWeighted"]
    assert names(gizmo.node("TemporalDenominator")) == ["TemporalNextWeight", "TemporalPrevWeight"]
    assert gizmo.node("TemporalDenominator").value("expr3") == ex["denominator"]
    result = gizmo.node("TemporalResult")
    assert names(result) == ["TemporalDenominator", "TemporalSumNext"]
    assert [result.value(f"expr{i}") for i in range(4)] == [ex[f"result.{c}"] for c in "rgba"]


def test_every_per_pixel_node_writes_exactly_its_channel(gizmo):
    """expr0..expr3 each on one of r, g, b, a (MergeExpression leaves alpha off unless told)."""
    for node in gizmo.by_class("MergeExpression") + gizmo.by_class("Expression"):
        if not node.name.startswith("Temporal"):
            continue
        assert node.value("channel3") == "-rgba.red -rgba.green -rgba.blue rgba.alpha", node.name
        assert node.value("channel0") == "rgba.red -rgba.green -rgba.blue none", node.name
