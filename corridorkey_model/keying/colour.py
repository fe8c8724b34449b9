"""Colour math, as small pure functions.

Each formula is written once, for torch tensors, in TorchScript-compatible
form (the exported Nuke wrapper compiles these very functions). The ``*_np``
twins take NumPy arrays (images as ``H x W x C``) and run the same torch code
on a zero-copy view, so there is no second copy of any formula.

Conventions: torch images are ``[..., C, H, W]`` (channel axis -3), NumPy images
are ``[H, W, C]`` (channel axis -1). Colours are RGB, floats.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor


def _imagenet_stats() -> Tuple[List[float], List[float]]:
    """ImageNet mean and std, written once (a function so TorchScript can read them)."""
    return [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


#: ImageNet statistics used to normalise the network's RGB input.
IMAGENET_MEAN = tuple(_imagenet_stats()[0])
IMAGENET_STD = tuple(_imagenet_stats()[1])

#: Checkerboard of the preview comp: tile size in pixels and the two sRGB values.
CHECKER_TILE = 128
CHECKER_DARK = 0.15
CHECKER_LIGHT = 0.55


# --------------------------------------------------------------------------- torch


def linear_to_srgb(x: Tensor) -> Tensor:
    """Encode linear light to sRGB (IEC 61966-2-1 piecewise curve).

    ``x`` is clamped at 0 first; values above 1 follow the power segment.
    """
    x = torch.clamp(x, min=0.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * torch.pow(x, 1.0 / 2.4) - 0.055)


def srgb_to_linear(x: Tensor) -> Tensor:
    """Decode sRGB to linear light; the inverse of :func:`linear_to_srgb` on ``x >= 0``.

    ``x`` is clamped at 0 first.
    """
    x = torch.clamp(x, min=0.0)
    return torch.where(x <= 0.04045, x / 12.92, torch.pow((x + 0.055) / 1.055, 2.4))


def despill(fg: Tensor, amount: float, screen_channel: int = 1) -> Tensor:
    """Luminance-preserving despill of an sRGB foreground ``[..., 3, H, W]`` on the screen's channel.

    With ``S`` the screen channel (``screen_channel``: 1 green, 2 blue) and ``A``, ``B``
    the other two: ``spill = max(S - (A + B) / 2, 0)``; ``S' = S - spill``,
    ``A' = A + spill / 2``, ``B' = B + spill / 2``; the result is
    ``lerp(fg, despilled, amount)`` with ``amount`` clamped to [0, 1]. (The knob's
    0-10 scale maps to ``amount`` in :func:`corridorkey_model.keying.frame.despill_amount`.)
    """
    amount = min(max(amount, 0.0), 1.0)
    if screen_channel < 0 or screen_channel > 2:
        raise ValueError("screen_channel must be 0, 1 or 2")
    first = 1 if screen_channel == 0 else 0  # the two other channels, in order
    second = 1 if screen_channel == 2 else 2
    screen = fg.narrow(-3, screen_channel, 1)
    spill = torch.clamp(screen - (fg.narrow(-3, first, 1) + fg.narrow(-3, second, 1)) * 0.5, min=0.0)
    channels: List[Tensor] = []
    for c in range(3):
        if c == screen_channel:
            channels.append(screen - spill)
        else:
            channels.append(fg.narrow(-3, c, 1) + spill * 0.5)
    despilled = torch.cat(channels, dim=-3)
    return fg + (despilled - fg) * amount


def premultiply(rgb: Tensor, alpha: Tensor) -> Tensor:
    """``rgb * alpha`` for ``rgb [..., C, H, W]`` and ``alpha [..., 1, H, W]``."""
    return rgb * alpha


def resize_bilinear_aa(x: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resize of ``[N, C, H, W]`` with antialiasing, ``align_corners=False``.

    The same arithmetic as torchvision v2 ``resize(..., antialias=True)`` on
    float tensors. The aten op is called directly: scripting
    ``F.interpolate`` would compile every mode of it, some of which older
    libtorch runtimes (Nuke's) do not have. Half precision is computed in
    float32 (CPU kernels for it are missing in older runtimes) and cast back.
    """
    if x.shape[-2] == height and x.shape[-1] == width:
        return x
    if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
        y = torch.ops.aten._upsample_bilinear2d_aa(x.float(), [height, width], False, None, None)
        return y.to(x.dtype)
    return torch.ops.aten._upsample_bilinear2d_aa(x, [height, width], False, None, None)


def imagenet_normalize(rgb: Tensor) -> Tensor:
    """``(rgb - mean) / std`` per channel, for ``[N, 3, H, W]``; constants follow the input's device and dtype."""
    mean_values, std_values = _imagenet_stats()  # not the module-level tuples: TorchScript cannot read globals
    mean = torch.tensor(mean_values, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    std = torch.tensor(std_values, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb - mean) / std


# --------------------------------------------------------------------------- NumPy


def _hwc_to_torch(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).movedim(-1, -3)


def _torch_to_hwc(t: Tensor) -> np.ndarray:
    return t.movedim(-3, -1).contiguous().numpy()


def linear_to_srgb_np(x: np.ndarray) -> np.ndarray:
    """:func:`linear_to_srgb` for NumPy arrays (any shape)."""
    return linear_to_srgb(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def srgb_to_linear_np(x: np.ndarray) -> np.ndarray:
    """:func:`srgb_to_linear` for NumPy arrays (any shape)."""
    return srgb_to_linear(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def despill_np(fg: np.ndarray, amount: float, screen_channel: int = 1) -> np.ndarray:
    """:func:`despill` for an ``H x W x 3`` NumPy image."""
    return _torch_to_hwc(despill(_hwc_to_torch(fg), float(amount), int(screen_channel)))


def premultiply_np(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb * alpha`` for ``H x W x C`` and ``H x W`` (or ``H x W x 1``) arrays."""
    if alpha.ndim == rgb.ndim - 1:
        alpha = alpha[..., None]
    return rgb * alpha


def checkerboard_np(height: int, width: int, tile: int = CHECKER_TILE, dark: float = CHECKER_DARK,
                    light: float = CHECKER_LIGHT, dtype: type = np.float32) -> np.ndarray:
    """An ``H x W x 3`` sRGB checkerboard; the top-left tile is ``dark``."""
    ys = (np.arange(height) // tile)[:, None]
    xs = (np.arange(width) // tile)[None, :]
    board = np.where((ys + xs) % 2 == 0, dark, light).astype(dtype)
    return np.repeat(board[..., None], 3, axis=-1)


def composite_over_checkerboard_np(fg_srgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Preview comp: straight sRGB ``fg`` over the checkerboard, mixed in linear, returned as sRGB."""
    h, w = alpha.shape[:2]
    a = alpha if alpha.ndim == 3 else alpha[..., None]
    bg = srgb_to_linear_np(checkerboard_np(h, w, dtype=fg_srgb.dtype))
    comp = srgb_to_linear_np(fg_srgb) * a + bg * (1.0 - a)
    return linear_to_srgb_np(comp)


__all__: List[str] = [
    "IMAGENET_MEAN", "IMAGENET_STD", "CHECKER_TILE", "CHECKER_DARK", "CHECKER_LIGHT",
    "linear_to_srgb", "srgb_to_linear", "despill", "premultiply", "resize_bilinear_aa", "imagenet_normalize",
    "linear_to_srgb_np", "srgb_to_linear_np", "despill_np", "premultiply_np", "checkerboard_np",
    "composite_over_checkerboard_np",
]
