"""OpenCV despeckle: the tests' oracle for :mod:`corridorkey_model.keying.despeckle` (upstream's ``clean_matte_opencv``).

Not library code: the pipeline and the ``.pt`` both run the torch function; this is
what it must match (docs/DESIGN.md §3.4, step 3).
"""

from __future__ import annotations

import cv2
import numpy as np


def ellipse(radius: int) -> np.ndarray:
    """OpenCV's ``(2r+1) x (2r+1)`` ``MORPH_ELLIPSE`` structuring element, uint8 0/1."""
    d = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))


def component_areas(solid: np.ndarray) -> np.ndarray:
    """Area of each pixel's 8-connected component (0 off ``solid``): ``H x W`` bool -> int64."""
    _count, labels, stats, _ = cv2.connectedComponentsWithStats(solid.astype(np.uint8), connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    area[0] = 0  # label 0 is the background
    return area[labels]


def despeckle_mask(alpha: np.ndarray, min_area: int, dilate_radius: int = 25, blur_size: int = 11) -> np.ndarray:
    """``clip(GaussianBlur(dilate(kept islands of alpha > 0.5)), 0, 1)``, float32 ``H x W``."""
    solid = np.asarray(alpha) > 0.5
    mask = (component_areas(solid) >= max(min_area, 1)).astype(np.uint8)
    if dilate_radius > 0:
        mask = cv2.dilate(mask, ellipse(dilate_radius))
    soft = mask.astype(np.float32)
    if blur_size > 1:
        soft = cv2.GaussianBlur(soft, (blur_size, blur_size), 0)
    return np.clip(soft, 0.0, 1.0)


def despeckle_mask_8bit(alpha: np.ndarray, min_area: int, dilate_radius: int = 25, blur_size: int = 11) -> np.ndarray:
    """Upstream's own mask, as ``clean_matte_opencv`` computes it: the kept islands as an 8-bit 0/255 mask,
    dilated and blurred in 8 bits (OpenCV's fixed-point ``GaussianBlur`` for ``CV_8U``), divided by 255."""
    solid = np.asarray(alpha) > 0.5
    mask = (component_areas(solid) >= max(min_area, 1)).astype(np.uint8) * 255
    if dilate_radius > 0:
        mask = cv2.dilate(mask, ellipse(dilate_radius))
    if blur_size > 1:
        mask = cv2.GaussianBlur(mask, (blur_size, blur_size), 0)
    return mask.astype(np.float32) / 255.0


def despeckle(alpha: np.ndarray, min_area: int, dilate_radius: int = 25, blur_size: int = 11) -> np.ndarray:
    """Upstream's despeckle of an ``H x W`` float alpha (``min_area`` >= 1)."""
    alpha = np.asarray(alpha, dtype=np.float32)
    return alpha * despeckle_mask(alpha, min_area, dilate_radius, blur_size)


# --------------------------------------------------------------------------- synthetic mattes to check it on


def snake_path(kind: str, height: int, width: int):
    """Pixels ``(y, x)`` in path order of a 1-px snake filling a ``height x width`` box, walls 1 px apart.

    ``kind`` is ``"serpentine"`` (rows joined at alternating ends) or ``"spiral"``
    (clockwise, inwards). Consecutive pixels are 4-adjacent; pixels more than two
    steps apart along the path never touch, even diagonally, so the first ``n``
    pixels are one 8-connected island of ``n`` pixels whose flood needs ~``n`` steps.
    """
    if kind == "serpentine":
        path = []
        for row, y in enumerate(range(0, height, 2)):
            xs = range(width) if row % 2 == 0 else range(width - 1, -1, -1)
            path.extend((y, x) for x in xs)
            if y + 1 < height:
                path.append((y + 1, width - 1 if row % 2 == 0 else 0))
        return path
    if kind != "spiral":
        raise ValueError(kind)
    taken = np.zeros((height, width), bool)
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    path, heading = [(0, 0)], 0
    taken[0, 0] = True

    def free(y, x):
        if not (0 <= y < height and 0 <= x < width) or taken[y, x]:
            return False
        near = set(path[-2:])  # the pixel we come from (and its predecessor, diagonal at a turn)
        return all(not taken[j, i] or (j, i) in near
                   for j in range(max(y - 1, 0), min(y + 2, height)) for i in range(max(x - 1, 0), min(x + 2, width)))

    while True:
        for turn in (0, 1):
            dy, dx = steps[(heading + turn) % 4]
            y, x = path[-1][0] + dy, path[-1][1] + dx
            if free(y, x):
                heading = (heading + turn) % 4
                taken[y, x] = True
                path.append((y, x))
                break
        else:
            return path


def maze(cells: int, seed: int = 0) -> np.ndarray:
    """A perfect maze of 1-px corridors, ``(2 cells - 1)`` square, bool: one island whose corridors branch and wind."""
    rng = np.random.default_rng(seed)
    size = 2 * cells - 1
    solid = np.zeros((size, size), bool)
    seen = np.zeros((cells, cells), bool)
    stack = [(0, 0)]
    seen[0, 0] = solid[0, 0] = True
    while stack:  # depth-first carving
        y, x = stack[-1]
        nexts = [(y + dy, x + dx) for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))
                 if 0 <= y + dy < cells and 0 <= x + dx < cells and not seen[y + dy, x + dx]]
        if not nexts:
            stack.pop()
            continue
        ny, nx = nexts[rng.integers(len(nexts))]
        seen[ny, nx] = solid[2 * ny, 2 * nx] = solid[y + ny, x + nx] = True
        stack.append((ny, nx))
    return solid


def paint(alpha: np.ndarray, pixels, value: float, y0: int = 0, x0: int = 0) -> None:
    """Set ``alpha`` at ``pixels`` (``(y, x)`` pairs, offset by ``y0, x0``; clipped to the frame) to ``value``."""
    ys = np.array([p[0] for p in pixels]) + y0
    xs = np.array([p[1] for p in pixels]) + x0
    ok = (ys >= 0) & (ys < alpha.shape[0]) & (xs >= 0) & (xs < alpha.shape[1])
    alpha[ys[ok], xs[ok]] = value


def islands_matte(height: int, width: int, min_area: int, seed: int = 0) -> np.ndarray:
    """A float32 matte with islands of many sizes around ``min_area``: the despeckle's hard cases.

    Soft-edged discs, rectangles of exactly ``min_area`` and ``min_area - 1`` pixels,
    diagonal-only lines and spiral / serpentine snakes of those areas, specks,
    islands cut by the frame's edges and corners, a haze below the 0.5 threshold,
    values at exactly 0.5, above 1 and below 0 (a Nuke plate can hold them).
    Islands may overlap or touch: the oracle decides what the right answer is.
    """
    rng = np.random.default_rng(seed)
    alpha = (rng.random((height, width)) * 0.45).astype(np.float32)  # haze: never solid
    alpha[rng.random((height, width)) < 0.05] = 0.0
    scale = max(height, width) / 256.0
    for _ in range(int(4 * scale) + 2):  # soft-edged discs, some cut by the frame
        cy, cx = rng.integers(-10, height + 10), rng.integers(-10, width + 10)
        r = rng.uniform(4, 40 * scale)
        y0, y1 = max(int(cy - r - 3), 0), min(int(cy + r + 4), height)
        x0, x1 = max(int(cx - r - 3), 0), min(int(cx + r + 4), width)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = np.clip((r - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)) / 4.0 + 0.5, 0, 1).astype(np.float32)
        alpha[y0:y1, x0:x1] = np.maximum(alpha[y0:y1, x0:x1], disc)
    for area in (min_area, min_area - 1, min_area + 1, 2, 1):
        if area < 1:
            continue
        side = max(int(np.sqrt(area)), 1)
        rect = [(j, i) for j in range(side + 2) for i in range(side + 2)][:area]  # a rectangle + partial row
        line = [(k, k) for k in range(area)]  # diagonal only: 8-connected, not 4-connected
        for shape in (rect, line):
            y0, x0 = rng.integers(-4, height), rng.integers(-4, width)
            paint(alpha, shape, rng.choice([0.51, 0.8, 1.0, 1.7]), y0, x0)
    for kind in ("spiral", "serpentine"):
        side = int(np.ceil(np.sqrt(2.2 * max(min_area, 4)))) + 2
        path = snake_path(kind, side, side)
        for area in (min_area, min_area - 1):
            if 1 <= area <= len(path):
                paint(alpha, path[:area], 0.9, rng.integers(0, max(height - side, 1)),
                      rng.integers(0, max(width - side, 1)))
    specks = rng.random((height, width)) < 0.002
    alpha[specks] = rng.choice([0.5, 0.6, 1.0, 1.2], size=int(specks.sum())).astype(np.float32)
    alpha[0:3, 0:3] = 1.0  # corner islands
    alpha[-2:, -5:] = 0.75
    alpha[rng.random((height, width)) < 0.001] = -0.3
    return alpha
