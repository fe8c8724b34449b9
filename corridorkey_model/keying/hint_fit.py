"""When a hint of another size is fitted to its plate's format: the rule the pipeline
(``frame_io.fit_to_format``, ``clips.load_clip``) and the Nuke gizmo's Status line share. Pure
Python: the gizmo's generator imports it in a Python that has only click.
"""

from __future__ import annotations

from typing import Tuple

#: A hint of another size is fitted to its plate's format when the two have the same aspect: the
#: hint scaled to the plate's width (or height) must come within this many pixels of the plate's
#: height (or width), the rounding of a scaled size (a 960x540 hint of a 1921x1081 plate: 1080.56).
HINT_FIT_TOLERANCE_PX = 1.0


def same_aspect(size: Tuple[int, int], target: Tuple[int, int], tolerance: float = HINT_FIT_TOLERANCE_PX) -> bool:
    """Whether ``size`` (width, height) scaled to ``target`` misses it by at most ``tolerance`` pixels on one axis."""
    (w, h), (tw, th) = size, target
    if min(w, h, tw, th) <= 0:
        return False
    return abs(h * tw / w - th) <= tolerance or abs(w * th / h - tw) <= tolerance
