"""Motion-gated temporal smoothing of the keyed frame (``corridorkey run --temporal``; the node's Temporal knob).

CorridorKey keys each frame on its own, so sensor noise and compression make soft
edges shimmer where nothing moved. This filter averages the ``.pt``'s raw output
(``[N, 4, H, W]``: straight sRGB fg in 0-2, linear alpha in 3) of frame t with those of
t-1 and t+1, each neighbour weighted by how little the plate changed there:

* ``d = (|Pr - Qr| + |Pg - Qg| + |Pb - Qb|) / 3``: the plate of the neighbour ``P``
  against that of frame t ``Q``, per pixel, as the Inference node receives them
  (network colour space); NaN and +-inf count as 0, as in the network's preprocess;
* ``m = clamp(box(d), 0, 1)``: the mean of ``d`` over a ``(2 RADIUS + 1)`` square,
  the frame's edge pixels repeated outwards (Nuke repeats the edge pixels of a
  bounding box; a Matrix node clips its result to 0-1);
* ``w = strength * clamp((HIGH - m) / (HIGH - LOW), 0, 1)``: full weight where the
  plate changed no more than noise does (``m <= LOW``), none where it moved (``m >= HIGH``);
* ``out = (O_t + w_prev O_prev + w_next O_next) / (1 + w_prev + w_next)`` on all four
  channels, alpha then clamped to [0, 1] (rounding only).

A missing neighbour (before the clip's first frame, after its last, a gap in the
frame numbers) is the frame itself: its plate difference is 0, so it counts with
weight ``strength``, which is what Nuke computes when a Read holds its first or
last frame. ``strength = 0`` is off: the pipeline then never calls this module and
every output is bit-identical to a run without it.

Small pure functions on ``[N, C, H, W]`` float tensors; constants here, once. The
formula is in docs/DESIGN.md (section 3.7).

The Nuke facts the formula is shaped by (the gizmo builds it from these nodes):

* TimeOffset shifts its input in time by whole frames ("time offset (frames)"):
  https://learn.foundry.com/nuke/content/comp_environment/temporal_operations/editing_clips.html
* MergeExpression: per-pixel expressions of two inputs, channels ``Ar``..``Aa``, ``Br``..``Ba``:
  https://learn.foundry.com/nuke/content/reference_guide/merge_nodes/mergeexpression.html
* ``abs(x)`` and ``clamp(x, min, max)`` in Nuke expressions:
  https://learn.foundry.com/nuke/content/comp_environment/expressions/adding_math_functions.html
* The box: the gizmo sums whole-pixel shifted copies of ``d`` (Transform nodes, integer
  ``translate``, ``filter impulse``: no resampling) with MergeExpression nodes, then divides by
  the tap count in the weight's expression; the clamp of the mean to [0, 1] changes no weight
  (a mean above HIGH already gives 0). (A Matrix node would hold the kernel in one node, but its
  script syntax could not be checked against a saved script, and a knob Nuke cannot parse breaks
  the whole gizmo.)
* Outside a bounding box Nuke repeats the edge pixels ("whatever is outside the bounding box
  area is replicated towards the edges of the image"), hence the replicate padding (a shifted
  copy's uncovered edge repeats its edge pixel):
  https://learn.foundry.com/nuke/content/comp_environment/reformatting_elements/adjusting_bbox.html
* Before its first frame a clip holds the first frame by default (TimeClip's ``before``/``after``,
  default ``hold``): https://learn.foundry.com/nuke/content/reference_guide/time_nodes/timeclip.html
  (the Read node's own before/after knobs are assumed to behave the same: not verified here).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from corridorkey_model.keying.temporal_spec import (  # noqa: F401 (the filter's constants, re-exported)
    BOX_TAPS,
    HIGH,
    LOW,
    RADIUS,
    STRENGTH_DEFAULT,
    STRENGTH_MAX,
    STRENGTH_MIN,
    TOOLTIP,
    check_strength,
    nuke_expressions,
)


def plate_difference(plate: Tensor, other: Tensor) -> Tensor:
    """``[N, 3, H, W]`` x 2 -> ``[N, 1, H, W]``: the mean over R, G, B of ``|plate - other|`` (non-finite as 0)."""
    a = torch.nan_to_num(plate.float(), nan=0.0, posinf=0.0, neginf=0.0)
    b = torch.nan_to_num(other.float(), nan=0.0, posinf=0.0, neginf=0.0)
    d = (a - b).abs()
    return (d[:, 0:1] + d[:, 1:2] + d[:, 2:3]) / 3.0


def box_mean(x: Tensor, radius: int = RADIUS) -> Tensor:
    """Mean of ``x`` over a ``(2 radius + 1)`` square around each pixel, edge pixels repeated; clamped to [0, 1]."""
    k = 2 * radius + 1
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, k, stride=1).clamp(0.0, 1.0)


def neighbour_weight(motion: Tensor, strength: float, low: float = LOW, high: float = HIGH) -> Tensor:
    """``strength * clamp((high - motion) / (high - low), 0, 1)``: 1 x strength for a still plate, 0 where it moved."""
    return strength * ((high - motion) / (high - low)).clamp(0.0, 1.0)


def weight(plate: Tensor, neighbour_plate: Tensor, strength: float) -> Tensor:
    """A neighbour's weight per pixel ``[N, 1, H, W]`` from its plate and frame t's."""
    return neighbour_weight(box_mean(plate_difference(neighbour_plate, plate)), strength)


def smooth(out: Tensor, plate: Tensor, prev_out: Optional[Tensor], prev_plate: Optional[Tensor],
           next_out: Optional[Tensor], next_plate: Optional[Tensor], strength: float) -> Tensor:
    """Frame t's smoothed output ``[N, 4, H, W]`` from the raw outputs and plates of t-1, t and t+1.

    A neighbour given as None is missing: the frame itself stands in for it (weight ``strength``).
    """
    strength = check_strength(strength)
    out = out.float()
    prev_out, prev_plate = (out, plate) if prev_out is None or prev_plate is None else (prev_out.float(), prev_plate)
    next_out, next_plate = (out, plate) if next_out is None or next_plate is None else (next_out.float(), next_plate)
    w_prev = weight(plate, prev_plate, strength)
    w_next = weight(plate, next_plate, strength)
    num = out + w_prev * prev_out + w_next * next_out
    den = 1.0 + w_prev + w_next
    result = num / den
    return torch.cat([result[:, 0:3], result[:, 3:4].clamp(0.0, 1.0)], dim=1)


def _nchw(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).permute(2, 0, 1)[None]


def smooth_np(out: np.ndarray, plate: np.ndarray, prev_out: Optional[np.ndarray], prev_plate: Optional[np.ndarray],
              next_out: Optional[np.ndarray], next_plate: Optional[np.ndarray], strength: float) -> np.ndarray:
    """:func:`smooth` on ``H x W x C`` arrays (outputs ``H x W x 4``, plates ``H x W x 3``); ``H x W x 4`` float32."""
    def opt(a: Optional[np.ndarray]) -> Optional[Tensor]:
        return None if a is None else _nchw(a)

    with torch.no_grad():
        result = smooth(_nchw(out), _nchw(plate), opt(prev_out), opt(prev_plate), opt(next_out), opt(next_plate),
                        strength)
    return np.ascontiguousarray(result[0].permute(1, 2, 0).numpy())
