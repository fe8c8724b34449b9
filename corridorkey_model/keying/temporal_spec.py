"""The temporal filter's constants and its node recipe, with no torch: the pipeline's filter
(:mod:`corridorkey_model.keying.temporal`) and the Nuke gizmo's generator (``export/gizmo.py``,
which must import in a Python that has only click) both read them from here.
"""

from __future__ import annotations

from typing import Dict

#: The neighbourhood: a (2 RADIUS + 1) x (2 RADIUS + 1) box (5 x 5).
RADIUS = 2
#: The number of pixels in the box.
BOX_TAPS = (2 * RADIUS + 1) ** 2
#: Box-mean plate difference (network colour space, 0-1) up to which a neighbour gets the full weight
#: (what sensor noise and compression give on a still plate).
LOW = 0.02
#: ... and from which it gets none (the plate moved there).
HIGH = 0.04
#: Strength range and default of ``--temporal`` and of the node's Temporal knob (0 = off).
STRENGTH_MIN = 0.0
STRENGTH_MAX = 1.0
STRENGTH_DEFAULT = 0.0
#: What the strength means, for ``--help`` and the knob's tooltip.
TOOLTIP = ("Temporal smoothing, 0 (off) to 1: averages the key of each frame with those of the frames before and "
           "after it where the plate did not change (a 5 x 5 pixel neighbourhood), so a still edge stops "
           "shimmering and a moving edge stays sharp. Each frame needs its neighbours' keys: the network runs on "
           "them too (once per frame over a sequence).")


def nuke_expressions(strength: str) -> Dict[str, str]:
    """The node recipe's per-pixel expressions, in Nuke's expression syntax, for the gizmo's nodes.

    ``strength`` is the expression of the strength knob (e.g. ``"parent.temporal"``). Keys:

    * ``difference``: MergeExpression, A = the neighbour's plate (TimeOffset -1 or +1 of the
      Inference node's input), B = frame t's plate; every channel;
    * ``add.r`` .. ``add.a``: MergeExpression, A + B: the box sum of ``difference`` over its copies
      shifted by -RADIUS..RADIUS pixels in x, then of that sum in y (BOX_TAPS terms);
    * ``weight``: Expression on the box sum, every channel (it divides by BOX_TAPS);
    * ``weighted.r`` .. ``weighted.a``: MergeExpression, A = a weight, B = that neighbour's output
      (TimeOffset of the Inference node's output);
    * ``sum.r`` .. ``sum.a``: MergeExpression, A = weighted t-1, B = frame t's output; then again
      with A = weighted t+1, B = that sum (this order is the pipeline's: ``(O + w O_prev) + w O_next``);
    * ``denominator``: MergeExpression, A = weight t-1, B = weight t+1, every channel;
    * ``result.r`` .. ``result.a``: MergeExpression, A = the sum, B = the denominator.

    tests/model/keying/test_temporal.py evaluates these strings against :func:`smooth`.
    """
    span = HIGH - LOW
    out: Dict[str, str] = {
        "difference": "(abs(Ar-Br)+abs(Ag-Bg)+abs(Ab-Bb))/3",
        "weight": f"({strength})*clamp(({HIGH:g}-clamp(a/{BOX_TAPS},0,1))/{span:g},0,1)",
        "denominator": "1+Aa+Ba",
    }
    for c in "rgba":
        out[f"add.{c}"] = f"A{c}+B{c}"
        out[f"weighted.{c}"] = f"Aa*B{c}"
        out[f"sum.{c}"] = f"B{c}+A{c}"
        out[f"result.{c}"] = f"A{c}/Ba" if c != "a" else "clamp(Aa/Ba,0,1)"
    return out


def check_strength(strength: float) -> float:
    """``strength`` as a float, or ValueError naming the value and the range."""
    value = float(strength)
    if not (STRENGTH_MIN <= value <= STRENGTH_MAX):  # NaN fails too
        raise ValueError(f"temporal strength must be in [{STRENGTH_MIN:g}, {STRENGTH_MAX:g}], got {strength!r}")
    return value
