"""Test support: synthetic stand-ins for tests, smoke runs, validation and benchmarks.

The released weights cannot be fetched everywhere, so tests, ``--random-init``
and benchmarks use a GreenFormer with random weights (NOT a keyer) saved in
the released file's layout, and synthetic green-screen plates. Everything is
seeded and reproducible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from corridorkey_model.network.greenformer import GreenFormer

#: What both CLIs print, in red, for ``--random-init``.
RANDOM_INIT_WARNING = (
    "WARNING: --random-init uses a network with RANDOM WEIGHTS. It is NOT a keyer: its output is noise. "
    "Use it only to smoke-test the export, Nuke's Inference node or a pipeline; never ship it."
)

#: Layouts seen in the wild (see :mod:`corridorkey_model.network.checkpoint`).
LAYOUTS = ("bare", "state_dict", "model_state_dict", "model", "compiled")


@torch.no_grad()
def randomize_(model: GreenFormer, seed: int = 0) -> GreenFormer:
    """Give every path of ``model`` a visible effect: random BatchNorm statistics and affine
    parameters, and a refiner output layer large enough that ``refiner_strength`` matters."""
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            module.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            module.weight.copy_(torch.rand(c, generator=g) + 0.5)
            module.bias.copy_(torch.randn(c, generator=g) * 0.2)
            module.num_batches_tracked.fill_(1000)
    final = model.refiner.final
    final.weight.copy_(torch.randn(final.weight.shape, generator=g) * 0.02)
    final.bias.copy_(torch.randn(final.bias.shape, generator=g) * 0.1)
    return model


def make_random_model(img_size: int, seed: int = 0) -> GreenFormer:
    """A random-weight GreenFormer at ``img_size`` (eval mode). Not a keyer."""
    torch.manual_seed(seed)
    return randomize_(GreenFormer(img_size), seed).eval()


def save_checkpoint(model: GreenFormer, path: Path, layout: str = "bare", half: bool = False) -> Path:
    """Save ``model`` the way checkpoints come in the wild (``layout`` from :data:`LAYOUTS`).

    ``.safetensors`` paths are written with safetensors (bare layout only).
    """
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous()
             for k, v in model.state_dict().items()}
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
        return path
    if layout == "bare":
        obj = state
    elif layout == "compiled":
        obj = {"_orig_mod." + k: v for k, v in state.items()}
    elif layout in ("state_dict", "model_state_dict", "model"):
        obj = {layout: state, "epoch": 7}
    else:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    torch.save(obj, str(path))
    return path


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def green_screen_plate(height: int, width: int, seed: int = 0, linear: bool = False,
                       extremes: bool = False, screen_channel: int = 1) -> np.ndarray:
    """A ``H x W x 4`` float32 plate: a soft-edged subject on a screen with spill, and a rough hint in channel 3.

    The screen is green (``screen_channel`` 1) or blue (2: the screen colour and the spill
    have green and blue swapped). RGB is sRGB-encoded unless ``linear``. ``extremes`` adds
    superwhite (up to 8.0) and negative (down to -0.5) patches, as Nuke plates can hold.
    """
    if screen_channel not in (1, 2):
        raise ValueError(f"screen_channel must be 1 (green) or 2 (blue), not {screen_channel!r}")
    order = [0, 1, 2] if screen_channel == 1 else [0, 2, 1]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * rng.uniform(0.4, 0.6), width * rng.uniform(0.4, 0.6)
    ry, rx = height * rng.uniform(0.22, 0.32), width * rng.uniform(0.18, 0.3)
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)  # 1 on the ellipse
    soft = max(0.04, 3.0 / max(1.0, min(rx, ry)))
    alpha = 1.0 - _smoothstep(1.0 - soft, 1.0 + soft, d)
    # hair-like wisps: a noisy band outside the edge
    wisps = _smoothstep(0.6, 1.0, rng.random((height, width)).astype(np.float32)) * \
        (1.0 - _smoothstep(1.0, 1.2, d)) * (d > 1.0)
    alpha = np.clip(alpha + 0.5 * wisps, 0.0, 1.0)

    screen = np.array([0.08, 0.62, 0.16], np.float32)[order] + rng.normal(0, 0.01, (height, width, 3)).astype(np.float32)
    skin = np.array([0.78, 0.55, 0.42], np.float32)
    cloth = np.array([0.2, 0.25, 0.55], np.float32)
    mix = _smoothstep(-0.3, 0.3, (yy - cy) / ry)[..., None]
    subject = skin * (1 - mix) + cloth * mix
    spill = (0.25 * _smoothstep(0.5, 1.0, d))[..., None] * np.array([-0.05, 0.2, -0.05], np.float32)[order]
    subject = np.clip(subject + spill, 0.0, 1.0)
    rgb = subject * alpha[..., None] + screen * (1.0 - alpha[..., None])
    if extremes:
        rgb[: max(1, height // 6), : max(1, width // 5)] = 8.0  # superwhite (a practical light)
        rgb[-max(1, height // 7):, -max(1, width // 6):, 1] = -0.5  # negative lobe (a resampled edge)
    if linear:
        from corridorkey_model.keying.colour import srgb_to_linear_np

        rgb = np.where((rgb >= 0) & (rgb <= 1), srgb_to_linear_np(rgb), rgb)
    hint = (d < 1.15).astype(np.float32)  # rough: a hard blob a little larger than the subject
    return np.concatenate([rgb, hint[..., None]], axis=-1).astype(np.float32)


def plate_tensor(plate: np.ndarray, device: Optional[torch.device] = None) -> torch.Tensor:
    """``H x W x 4`` NumPy plate -> ``[1, 4, H, W]`` tensor (the Inference node's layout)."""
    t = torch.from_numpy(np.ascontiguousarray(plate)).permute(2, 0, 1)[None].contiguous()
    return t if device is None else t.to(device)
