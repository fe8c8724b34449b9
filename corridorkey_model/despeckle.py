"""Despeckle: remove small solid islands from an alpha matte (DESIGN.md, postprocess step 3).

One TorchScript-compatible implementation, called by the exported ``.pt`` (knob
``despeckle_size``) and by the reference pipeline (``corridorkey run --despeckle``).
It is upstream's default despeckle (``clean_matte_opencv``), exactly::

    solid = alpha > 0.5
    keep  = 8-connected components of solid with >= min_area pixels
    mask  = dilate(keep, OpenCV's (2r+1) x (2r+1) ellipse), r = 25
    soft  = GaussianBlur(mask, 11 x 11, sigma 0 -> 2.0), border reflect-101
    out   = alpha * clamp(soft, 0, 1)

OpenCV (``connectedComponentsWithStats`` + ``dilate`` + ``GaussianBlur``) is the
tests' oracle (``tests/despeckle_oracle.py``), not a second implementation.

Everything runs on the input's device. The masks are bool, labels and areas int64
(exact at any frame size, also for fp16 input), the blur float32; the result has the
input's dtype. No step depends on the order of parallel work, so the output is the
same on every call.

The component filter is exact label equivalence on 2 x 2 blocks (all solid pixels
of a 2 x 2 block touch each other in 8-connectivity): each block starts as its own
tree; every round, each tree's root is hooked onto the smallest root adjacent to
the tree (``scatter_reduce`` amin), then paths are compressed by pointer jumping.
Rounds stop when no adjacent blocks hold different roots, so every component has
one label; areas are integer ``scatter_add`` sums of the blocks' pixel counts.
The work is cropped to the solid pixels' bounding box, the dilation and blur to
the kept pixels' bounding box plus ``radius + blur_size // 2`` (outside it the
mask is exactly 0, so the crop changes nothing, reflect-101 borders included).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor

#: Dilation radius of upstream's despeckle: OpenCV's 51 x 51 ellipse.
DILATE_RADIUS = 25
#: Gaussian blur kernel size of upstream's despeckle (sigma 0: OpenCV picks 2.0 for 11).
BLUR_SIZE = 11
#: Solid means alpha strictly above this.
SOLID_THRESHOLD = 0.5


def ellipse_half_widths(radius: int) -> List[int]:
    """Half-width of each row ``dy = -radius .. radius`` of OpenCV's ``MORPH_ELLIPSE`` of size ``2r+1``.

    ``cv2.getStructuringElement`` computes ``dx = cvRound(c * sqrt((r*r - dy*dy) / (r*r)))``
    with ``c = r``; row ``dy`` covers ``-dx .. dx``.
    """
    r = radius
    out: List[int] = []
    if r <= 0:
        out.append(0)
        return out
    inv_r2 = 1.0 / float(r * r)
    for dy in range(-r, r + 1):
        dx = float(r) * math.sqrt(float(r * r - dy * dy) * inv_r2)
        out.append(int(math.floor(dx + 0.5)))  # never a tie: sqrt of an integer is an integer or irrational
    return out


#: Added to a neighbour's label where blocks are not adjacent: larger than any label (labels < 2**30).
_NOT_ADJACENT = 2 ** 30


def _block_areas(solid: Tensor) -> Tensor:
    """Area (pixels) of the 8-connected component of each 2 x 2 block of ``solid``: ``[ceil(H/2), ceil(W/2)]`` int32.

    Blocks without a solid pixel get 0.
    """
    h, w = solid.shape[0], solid.shape[1]
    hb, wb = (h + 1) // 2, (w + 1) // 2
    if 4 * hb * wb >= 2 ** 30:  # labels + _NOT_ADJACENT must fit int32
        raise ValueError("despeckle: frames of 2**30 pixels or more are not supported")
    padded = solid
    if h % 2 != 0 or w % 2 != 0:
        padded = torch.zeros([2 * hb, 2 * wb], dtype=torch.bool, device=solid.device)
        padded[:h, :w] = solid
    tl, tr = padded[0::2, 0::2], padded[0::2, 1::2]  # the 4 pixels of each 2 x 2 block: [hb, wb] each
    bl, br = padded[1::2, 0::2], padded[1::2, 1::2]
    count = tl.to(torch.int32) + tr + bl + br  # solid pixels per block
    # block adjacency (8-connectivity of their pixels) to the right, down, down-right and down-left
    right = (tr | br)[:, :-1] & (tl | bl)[:, 1:]  # block (y, x) - (y, x+1): [hb, wb-1]
    down = (bl | br)[:-1, :] & (tl | tr)[1:, :]  # (y, x) - (y+1, x): [hb-1, wb]
    down_right = br[:-1, :-1] & tl[1:, 1:]  # (y, x) - (y+1, x+1): [hb-1, wb-1]
    down_left = bl[:-1, 1:] & tr[1:, :-1]  # (y, x+1) - (y+1, x): [hb-1, wb-1]
    flat = _block_labels(count > 0, right, down, down_right, down_left).flatten().to(torch.int64)
    areas = torch.zeros([hb * wb], dtype=torch.int32, device=solid.device)
    areas.scatter_add_(0, flat, count.flatten())  # integer sums: exact, order-independent
    return areas.index_select(0, flat).view(hb, wb)


def _row_runs(right: Tensor, hb: int, wb: int) -> Tensor:
    """Label of each block: the index of the first block of its horizontal run of adjacent blocks, int32 ``[hb, wb]``."""
    start = torch.ones([hb, wb], dtype=torch.bool, device=right.device)
    start[:, 1:] = ~right
    index = torch.arange(hb * wb, dtype=torch.int32, device=right.device).view(hb, wb)
    return torch.cummax(index.masked_fill(~start, 0), dim=1)[0]


def _penalty(adjacent: Tensor) -> Tensor:
    """0 where blocks are adjacent, ``_NOT_ADJACENT`` elsewhere: int32, the shape of ``adjacent``."""
    zero = torch.zeros([1], dtype=torch.int32, device=adjacent.device)
    far = torch.full([1], 2 ** 30, dtype=torch.int32, device=adjacent.device)  # _NOT_ADJACENT
    return torch.where(adjacent, zero, far)


def _smallest_adjacent_label(labels: Tensor, far_down: Tensor, far_down_right: Tensor, far_down_left: Tensor,
                             out: Tensor, scratch: Tensor) -> Tensor:
    """Into ``out``: per block, the smallest label among itself and its vertically / diagonally adjacent blocks.

    (Blocks adjacent left-right always share a label here: they start in one row run.)
    ``far_*`` are :func:`_penalty` maps; ``out`` and ``scratch`` are ``[hb, wb]`` int32 buffers.
    """
    out.copy_(labels)
    nb = scratch[:-1, :]
    torch.add(labels[1:, :], far_down, out=nb)
    out[:-1, :].clamp_max_(nb)
    torch.add(labels[:-1, :], far_down, out=nb)
    out[1:, :].clamp_max_(nb)
    nb = scratch[:-1, :-1]
    torch.add(labels[1:, 1:], far_down_right, out=nb)
    out[:-1, :-1].clamp_max_(nb)
    torch.add(labels[:-1, :-1], far_down_right, out=nb)
    out[1:, 1:].clamp_max_(nb)
    torch.add(labels[1:, :-1], far_down_left, out=nb)
    out[:-1, 1:].clamp_max_(nb)
    torch.add(labels[:-1, 1:], far_down_left, out=nb)
    out[1:, :-1].clamp_max_(nb)
    return out


def _block_labels(occupied: Tensor, right: Tensor, down: Tensor, down_right: Tensor, down_left: Tensor) -> Tensor:
    """One label per connected component of the block graph: ``[hb, wb]`` int32 (a block index of the component).

    Label equivalence: trees start as row runs (each block points at its run's
    first block, a root); each round hooks every root onto the smallest root
    adjacent to its tree, compresses the chains among the roots, and points every
    block at its new root. It stops when no two adjacent blocks differ: exact.
    """
    hb, wb = occupied.shape[0], occupied.shape[1]
    flat = _row_runs(right, hb, wb).flatten()
    roots = torch.nonzero((flat == torch.arange(hb * wb, dtype=torch.int32, device=flat.device))
                          & occupied.flatten()).flatten()  # int64 [K]
    position = torch.zeros([hb * wb], dtype=torch.int64, device=flat.device)  # root index -> place in `roots`
    far_down, far_down_right, far_down_left = _penalty(down), _penalty(down_right), _penalty(down_left)
    smallest = torch.empty([hb, wb], dtype=torch.int32, device=flat.device)
    scratch = torch.empty([hb, wb], dtype=torch.int32, device=flat.device)
    labels = flat.view(hb, wb)
    _smallest_adjacent_label(labels, far_down, far_down_right, far_down_left, smallest, scratch)
    while not torch.equal(smallest, labels):
        flat = flat.scatter_reduce(0, flat.to(torch.int64), smallest.flatten(), reduce="amin")  # hook roots
        # compress the chains among the roots (each root now points at a root), then every block
        place = torch.arange(roots.shape[0], dtype=torch.int64, device=flat.device)
        position.index_put_([roots], place)
        up = position.index_select(0, flat.index_select(0, roots))  # [K] place of each root's parent
        jumped = up.index_select(0, up)
        while not torch.equal(jumped, up):
            up = jumped
            jumped = up.index_select(0, up)
        flat.index_put_([roots], roots.index_select(0, up).to(torch.int32))
        flat = flat.index_select(0, flat)
        roots = roots[up == place]
        labels = flat.view(hb, wb)
        _smallest_adjacent_label(labels, far_down, far_down_right, far_down_left, smallest, scratch)
    return labels


def component_areas(solid: Tensor) -> Tensor:
    """Area (pixels) of each pixel's 8-connected component: ``[H, W]`` bool -> ``[H, W]`` int64, 0 off ``solid``."""
    h, w = solid.shape[0], solid.shape[1]
    block = _block_areas(solid)
    hb, wb = block.shape[0], block.shape[1]
    area = block.view(hb, 1, wb, 1).expand(hb, 2, wb, 2).reshape(2 * hb, 2 * wb)[:h, :w]
    return area.masked_fill(~solid, 0)


def keep_large_components(solid: Tensor, min_area: int) -> Tensor:
    """``solid`` minus its 8-connected components of fewer than ``min_area`` pixels: ``[H, W]`` bool."""
    if min_area <= 1:
        return solid.clone()
    h, w = solid.shape[0], solid.shape[1]
    keep = _block_areas(solid) >= min_area
    hb, wb = keep.shape[0], keep.shape[1]
    return keep.view(hb, 1, wb, 1).expand(hb, 2, wb, 2).reshape(2 * hb, 2 * wb)[:h, :w] & solid


def dilate_ellipse(mask: Tensor, radius: int) -> Tensor:
    """``cv2.dilate(mask, ellipse 2r+1)`` with the default border (nothing enters from outside): bool ``[H, W]``.

    The ellipse is the union of its rows ``dy`` of half-width ``dx(dy)``: a horizontal
    dilation by ``dx`` (grown one step at a time), shifted by ``dy``, OR-ed in.
    """
    if radius <= 0:
        return mask.clone()
    h, w = mask.shape[0], mask.shape[1]
    widths = ellipse_half_widths(radius)
    out = torch.zeros_like(mask)
    row = mask.clone()  # horizontal dilation of half-width `grown`
    for grown in range(radius + 1):
        if 0 < grown < w:
            row[:, grown:].logical_or_(mask[:, :w - grown])
            row[:, :w - grown].logical_or_(mask[:, grown:])
        for i in range(len(widths)):
            dy = i - radius  # rows of this half-width: out[y] |= row[y + dy]
            if widths[i] != grown or abs(dy) >= h:
                continue
            if dy >= 0:
                out[:h - dy].logical_or_(row[dy:])
            else:
                out[-dy:].logical_or_(row[:h + dy])
    return out


def gaussian_kernel(size: int) -> List[float]:
    """OpenCV's ``getGaussianKernel(size, 0)`` for an odd ``size``: its fixed tables up to 9, else sigma
    ``0.3*((size-1)/2 - 1) + 0.8`` (2.0 for 11), normalised to sum 1."""
    if size % 2 == 0 or size < 1:
        raise ValueError("despeckle: the blur size must be odd and positive")
    if size == 1:
        return [1.0]
    if size == 3:
        return [0.25, 0.5, 0.25]
    if size == 5:
        return [0.0625, 0.25, 0.375, 0.25, 0.0625]
    if size == 7:
        return [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]
    if size == 9:
        return [0.015625, 0.05078125, 0.1171875, 0.19921875, 0.234375, 0.19921875, 0.1171875, 0.05078125, 0.015625]
    sigma = 0.3 * ((size - 1) * 0.5 - 1.0) + 0.8
    weights: List[float] = []
    total = 0.0
    for i in range(size):
        x = i - (size - 1) * 0.5
        weights.append(math.exp(-0.5 * x * x / (sigma * sigma)))
        total += weights[i]
    return [v / total for v in weights]


def _reflect101_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Source index of positions ``-pad .. n+pad-1`` under OpenCV's ``BORDER_REFLECT_101`` (gfedcb|abcdefgh|gfedcba)."""
    i = torch.arange(-pad, n + pad, dtype=torch.int64, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def _blur_along(x: Tensor, dim: int, weights: List[float]) -> Tensor:
    """Symmetric 1-D filter along ``dim`` of a float32 ``[H, W]``, border reflect-101."""
    pad = len(weights) // 2
    n = x.shape[dim]
    padded = x.index_select(dim, _reflect101_index(n, pad, x.device))  # n + 2 pad along dim
    out = padded.narrow(dim, pad, n) * weights[pad]
    pair = torch.empty_like(out)
    for i in range(1, pad + 1):
        torch.add(padded.narrow(dim, pad - i, n), padded.narrow(dim, pad + i, n), out=pair)
        out.add_(pair, alpha=weights[pad + i])
    return out


def gaussian_blur(x: Tensor, size: int) -> Tensor:
    """``cv2.GaussianBlur(x, (size, size), 0)`` (border reflect-101) of a float32 ``[H, W]``: float32 ``[H, W]``."""
    weights = gaussian_kernel(size)
    if size == 1:
        return x.clone()
    return _blur_along(_blur_along(x, 1, weights), 0, weights)


def _bbox(mask: Tensor) -> Tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``, half-open, of the True pixels of a ``[H, W]`` bool; ``(0, 0, 0, 0)`` if none."""
    rows = torch.nonzero(mask.amax(dim=1)).flatten()  # amax: several times faster than any() on CPU
    if rows.shape[0] == 0:
        return 0, 0, 0, 0
    cols = torch.nonzero(mask.amax(dim=0)).flatten()
    return int(rows[0].item()), int(rows[-1].item()) + 1, int(cols[0].item()), int(cols[-1].item()) + 1


def despeckle_mask(alpha: Tensor, min_area: int, dilate_radius: int = DILATE_RADIUS,
                   blur_size: int = BLUR_SIZE) -> Tensor:
    """The mask despeckle multiplies alpha by: ``[H, W]`` any float -> float32 ``[H, W]`` in [0, 1]."""
    h, w = alpha.shape[0], alpha.shape[1]
    soft = torch.zeros([h, w], dtype=torch.float32, device=alpha.device)
    solid = alpha > 0.5  # SOLID_THRESHOLD (TorchScript cannot read module globals)
    y0, y1, x0, x1 = _bbox(solid)
    if y1 == y0:
        return soft
    kept = keep_large_components(solid[y0:y1, x0:x1], min_area)
    ky0, ky1, kx0, kx1 = _bbox(kept)
    if ky1 == ky0:
        return soft
    margin = max(dilate_radius, 0) + max(blur_size, 1) // 2  # beyond it the mask is exactly 0
    ry0, ry1 = max(y0 + ky0 - margin, 0), min(y0 + ky1 + margin, h)
    rx0, rx1 = max(x0 + kx0 - margin, 0), min(x0 + kx1 + margin, w)
    region = torch.zeros([ry1 - ry0, rx1 - rx0], dtype=torch.bool, device=alpha.device)
    region[y0 + ky0 - ry0:y0 + ky1 - ry0, x0 + kx0 - rx0:x0 + kx1 - rx0] = kept[ky0:ky1, kx0:kx1]
    dilated = dilate_ellipse(region, dilate_radius)
    soft[ry0:ry1, rx0:rx1] = gaussian_blur(dilated.to(torch.float32), blur_size).clamp(0.0, 1.0)
    return soft


def despeckle(alpha: Tensor, min_area: int, dilate_radius: int = DILATE_RADIUS, blur_size: int = BLUR_SIZE) -> Tensor:
    """Upstream's despeckle of ``alpha`` ``[N, 1, H, W]`` (any float dtype, any device): same shape and dtype.

    ``min_area`` <= 0 is off: ``alpha`` itself is returned. Otherwise solid (> 0.5)
    8-connected islands of fewer than ``min_area`` pixels are removed, and alpha is
    multiplied by the blurred, dilated mask of the kept islands (see the module doc).
    """
    if alpha.dim() != 4 or alpha.shape[1] != 1:
        raise ValueError("despeckle: alpha must be [N, 1, H, W], got " + str(alpha.shape))
    if min_area <= 0:
        return alpha
    planes: List[Tensor] = []
    for i in range(alpha.shape[0]):
        plane = alpha[i, 0]
        mask = despeckle_mask(plane, min_area, dilate_radius, blur_size)
        planes.append((plane.to(torch.float32) * mask).to(alpha.dtype))
    return torch.stack(planes, dim=0).unsqueeze(1)
