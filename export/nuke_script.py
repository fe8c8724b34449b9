"""Nuke script (.nk / .gizmo) syntax: quoting, numbers, user knobs and the ``serialiseKnob`` links.

The one place that knows how a value is written in a Nuke script (TCL words and braces).
Used by the gizmo generator (``gizmo.py``) and the parity kit (``parity.py``).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from corridorkey_model.keying.knobs import CAT_KNOBS, KnobSpec


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


def nk_path(path: str) -> str:
    """A path as Nuke's file knobs want it: forward slashes on every OS (a backslash is a TCL escape, so
    ``C:\\kit\\renders`` would read as ``C:kitrenders``; Foundry's docs and nukescripts/cattery.py write
    forward slashes). Relative paths stay relative."""
    return str(path).replace("\\", "/")


def nk_number(value: float) -> str:
    """Numbers the way Nuke writes them: ``1`` not ``1.0``."""
    return format(float(value), "g")


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


def serialise_knob_links(sources: Optional[Dict[str, str]] = None) -> str:
    """The Inference node's ``serialiseKnob`` text: every .cat knob (``CAT_KNOBS``) linked to a knob.

    ``{despill_strength:{parent.despill_strength};...}``: the form community Cattery gizmos
    use (PC_RobustVideoMatting.gizmo, RIFE.gizmo), one entry per knob of the spec. By default
    each links to the gizmo knob of the same name; ``sources`` names another knob for some
    (e.g. ``{"auto_hint": "ModelKnobs.auto_hint"}``: a sibling node's knob, as RIFE.gizmo's
    link knobs name ``C_STMap1.filter``).
    """
    sources = sources or {}
    unknown = set(sources) - {k.name for k in CAT_KNOBS}
    if unknown:
        raise ValueError(f"serialiseKnob links for knobs that are not in the knob spec: {sorted(unknown)}")
    return "{" + "".join(f"{k.name}:{{{sources.get(k.name, 'parent.' + k.name)}}};" for k in CAT_KNOBS) + "}"


def node_block(cls: str, knobs: Sequence[str], indent: str = " ") -> List[str]:
    return [f"{indent}{cls} {{"] + [f"{indent} {line}" for line in knobs] + [f"{indent}}}"]
