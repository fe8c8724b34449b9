"""Matte clean-up for the reference pipeline (DESIGN.md, postprocess step 3).

Not part of the Nuke wrapper: a Nuke artist cleans mattes with Nuke's own tools.
"""

from __future__ import annotations

import numpy as np

from corridorkey_model.frames_io import cv2

#: Defaults of the despeckle step (DESIGN.md): minimum island area, dilation radius, blur kernel.
DESPECKLE_SIZE = 400
DESPECKLE_DILATE_RADIUS = 25
DESPECKLE_BLUR_KERNEL = 11


def despeckle(alpha: np.ndarray, min_area: int = DESPECKLE_SIZE, dilate_radius: int = DESPECKLE_DILATE_RADIUS,
              blur_kernel: int = DESPECKLE_BLUR_KERNEL) -> np.ndarray:
    """Remove small islands from an ``H x W`` float alpha.

    Threshold ``alpha > 0.5``, keep the 8-connected components of area
    ``>= min_area``, dilate them with an ellipse of radius ``dilate_radius``,
    blur with a ``blur_kernel`` Gaussian, and multiply ``alpha`` by that mask
    (clipped to [0, 1], so alpha stays in range).
    """
    alpha = np.asarray(alpha, dtype=np.float32)
    solid = (alpha > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the background
    mask = keep[labels].astype(np.uint8)
    if dilate_radius > 0:
        d = 2 * dilate_radius + 1
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)))
    soft = mask.astype(np.float32)
    if blur_kernel > 1:
        soft = cv2.GaussianBlur(soft, (blur_kernel, blur_kernel), 0)
    return alpha * np.clip(soft, 0.0, 1.0)  # the blur's rounding can reach 1 + 1e-7
