"""Mutants that must die: deliberate bugs in the gizmo generator's output, each caught by a behavioural check.

Each mutant is a list of exact text edits of ``render_gizmo()``'s output. An edit whose text
no longer occurs the stated number of times fails loudly (test_every_mutant_still_applies):
when the gizmo changes, update the mutant rather than let it pass silently. Each applied
mutant must make one of the checks of tests/support/gizmo_checks.py fail (the same checks
tests/nuke_side/test_gizmo_graph.py runs on the real gizmo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Tuple

import pytest
from gizmo_checks import (
    CHEAP_CHECKS,
    check_garbage_matte,
    check_half_resolution_hint,
    check_node_equals_pipeline,
    check_overscan_plate,
    check_temporal_sequence,
    grid,
)
from nuke_expr import ExprError
from nuke_graph import GraphError

from corridorkey_export.gizmo import render_gizmo


@dataclass(frozen=True)
class Edit:
    old: str
    new: str
    count: int = 1  # how often ``old`` must occur


@dataclass(frozen=True)
class Swap:
    """Exchange two node blocks (found by their ``name`` line): a Switch's inputs swapped."""

    first: str
    second: str


@dataclass(frozen=True)
class Mutant:
    name: str
    edits: Tuple[object, ...]


class MutantDoesNotApply(AssertionError):
    pass


def _block(text: str, name: str) -> re.Match:
    found = list(re.finditer(r"^ \w+ \{\n(?:  .*\n)*?  name " + re.escape(name) + r"\n(?:  .*\n)*? \}\n", text,
                             re.MULTILINE))
    if len(found) != 1:
        raise MutantDoesNotApply(f"node block named {name!r} found {len(found)} times in the gizmo")
    return found[0]


def apply(text: str, mutant: Mutant) -> str:
    for edit in mutant.edits:
        if isinstance(edit, Swap):
            a, b = _block(text, edit.first), _block(text, edit.second)
            (a, b) = (a, b) if a.start() < b.start() else (b, a)
            text = text[:a.start()] + b.group() + text[a.end():b.start()] + a.group() + text[b.end():]
            continue
        n = text.count(edit.old)
        if n != edit.count:
            raise MutantDoesNotApply(f"mutant {mutant.name!r}: {edit.old!r} occurs {n} times, not {edit.count}; "
                                     "the gizmo changed: update the mutant to the new text")
        text = text.replace(edit.old, edit.new)
    return text


MUTANTS = (
    # ToNetwork's own knobChanged copies the colour spaces to FromNetwork instead of inverting them.
    Mutant("ToNetwork knobChanged copies", (
        Edit(r"setValue(nuke.thisNode()\['out_colorspace'\]", r"setValue(nuke.thisNode()\['IN_SWAP'\]"),
        Edit(r"setValue(nuke.thisNode()\['in_colorspace'\]", r"setValue(nuke.thisNode()\['out_colorspace'\]"),
        Edit("IN_SWAP", "in_colorspace"))),
    # The gizmo's onCreate/knobChanged copies them too.
    Mutant("onCreate copies the colour spaces", (
        Edit(r"ck_from\['in_colorspace'\].setValue(ck_to\['out_colorspace'\]",
             r"ck_from\['in_colorspace'\].setValue(ck_to\['in_colorspace'\]", 2),
        Edit(r"ck_from\['out_colorspace'\].setValue(ck_to\['in_colorspace'\]",
             r"ck_from\['out_colorspace'\].setValue(ck_to\['out_colorspace'\]", 2))),
    # A menu read by name where its index is meant (Enumeration_Knob.value() is the item's name).
    Mutant("Hint Channel read by name", (
        Edit(r"int(ck_node\['hint_channel'\].getValue())", r"ck_node\['hint_channel'\].value()", 2),)),
    Mutant("Screen read by name", (
        Edit(r"int(ck_node\['screen'\].getValue())", r"int(ck_node\['screen'\].value())", 2),)),
    # A Switch's inputs swapped.
    Mutant("OutputSwitch: premultiplied and straight swapped", (Swap("StraightWorking", "PremultWorking"),)),
    Mutant("ScreenSwitch: green and blue swapped", (Swap("Inference", "InferenceBlue"),)),
    # A wrong channel in an expression.
    Mutant("HintToAlpha reads green for red", (Edit("hint_channel == 1 ? r :", "hint_channel == 1 ? g :"),)),
    Mutant("HintToAlpha luminance weights on the wrong channels", (Edit("0.7152*g + 0.0722*b", "0.7152*b + 0.0722*g"),)),
    # Expressions on the wrong knob value.
    Mutant("ToNetwork bypassed for sRGB", (Edit("disable {{parent.gamma_input == 1}}",
                                                "disable {{parent.gamma_input == 0}}"),)),
    Mutant("KeepModelAlpha copies red", (Edit(" from0 rgba.alpha\n  to0 rgba.alpha\n  name KeepModelAlpha",
                                              " from0 rgba.red\n  to0 rgba.alpha\n  name KeepModelAlpha"),)),
    Mutant("auto_hint link broken", (Edit("auto_hint:{ModelKnobs.auto_hint}", "auto_hint:{0}", 2),)),
    # #26: the hint fitted to the plate's format, the plate cropped to its format, the render-time hint decision,
    # proxy mode.
    Mutant("HintToPlateFormat box sized from the plate's height", (
        Edit("box_width {{Plate.width}}\n  box_height {{Plate.height}}\n  box_fixed true\n  resize distort\n"
             "  filter impulse\n  name HintToPlateFormat",
             "box_width {{Plate.height}}\n  box_height {{Plate.height}}\n  box_fixed true\n  resize distort\n"
             "  filter impulse\n  name HintToPlateFormat"),)),
    Mutant("HintToPlateFormat filters (cubic, not nearest)", (
        Edit("  filter impulse\n  name HintToPlateFormat", "  filter cubic\n  name HintToPlateFormat"),)),
    Mutant("PlateToFormat Crop removed", (
        Edit(" Crop {\n  box {0 0 {width} {height}}\n  crop false\n  name PlateToFormat\n  xpos 0\n  ypos -400\n }\n",
             ""),)),
    Mutant("ModelKnobs.auto_hint inverted", (
        Edit(r"parent.hint_channel == 3 || !\[exists parent.input1\]",
             r"parent.hint_channel == 3 || \[exists parent.input1\]"),)),
    Mutant("proxy factor dropped", (
        Edit("int(parent.despeckle_size * (root.proxy ? root.proxy_scale : 1) * (root.proxy ? root.proxy_scale : 1)"
             " + 0.5)", "int(parent.despeckle_size + 0.5)"),)),
    # #30: the garbage matte.
    Mutant("GarbageIntoAlpha never enabled", (Edit("disable {{ModelKnobs.auto_hint != 2}}", "disable {{1}}"),)),
    # #28: the temporal filter.
    Mutant("TemporalNextOutput looks at the previous frame", (
        Edit("time_offset -1\n  name TemporalNextOutput", "time_offset 1\n  name TemporalNextOutput"),)),
    Mutant("TemporalResult's alpha not normalised", (Edit('expr3 "clamp(Aa/Ba,0,1)"', 'expr3 "clamp(Aa,0,1)"'),)),
    Mutant("TemporalSwitch inverted", (Edit("which {{parent.temporal > 0}}", "which {{parent.temporal == 0}}"),)),
    # #29: the CPU precision.
    Mutant("cpu_bf16 ignores the machine's CPU", (Edit(" && parent.cpu_bf16_units == 1", ""),)),
    Mutant("onCreate does not look for the bfloat16 flags", (Edit("== 'flags':", "== 'flag':", 2),)),
)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_still_applies(mutant):
    assert apply(render_gizmo(), mutant) != render_gizmo()


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_mutant_dies(world, mutant, tmp_path):
    text = apply(render_gizmo(), mutant)
    # the grid first: in a whole run its renders and pipeline outputs are cached by test_gizmo_graph.py
    checks = [lambda t, w: check_node_equals_pipeline(t, w, grid())] + list(CHEAP_CHECKS) + [
        check_half_resolution_hint, check_garbage_matte, lambda t, w: check_overscan_plate(t, w, tmp_path),
        check_temporal_sequence]
    for check in checks:
        try:
            check(text, world)
        except (AssertionError, GraphError, ExprError):
            return
    pytest.fail(f"mutant {mutant.name!r} survived every check")
