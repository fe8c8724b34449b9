"""The automatic rough hint (knob ``auto_hint``; docs/DESIGN.md §3.2a).

CorridorKey does not need a good hint: a rough matte, 1 on the subject's solid
interior and 0 on the screen, pulled a little inside the subject's edge, is enough
for the network to find the edge. This module makes one from the plate itself with
a classical screen-difference key, at the model resolution S on the already
resized, sRGB-encoded plate (the network's own input, before normalisation):

1. **Screen estimate** (per image, on at most ~256 x 256 samples of the frame):
   with ``S`` the screen channel (green 1, blue 2) and ``A``, ``B`` the other two,
   ``d = S - max(A, B)``. The constants are :func:`hint_params` (one place). The screen candidates are the pixels with
   ``d >= candidate_share * q98(d)``; the screen's chroma ``k_c`` and level
   ``k_l`` are the medians over them of ``c = d / S`` and of ``S``. A frame whose
   ``q98(d)`` is below ``min_screen_difference`` holds no screen: it is all subject.
2. **Screen likeness** per pixel, from the chroma ratio ``u = c / k_c``, the level
   ratio ``v = S / k_l`` and the hue distance ``h = |(A / S, B / S) - (k_a, k_b)|``
   (``k_a``, ``k_b``: the screen's medians of ``A / S`` and ``B / S``):
   ``s = ramp(u; chroma_low, chroma_high) * (1 - (1 - near) * dark) * ramp(v; level_low, level_high)``
   with ``near = 1 - ramp(h; hue_near, hue_far)``, ``dark = 1 - ramp(v; hue_dark_high, hue_dark_low)``
   and ``ramp(x; lo, hi) = clamp((x - lo) / (hi - lo), 0, 1)``. The ratios do not change
   when the screen is brighter, darker, shadowed or unevenly lit (a gain on all three
   channels cancels, also through the sRGB curve), so exposure, gradients and shadows
   keep ``u`` near 1 and ``h`` near 0; a subject's colours, spill included, have a much
   smaller ``c``. A dark greenish subject part can come near the screen's chroma: if it
   is darker than ``hue_dark_high`` of the screen and of another hue (a green shirt is
   more yellow or more neutral than the screen), it is subject; if it is darker than
   ``level_low`` it is subject whatever its hue. A shadow keeps the screen's hue.
3. **Solid**: ``s < solid_threshold``; **closing** (dilate then erode, radius
   ``close_radius * S``) fills small holes; **erosion** by ``erode_radius * S``
   pulls the matte inside the subject's edge; a **blur** (two box passes of radius
   ``blur_radius * S``) softens it. The square structuring elements are separable
   max-pools; the frame border neither erodes nor dilates (a subject touching the
   frame edge stays solid there).
4. With ``auto_hint = 2`` (:data:`HINT_GARBAGE_MATTE`) :func:`corridorkey_model.keying.frame.preprocess`
   multiplies the result by the hint channel clamped to [0, 1], a garbage matte: set walls, stands and
   the studio outside a screen that does not fill the frame are not screen-coloured, so the hint alone
   takes them for subject.

The whole computation runs in float32 on the input's device (half input is cast,
as the resize does) and the result is cast back to the input's dtype. Every tensor
takes its device and dtype from the input. Only ops torch 2.1 knows are used
(max/avg pooling, sort, quantile, gather), so the exported ``.pt`` runs it in
Nuke's libtorch; the pipeline calls the very same function.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from corridorkey_model.keying.colour import resize_bilinear_aa

#: ``auto_hint`` values (the knob's enumeration).
HINT_FROM_INPUT = 0
HINT_AUTOMATIC = 1
HINT_GARBAGE_MATTE = 2  # the automatic hint times the hint channel (a garbage matte), clamped to [0, 1]


class HintParams(NamedTuple):
    """The hint's constants (docs/DESIGN.md §3.2a), read through :func:`hint_params` (TorchScript cannot
    read module globals)."""

    screen_quantile: float  # quantile of the screen difference d that stands for the screen's
    candidate_share: float  # screen candidates: d at least this share of that quantile
    min_screen_difference: float  # below this q98(d) (sRGB code values) the frame holds no screen
    chroma_low: float  # chroma ratio c / k_c at or below this: not screen at all
    chroma_high: float  # ... at or above this: fully screen (linear in between)
    level_low: float  # level ratio S / k_l at or below this: not screen at all (too dark for a lit screen)
    level_high: float  # ... at or above this: as bright as a screen (linear in between)
    hue_near: float  # distance of (A / S, B / S) from the screen's at or below this: the screen's hue
    hue_far: float  # ... at or above this: another colour, not screen (linear in between)
    hue_dark_high: float  # the hue test applies fully at or below this level ratio S / k_l ...
    hue_dark_low: float  # ... and not at all at or above this one (bright pixels: edges, spill)
    solid_threshold: float  # screen likeness below this is solid subject
    close_radius: float  # closing radius, fraction of S
    erode_radius: float  # erosion radius, fraction of S
    blur_radius: float  # radius of each of the two box-blur passes, fraction of S
    stats_size: int  # the screen statistics use every max(1, S // stats_size)-th pixel
    work_size: int  # the key and its morphology run at min(S, work_size), then are resized back to S
    eps: float  # guards a division by a channel value of 0


def hint_params() -> HintParams:
    """The hint's constants, written once."""
    return HintParams(screen_quantile=0.98, candidate_share=0.5, min_screen_difference=0.04,
                      chroma_low=0.2, chroma_high=0.6, level_low=0.3, level_high=0.7,
                      hue_near=0.06, hue_far=0.16, hue_dark_high=0.65, hue_dark_low=0.85,
                      solid_threshold=0.3, close_radius=0.005, erode_radius=0.01, blur_radius=0.005,
                      stats_size=256, work_size=512, eps=1e-4)


#: The constants, for Python readers (docs, benchmark, tests).
PARAMS = hint_params()


def ramp(x: Tensor, low: float, high: float) -> Tensor:
    """``clamp((x - low) / (high - low), 0, 1)``: 0 at or below ``low``, 1 at or above ``high``."""
    return torch.clamp((x - low) / (high - low), 0.0, 1.0)


def radius_px(fraction: float, size: int) -> int:
    """``fraction * size`` rounded to whole pixels, at least 1."""
    return max(1, int(fraction * float(size) + 0.5))


def other_channels(screen_channel: int) -> Tuple[int, int]:
    """The two RGB channels that are not the screen's, in order."""
    if screen_channel < 0 or screen_channel > 2:
        raise ValueError("screen_channel must be 0, 1 or 2")
    first = 1 if screen_channel == 0 else 0
    second = 1 if screen_channel == 2 else 2
    return first, second


def screen_difference(rgb: Tensor, screen_channel: int) -> Tensor:
    """``S - max(A, B)`` for ``[N, 3, H, W]`` RGB: ``[N, 1, H, W]`` (the classic colour-difference key)."""
    a, b = other_channels(screen_channel)
    screen = rgb.narrow(1, screen_channel, 1)
    return screen - torch.maximum(rgb.narrow(1, a, 1), rgb.narrow(1, b, 1))


def masked_median(values: Tensor, mask: Tensor) -> Tensor:
    """Lower median of the 1-d ``values`` where ``mask`` is true (0-d); +inf when none is.

    Sorting with the others set to +inf keeps it on the device (no data-dependent shape).
    """
    inf = torch.full_like(values, float("inf"))
    ordered, _ = torch.sort(torch.where(mask, values, inf))
    count = mask.sum()
    index = torch.clamp(torch.div(count - 1, 2, rounding_mode="floor"), min=0)
    return ordered.gather(0, index.view(1)).view(())


def estimate_screen(rgb: Tensor, screen_channel: int) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The screen of one image ``[3, H, W]`` (float32): ``(chroma k_c, level k_l, found, k_a, k_b)``, 0-d
    tensors; ``k_a``, ``k_b`` are the screen's ``A / S`` and ``B / S``.

    ``found`` is 1.0 when the frame holds a screen (``q98(d) >= min_screen_difference``), else 0.0.
    """
    p = hint_params()
    step = max(1, max(int(rgb.shape[-2]), int(rgb.shape[-1])) // p.stats_size)
    sample = rgb[:, ::step, ::step].unsqueeze(0)
    d = screen_difference(sample, screen_channel).flatten()
    level = sample[0, screen_channel].flatten()
    chroma = d / torch.clamp(level, min=p.eps)
    d_high = torch.quantile(d, p.screen_quantile)
    candidates = d >= d_high * p.candidate_share
    found = (d_high >= p.min_screen_difference).to(rgb.dtype)
    k_c = torch.clamp(masked_median(chroma, candidates), min=p.eps)
    k_l = torch.clamp(masked_median(level, candidates), min=p.eps)
    a, b = other_channels(screen_channel)
    k_a = masked_median(sample[0, a].flatten() / torch.clamp(level, min=p.eps), candidates)
    k_b = masked_median(sample[0, b].flatten() / torch.clamp(level, min=p.eps), candidates)
    return k_c, k_l, found, k_a, k_b


def screen_likeness(rgb: Tensor, screen_channel: int) -> Tensor:
    """``s`` in [0, 1] per pixel of ``[N, 3, H, W]`` float32 sRGB: 1 = screen, 0 = subject. ``[N, 1, H, W]``."""
    p = hint_params()
    rgb = torch.clamp(rgb, 0.0, 1.0)
    d = screen_difference(rgb, screen_channel)
    level = rgb.narrow(1, screen_channel, 1)
    safe_level = torch.clamp(level, min=p.eps)
    chroma = d / safe_level
    a, b = other_channels(screen_channel)
    ratio_a = rgb.narrow(1, a, 1) / safe_level
    ratio_b = rgb.narrow(1, b, 1) / safe_level
    out = []
    for i in range(int(rgb.shape[0])):
        k_c, k_l, found, k_a, k_b = estimate_screen(rgb[i], screen_channel)
        u = chroma[i] / k_c  # chroma ratio: ~1 on the screen, lit or not
        v = level[i] / k_l  # level ratio
        hue = torch.sqrt((ratio_a[i] - k_a) ** 2 + (ratio_b[i] - k_b) ** 2)  # 0: the screen's hue
        near = 1.0 - ramp(hue, p.hue_near, p.hue_far)
        dark = 1.0 - ramp(v, p.hue_dark_high, p.hue_dark_low)
        by_colour = ramp(u, p.chroma_low, p.chroma_high) * (1.0 - (1.0 - near) * dark)
        out.append(by_colour * ramp(v, p.level_low, p.level_high) * found)
    return torch.stack(out, dim=0)


def dilate(mask: Tensor, radius: int) -> Tensor:
    """Max over a ``(2r+1)`` square (separable); outside the frame counts as nothing. ``[N, 1, H, W]``."""
    k = 2 * radius + 1
    x = F.max_pool2d(mask, kernel_size=[1, k], stride=[1, 1], padding=[0, radius])
    return F.max_pool2d(x, kernel_size=[k, 1], stride=[1, 1], padding=[radius, 0])


def erode(mask: Tensor, radius: int) -> Tensor:
    """Min over a ``(2r+1)`` square; outside the frame counts as nothing (the border does not erode)."""
    return -dilate(-mask, radius)


def box_blur(x: Tensor, radius: int) -> Tensor:
    """Mean over a ``(2r+1)`` square, averaging only pixels inside the frame. ``[N, 1, H, W]``."""
    k = 2 * radius + 1
    x = F.avg_pool2d(x, kernel_size=[1, k], stride=[1, 1], padding=[0, radius], count_include_pad=False)
    return F.avg_pool2d(x, kernel_size=[k, 1], stride=[1, 1], padding=[radius, 0], count_include_pad=False)


def rough_hint(rgb: Tensor, screen_channel: int) -> Tensor:
    """The automatic hint of ``[N, 3, S, S]`` sRGB-encoded RGB: ``[N, 1, S, S]`` in [0, 1], the input's dtype.

    See the module docstring (and docs/DESIGN.md §3.2a) for the formula.
    """
    p = hint_params()
    x = rgb.float()
    height, width = int(x.shape[-2]), int(x.shape[-1])
    size = max(height, width)
    if size > p.work_size:  # a rough matte needs no more pixels: the cost stays flat above work_size
        x = resize_bilinear_aa(x, max(1, (height * p.work_size + size // 2) // size),
                               max(1, (width * p.work_size + size // 2) // size))
        size = max(int(x.shape[-2]), int(x.shape[-1]))
    solid = (screen_likeness(x, screen_channel) < p.solid_threshold).to(x.dtype)
    close = radius_px(p.close_radius, size)
    solid = erode(dilate(solid, close), close)
    core = erode(solid, radius_px(p.erode_radius, size))
    blur = radius_px(p.blur_radius, size)
    hint = resize_bilinear_aa(box_blur(box_blur(core, blur), blur), height, width)
    return torch.clamp(hint, 0.0, 1.0).to(rgb.dtype)


__all__ = [
    "HINT_FROM_INPUT", "HINT_AUTOMATIC", "HINT_GARBAGE_MATTE",
    "HintParams", "hint_params", "PARAMS", "ramp", "radius_px", "other_channels",
    "screen_difference", "masked_median", "estimate_screen", "screen_likeness", "dilate", "erode", "box_blur",
    "rough_hint",
]
