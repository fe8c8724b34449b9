"""The frame-level reference math: plate in, keyed frame out.

This is the numerics contract of ``docs/DESIGN.md`` in code, written once. The
reference pipeline (:mod:`corridorkey_model.pipeline.stages`), the export's
``--validate`` and the TorchScript wrapper all call these functions; they are
TorchScript-compatible so the wrapper compiles the very same code.

Tensor contract (the Nuke Inference node's):

* in:  ``[N, 4, H, W]`` float: plate RGB (sRGB-encoded or linear, values may
  leave [0, 1]) and the rough alpha hint in channel 3; NaN and +-inf count as 0;
* out: ``[N, 4, H, W]``: straight (unpremultiplied) sRGB foreground in 0-2,
  linear alpha in 3.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from corridorkey_model.keying.colour import despill, imagenet_normalize, linear_to_srgb, resize_bilinear_aa
from corridorkey_model.keying.despeckle import despeckle
from corridorkey_model.keying.hint import rough_hint

#: ``gamma_input`` values (the knob's enumeration).
GAMMA_SRGB = 0
GAMMA_LINEAR = 1


def finite_or_zero(x: Tensor) -> Tensor:
    """``x`` with NaN, +inf and -inf replaced by 0 (same shape, device and dtype)."""
    return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def preprocess(plate: Tensor, img_size: int, gamma_input: int, auto_hint: int = 0,
               screen_channel: int = 1) -> Tensor:
    """``[N, 4, H, W]`` plate + hint -> ``[N, 4, S, S]`` network input.

    0. non-finite values (NaN, +-inf: CG renders, damaged EXRs) count as 0, so that
       one bad pixel cannot spread through the resize and the attention to the
       whole frame;
    1. antialiased bilinear resize of plate and hint to ``S x S`` (aspect not kept);
    2. for a linear plate (``gamma_input == 1``) sRGB-encode the RGB *after* the resize;
    3. with ``auto_hint == 1`` the hint is made from the sRGB plate at S
       (:func:`corridorkey_model.keying.hint.rough_hint`, on the screen channel
       ``screen_channel``: 1 green, 2 blue) and the hint channel is ignored; with
       ``auto_hint == 2`` the hint channel is a garbage matte (1: the subject may be
       here, 0: never subject) and the hint is that automatic hint times the resized
       hint channel clamped to [0, 1];
    4. ImageNet-normalise the RGB; the hint is passed through.
    """
    plate = finite_or_zero(plate)
    x = resize_bilinear_aa(plate, img_size, img_size)
    rgb = x[:, 0:3]
    hint = x[:, 3:4]
    if gamma_input == 1:  # GAMMA_LINEAR; TorchScript cannot read a module-level int
        rgb = linear_to_srgb(rgb)
    if auto_hint == 1:  # HINT_AUTOMATIC
        hint = rough_hint(rgb, screen_channel)
    elif auto_hint == 2:  # HINT_GARBAGE_MATTE: the automatic hint, kept only where the matte lets the subject be
        hint = rough_hint(rgb, screen_channel) * torch.clamp(hint, 0.0, 1.0)
    return torch.cat([imagenet_normalize(rgb), hint], dim=1)


def combine(alpha_logits: Tensor, fg_logits: Tensor, delta_logits: Tensor,
            refiner_strength: float) -> Tuple[Tensor, Tensor]:
    """Final prediction from coarse logits and the refiner's delta logits.

    ``alpha = sigmoid(alpha_logits + r * delta[:, 0:1])``,
    ``fg = sigmoid(fg_logits + r * delta[:, 1:4])``, ``r = refiner_strength``.
    """
    alpha = torch.sigmoid(alpha_logits + delta_logits[:, 0:1] * refiner_strength)
    fg = torch.sigmoid(fg_logits + delta_logits[:, 1:4] * refiner_strength)
    return alpha, fg


def despill_amount(despill_strength: float) -> float:
    """The knob's 0-10 scale to the despill blend amount in [0, 1]."""
    return min(max(despill_strength / 10.0, 0.0), 1.0)


def postprocess(alpha: Tensor, fg: Tensor, height: int, width: int, despill_strength: float,
                despeckle_size: int = 0, screen_channel: int = 1) -> Tensor:
    """``[N, 1, S, S]`` alpha + ``[N, 3, S, S]`` sRGB fg -> ``[N, 4, H, W]`` (fg despilled, alpha).

    1. antialiased bilinear resize back to the plate size; alpha clamped to [0, 1]
       (a no-op but for rounding in the resize);
    2. despill on the sRGB fg, on the screen's channel (1 green, 2 blue);
    3. despeckle of the alpha at plate resolution (:func:`corridorkey_model.keying.despeckle.despeckle`,
       ``despeckle_size`` 0 = off).
    """
    out = resize_bilinear_aa(torch.cat([fg, alpha], dim=1), height, width)
    fg_out = despill(out[:, 0:3], despill_amount(despill_strength), screen_channel)
    alpha_out = despeckle(torch.clamp(out[:, 3:4], 0.0, 1.0), despeckle_size)
    return torch.cat([fg_out, alpha_out], dim=1)


def key_frame(model: torch.nn.Module, plate: Tensor, gamma_input: int = GAMMA_SRGB,
              despill_strength: float = 0.0, refiner_strength: float = 1.0, despeckle_size: int = 0,
              screen_channel: int = 1, auto_hint: int = 0) -> Tensor:
    """The reference: eager model + the contract's pre/post-processing.

    ``model`` is a :class:`~corridorkey_model.network.greenformer.GreenFormer` (or anything
    with its ``img_size`` and ``(alpha_logits, fg_logits, delta_logits)`` forward).
    """
    height, width = int(plate.shape[-2]), int(plate.shape[-1])
    x = preprocess(plate, int(model.img_size), gamma_input, auto_hint, screen_channel)
    alpha_logits, fg_logits, delta_logits = model(x)
    alpha, fg = combine(alpha_logits, fg_logits, delta_logits, refiner_strength)
    return postprocess(alpha, fg, height, width, despill_strength, despeckle_size, screen_channel)
