"""Despeckle: remove small solid islands from an alpha matte (docs/DESIGN.md §3.4, step 3).

One TorchScript-compatible implementation, called by the exported ``.pt`` (knob
``despeckle_size``) and by the reference pipeline (``corridorkey run --despeckle``).
It is upstream's default despeckle (``clean_matte_opencv``), exactly::

    solid = alpha > 0.5
    keep  = 8-connected components of solid with >= min_area pixels
    mask  = dilate(keep, OpenCV's (2r+1) x (2r+1) ellipse), r = 25
    soft  = GaussianBlur(mask, 11 x 11, sigma 0 -> 2.0), border reflect-101
    out   = alpha * clamp(soft, 0, 1)

OpenCV (``connectedComponentsWithStats`` + ``dilate`` + ``GaussianBlur``) is the
tests' oracle (``tests/support/despeckle_oracle.py``), not a second implementation.

Everything runs on the input's device. Masks are bool, labels and areas integers
(int32/int64: exact at any frame size, also for fp16 input), the blur float32; the
result has the input's dtype. No result depends on the order of parallel work
(integer sums, min-reductions), so the output is the same on every call.

Component sizes, exactly: the solid pixels are grouped in 2 x 2 blocks (the solid
pixels of a block all touch in 8-connectivity); blocks that touch left-right form
row runs (one ``cummax``); runs of adjacent rows that touch are joined by
union-find (hook the larger root onto the smaller with ``scatter_reduce`` amin,
then pointer jumping) until no edge joins two roots; areas are integer
``scatter_add`` sums of the blocks' pixel counts. Rounds are few (2-6 on the
mattes tried, spirals and percolating noise included) and each costs only the
run graph, not the frame.

The work is cropped to the solid pixels' bounding box, the dilation and blur to
the kept pixels' bounding box plus ``radius + blur_size // 2 + 1``: the dilated
mask is 0 beyond ``radius``, and the reflect-101 border at a crop edge mirrors
the ``blur_size // 2`` rows just inside it, which the extra margin keeps at 0, so
the crop is exact (a margin one ``blur_size // 2`` narrower mirrored the dilated
edge back into the falloff, doubling it there). At the frame's edges the border
is the frame's own.

Precision: the mask is kept in float32. Upstream blurs an 8-bit mask (0/255) and
divides by 255; against that this differs by up to ~4e-3 in the mask (2.6e-3 in
alpha on the test mattes; docs/pipeline.md). Against OpenCV's float blur of the
same mask (the tests' oracle) it agrees within 1e-5 (measured ~5e-7).
The blur runs in strips of 32 rows on the CPU (cache-sized buffers).
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


def _block_areas(solid: Tensor) -> Tensor:
    """Area (pixels) of the 8-connected component of each 2 x 2 block of ``solid``: ``[ceil(H/2), ceil(W/2)]`` int32.

    Blocks without a solid pixel get an arbitrary value (callers mask with ``solid``).
    """
    h, w = solid.shape[0], solid.shape[1]
    hb, wb = (h + 1) // 2, (w + 1) // 2
    if 4 * hb * wb >= 2 ** 31:
        raise ValueError("despeckle: frames of 2**31 pixels or more are not supported (int32 labels and areas)")
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
    start = torch.ones([hb, wb], dtype=torch.bool, device=solid.device)  # first block of a horizontal run
    start[:, 1:] = ~right
    component, num = _block_components(start, count > 0, down, down_right, down_left)
    areas = torch.zeros([max(num, 1)], dtype=torch.int32, device=solid.device)
    areas.scatter_add_(0, component, count.flatten())  # integer sums: exact, order-independent
    return areas.index_select(0, component).view(hb, wb)


def _run_edges(start: Tensor, down: Tensor, down_right: Tensor, down_left: Tensor) -> Tuple[Tensor, Tensor]:
    """Adjacent block pairs across rows ``(upper, lower)``, int64 block indices ``[E]`` each.

    One pair per stretch of consecutive adjacent pairs that join the same two row runs
    (a run is constant along a row, so the pair changes only where a run starts): every
    pair of adjacent runs is represented, without the thousands of duplicates of a
    solid region.
    """
    wb = start.shape[1]
    uppers: List[Tensor] = []
    lowers: List[Tensor] = []
    for direction in range(3):
        if direction == 0:  # (y, x) - (y+1, x)
            adjacent, new_pair, first_col, step = down, start[:-1, :] | start[1:, :], 0, wb
        elif direction == 1:  # (y, x) - (y+1, x+1)
            adjacent, new_pair, first_col, step = down_right, start[:-1, :-1] | start[1:, 1:], 0, wb + 1
        else:  # (y, x+1) - (y+1, x)
            adjacent, new_pair, first_col, step = down_left, start[:-1, 1:] | start[1:, :-1], 1, wb - 1
        keep = adjacent.clone()
        keep[:, 1:].bitwise_and_(new_pair[:, 1:] | ~adjacent[:, :-1])
        at = torch.nonzero(keep)  # [E, 2]: (row, column) in `adjacent`
        upper = at[:, 0] * wb + at[:, 1] + first_col
        uppers.append(upper)
        lowers.append(upper + step)
    return torch.cat(uppers), torch.cat(lowers)


def _block_components(start: Tensor, occupied: Tensor, down: Tensor, down_right: Tensor,
                      down_left: Tensor) -> Tuple[Tensor, int]:
    """Component id (0 .. num-1) of each block, int64 ``[hb * wb]``, and ``num``; empty blocks get 0.

    Union-find on the graph of row runs: each run (``start`` .. next start) is one
    node; :func:`_run_edges` joins runs of adjacent rows. Each round hooks, for every
    edge whose ends have different roots, the larger root onto the smaller
    (``scatter_reduce`` amin: the smallest offer wins, whatever the order), then
    compresses every path by pointer jumping. It stops when every edge has one root
    at both ends: the runs' components are the blocks' 8-connected components, exactly.
    """
    hb, wb = start.shape[0], start.shape[1]
    index = torch.arange(hb * wb, dtype=torch.int32, device=start.device).view(hb, wb)
    run_of_block = torch.cummax(index.masked_fill(~start, 0), dim=1)[0].flatten()  # index of the run's first block
    runs = torch.nonzero((start & occupied).flatten()).flatten()  # [K] first blocks of the occupied runs
    num = runs.shape[0]
    node_of_run = torch.zeros([hb * wb], dtype=torch.int64, device=start.device)
    node_of_run.index_put_([runs], torch.arange(num, dtype=torch.int64, device=start.device))
    node = node_of_run.index_select(0, run_of_block)  # [hb * wb]: run id of each block (0 when empty)
    if num == 0:
        return node, num
    upper, lower = _run_edges(start, down, down_right, down_left)
    a, b = node.index_select(0, upper), node.index_select(0, lower)
    parent = torch.arange(num, dtype=torch.int64, device=start.device)
    differ = a != b
    while bool(differ.any()):
        a, b = a[differ], b[differ]  # roots; edges whose ends share a root never part again
        parent.scatter_reduce_(0, torch.maximum(a, b), torch.minimum(a, b), reduce="amin")  # hook
        jumped = parent.index_select(0, parent)
        while not torch.equal(jumped, parent):  # compress
            parent = jumped
            jumped = parent.index_select(0, parent)
        a, b = parent.index_select(0, a), parent.index_select(0, b)
        differ = a != b
    return parent.index_select(0, node), num


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


def _blur_into(x: Tensor, size: int, out: Tensor, clamp: bool) -> None:
    """Write ``cv2.GaussianBlur(x, (size, size), 0)`` of a ``[H, W]`` (bool or float) into float32 ``out``.

    Border reflect-101. Separable: each strip of output rows is blurred down the
    columns from its rows plus ``size // 2`` above and below (reflected at the
    frame's edges), then along the rows. On the CPU strips are 32 rows (cache
    sized); on other devices the whole frame is one strip. ``clamp``: to [0, 1].
    """
    weights = gaussian_kernel(size)
    pad = size // 2
    h, w = x.shape[0], x.shape[1]
    rows_index = _reflect101_index(h, pad, x.device)
    cols_index = _reflect101_index(w, pad, x.device)
    step = h if x.is_cuda else 32  # CPU: strips whose buffers stay in the cache (3-7x faster at 4K)
    for start in range(0, h, step):
        stop = min(start + step, h)
        n = stop - start
        rows = x.index_select(0, rows_index[start:stop + 2 * pad]).to(torch.float32)  # [n + 2 pad, W]
        down = rows[pad:pad + n] * weights[pad]
        pair = torch.empty_like(down)
        for i in range(1, pad + 1):
            torch.add(rows[pad - i:pad - i + n], rows[pad + i:pad + i + n], out=pair)
            down.add_(pair, alpha=weights[pad + i])
        cols = down.index_select(1, cols_index)  # [n, W + 2 pad]
        strip = out[start:stop]
        torch.mul(cols[:, pad:pad + w], weights[pad], out=strip)
        for i in range(1, pad + 1):
            torch.add(cols[:, pad - i:pad - i + w], cols[:, pad + i:pad + i + w], out=pair)
            strip.add_(pair, alpha=weights[pad + i])
        if clamp:
            strip.clamp_(0.0, 1.0)


def gaussian_blur(x: Tensor, size: int) -> Tensor:
    """``cv2.GaussianBlur(x, (size, size), 0)``, border reflect-101: ``[H, W]`` bool or float -> float32 ``[H, W]``."""
    out = torch.empty([x.shape[0], x.shape[1]], dtype=torch.float32, device=x.device)
    _blur_into(x, size, out, False)
    return out


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
    # Crop margin: the dilated mask reaches `radius` px beyond the kept pixels and is 0 after that. The
    # blur's reflect-101 border at a crop edge reads the `blur_size // 2` rows inside it (not the edge
    # row itself), so those rows must be 0 too: margin = radius + blur_size // 2 + 1. Then every value
    # the blur reads past a crop edge is 0, as in the whole frame, and the crop is exact. Where the
    # crop meets the frame's edge the border is the frame's own.
    margin = max(dilate_radius, 0) + max(blur_size, 1) // 2 + 1
    ry0, ry1 = max(y0 + ky0 - margin, 0), min(y0 + ky1 + margin, h)
    rx0, rx1 = max(x0 + kx0 - margin, 0), min(x0 + kx1 + margin, w)
    region = torch.zeros([ry1 - ry0, rx1 - rx0], dtype=torch.bool, device=alpha.device)
    region[y0 + ky0 - ry0:y0 + ky1 - ry0, x0 + kx0 - rx0:x0 + kx1 - rx0] = kept[ky0:ky1, kx0:kx1]
    _blur_into(dilate_ellipse(region, dilate_radius), blur_size, soft[ry0:ry1, rx0:rx1], True)
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
        planes.append(mask.mul_(plane).to(alpha.dtype).unsqueeze(0))  # alpha * mask, in float32: [1, H, W]
    if len(planes) == 1:
        return planes[0].unsqueeze(0)
    return torch.stack(planes, dim=0)
