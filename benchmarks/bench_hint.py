"""Quality of the automatic hint (knob ``auto_hint``) on synthetic plates with known mattes.

    python benchmarks/bench_hint.py                 # S = 512, plates 720 x 1280: the table of docs/benchmarks.md
    python benchmarks/bench_hint.py --img-size 1024 --timing

Each plate is built in scene-linear light from a ground-truth alpha ``a`` (the subject
over the screen: ``fg * a + screen * (1 - a)``, screen lighting and spill applied), then
sRGB-encoded with a little noise, exactly what a camera plate looks like to the keyer.
The plate goes through the ``.pt``'s own preprocess (``frame.preprocess`` with
``auto_hint = 1``: resize to S, the hint made from the plate) and the ground truth is
resized to S the same way. Per plate, at S:

* **precision**: the share of hint-solid pixels (hint > 0.5) where the ground truth is
  foreground (GT alpha > 0.5); target >= 0.99 (the hint must not claim screen);
* **coverage**: the share of the ground truth's solid interior (GT alpha > 0.95, eroded by
  2 % of S with OpenCV's elliptic kernel) that is hint-solid; target >= 0.95;
* **empty frame**: the share of hint-solid pixels on a plate without subject; target 0.

The same figures are printed for the baseline "screen minus max of the other two" key
(``1 - clamp(d / q98(d), 0, 1)``, ``d = S - max(A, B)``: the crude fallback of a C++ OFX
port), and ``--timing`` adds the hint's cost at S = 2048 against nothing else (the network
at that size takes a minute or more per frame on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corridorkey_model.keying import frame  # noqa: E402
from corridorkey_model.keying.colour import linear_to_srgb_np, resize_bilinear_aa  # noqa: E402
from corridorkey_model.keying.hint import rough_hint, screen_difference  # noqa: E402

PRECISION_TARGET = 0.99
COVERAGE_TARGET = 0.95
#: GT solid interior: alpha above this, eroded by INTERIOR_EROSION * S.
INTERIOR_ALPHA = 0.95
INTERIOR_EROSION = 0.02
#: Screen colours in linear light (sRGB ~ (0.25, 0.71, 0.30) and (0.22, 0.35, 0.78)).
GREEN_SCREEN = (0.05, 0.46, 0.075)
BLUE_SCREEN = (0.04, 0.10, 0.57)


# --------------------------------------------------------------------------- ground-truth shapes


def _grid(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ys / h, xs / w  # 0..1 over the frame


def _soft(sdf: np.ndarray, width: float) -> np.ndarray:
    """Alpha from a signed distance (negative inside, in frame-height units), a linear ramp of ``width``."""
    return np.clip(0.5 - sdf / max(width, 1e-6), 0.0, 1.0)


def _ellipse(ys, xs, cy, cx, ry, rx, aspect):
    d = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) * aspect / rx) ** 2)
    return (d - 1.0) * min(ry, rx)


def _box(ys, xs, y0, y1, x0, x1, aspect):
    dy = np.maximum(y0 - ys, ys - y1)
    dx = np.maximum(x0 - xs, xs - x1) * aspect
    return np.maximum(dy, dx)


@dataclass(frozen=True)
class Subject:
    """The subject's parts, each a signed distance, and which part is which colour."""

    head: np.ndarray
    body: np.ndarray
    legs: np.ndarray


def person(h: int, w: int, shift_x: float = 0.0, shift_y: float = 0.0, scale: float = 1.0) -> Subject:
    ys, xs = _grid(h, w)
    a = w / h
    ys = (ys - 0.5 - shift_y) / scale + 0.5
    xs = (xs - 0.5 - shift_x) / scale + 0.5
    head = _ellipse(ys, xs, 0.22, 0.5, 0.09, 0.065, a) * scale
    body = np.minimum(_box(ys, xs, 0.32, 0.62, 0.40, 0.60, a),
                      np.minimum(_box(ys, xs, 0.33, 0.60, 0.30, 0.36, a), _box(ys, xs, 0.33, 0.60, 0.64, 0.70, a))) * scale
    legs = np.minimum(_box(ys, xs, 0.60, 0.97, 0.42, 0.49, a), _box(ys, xs, 0.60, 0.97, 0.51, 0.58, a)) * scale
    return Subject(head, body, legs)


def hair_alpha(h: int, w: int, seed: int) -> np.ndarray:
    """Thin strands around the head: lines of 1-2 px at 0.3-0.8 opacity."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w), np.float32)
    cx, cy, r = 0.5 * w, 0.22 * h, 0.075 * h
    for _ in range(140):
        t = rng.uniform(-2.6, -0.5)
        x0, y0 = cx + r * np.cos(t) * 0.9, cy + r * np.sin(t)
        length = rng.uniform(0.03, 0.08) * h
        x1, y1 = x0 + length * np.cos(t + rng.normal(0, 0.3)), y0 + length * np.sin(t + rng.normal(0, 0.3))
        cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), float(rng.uniform(0.3, 0.8)), 1, cv2.LINE_AA)
    return img


# --------------------------------------------------------------------------- plates


@dataclass(frozen=True)
class Plate:
    name: str
    rgb: np.ndarray  # H x W x 3 sRGB-encoded
    alpha: np.ndarray  # H x W ground truth
    screen_channel: int


def _compose(alpha: np.ndarray, fg: np.ndarray, screen: np.ndarray, seed: int, gain: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lin = fg * alpha[..., None] + screen * (1.0 - alpha[..., None])
    srgb = linear_to_srgb_np((lin * gain).astype(np.float32))
    return np.clip(srgb + rng.normal(0, 0.01, srgb.shape).astype(np.float32), 0.0, 1.0)


def _colours(sub: Subject, edge: float, shirt=(0.35, 0.33, 0.30), legs_colour=(0.05, 0.06, 0.12),
             skin=(0.60, 0.38, 0.28)) -> Tuple[np.ndarray, np.ndarray]:
    parts = [(sub.head, skin), (sub.body, shirt), (sub.legs, legs_colour)]
    alpha = np.zeros(sub.head.shape, np.float32)
    fg = np.zeros(sub.head.shape + (3,), np.float32)
    for sdf, colour in parts:  # later parts over earlier ones
        a = _soft(sdf, edge)
        fg = fg * (1 - a[..., None]) + np.asarray(colour, np.float32) * a[..., None]
        alpha = np.maximum(alpha, a)
    return alpha, fg


def _screen(h: int, w: int, colour, gradient: float = 0.0, shadow: Optional[np.ndarray] = None) -> np.ndarray:
    ys, xs = _grid(h, w)
    light = 1.0 + gradient * (2.0 * (0.6 * xs + 0.4 * ys) - 1.0)  # +-gradient across the frame
    if shadow is not None:
        light = light * shadow
    return np.asarray(colour, np.float32) * light[..., None]


def make_plates(h: int, w: int) -> List[Plate]:
    edge = 2.0 / h  # a 2 px soft edge at plate resolution
    plates = []
    sub = person(h, w)

    def add(name, alpha, fg, screen, channel=1, seed=0, gain=1.0):
        plates.append(Plate(name, _compose(alpha, fg, screen, seed, gain), alpha, channel))

    a, fg = _colours(sub, edge)
    add("green", a, fg, _screen(h, w, GREEN_SCREEN))
    add("blue", a, fg, _screen(h, w, BLUE_SCREEN), channel=2, seed=1)
    add("green, -2 stops", a, fg, _screen(h, w, GREEN_SCREEN), seed=2, gain=0.25)
    add("green, +1 stop (clipping)", a, fg, _screen(h, w, GREEN_SCREEN), seed=3, gain=2.0)
    add("gradient +-30%", a, fg, _screen(h, w, GREEN_SCREEN, gradient=0.3), seed=4)
    add("blue, gradient +-30%", a, fg, _screen(h, w, BLUE_SCREEN, gradient=0.3), channel=2, seed=5)
    # cast shadow: the subject's silhouette moved right and down, softened, darkening the screen to 45 %
    shadow_shape = cv2.GaussianBlur(_soft(person(h, w, shift_x=0.12, shift_y=0.03).body, edge), (0, 0), h * 0.02)
    add("cast shadow (45%)", a, fg, _screen(h, w, GREEN_SCREEN, shadow=1.0 - 0.55 * shadow_shape), seed=6)
    add("deep cast shadow (25%)", a, fg, _screen(h, w, GREEN_SCREEN, shadow=1.0 - 0.75 * shadow_shape), seed=13)
    # spill: the screen colour bounced onto the subject, strongest at its edges
    near_edge = np.clip(1.0 - cv2.GaussianBlur(a, (0, 0), h * 0.02), 0.0, 1.0) * 0.6 + 0.4
    spill = np.asarray(GREEN_SCREEN, np.float32) * (0.5 * near_edge)[..., None]
    add("spill on subject", a, fg + spill, _screen(h, w, GREEN_SCREEN), seed=7)
    # soft edges and hair
    a_soft, fg_soft = _colours(sub, 0.03)
    hair = hair_alpha(h, w, 8)
    a_hair = np.maximum(a_soft, hair)
    fg_hair = fg_soft * (a_soft / np.maximum(a_hair, 1e-6))[..., None] \
        + np.asarray((0.12, 0.07, 0.04), np.float32) * ((a_hair - a_soft) / np.maximum(a_hair, 1e-6))[..., None]
    add("soft edges + hair", a_hair, fg_hair, _screen(h, w, GREEN_SCREEN), seed=8)
    # motion blur: the premultiplied subject and its alpha blurred along x over 5 % of the width
    k = max(3, int(0.05 * w) | 1)
    a_mb = cv2.blur(a, (k, 1))
    fg_mb = cv2.blur(fg * a[..., None], (k, 1)) / np.maximum(a_mb, 1e-6)[..., None]
    add("motion-blurred edge", a_mb, fg_mb, _screen(h, w, GREEN_SCREEN), seed=9)
    # dark olive clothing (linear (0.03, 0.05, 0.012): sRGB ~ (0.19, 0.25, 0.11)) and dark green trousers
    # (linear (0.015, 0.04, 0.015): sRGB ~ (0.13, 0.22, 0.13))
    a_ol, fg_ol = _colours(sub, edge, shirt=(0.03, 0.05, 0.012), legs_colour=(0.015, 0.04, 0.015))
    add("dark olive clothing", a_ol, fg_ol, _screen(h, w, GREEN_SCREEN), seed=10)
    # a saturated mid-green shirt (linear (0.03, 0.12, 0.03): sRGB ~ (0.19, 0.38, 0.19)), half the screen's level
    a_gr, fg_gr = _colours(sub, edge, shirt=(0.03, 0.12, 0.03))
    add("green shirt", a_gr, fg_gr, _screen(h, w, GREEN_SCREEN), seed=14)
    # the subject cut by the frame's left and bottom edges
    sub_edge = person(h, w, shift_x=-0.38, shift_y=0.12, scale=1.3)
    a_e, fg_e = _colours(sub_edge, edge)
    add("touching frame edge", a_e, fg_e, _screen(h, w, GREEN_SCREEN, gradient=0.15), seed=11)
    empty = np.zeros((h, w), np.float32)
    add("empty (no subject)", empty, np.zeros((h, w, 3), np.float32), _screen(h, w, GREEN_SCREEN, gradient=0.3),
        seed=12)
    return plates


# --------------------------------------------------------------------------- measuring


def baseline_key(rgb: torch.Tensor, screen_channel: int) -> torch.Tensor:
    """``1 - clamp(d / q98(d), 0, 1)`` with ``d = S - max(A, B)``: the simple colour-difference key."""
    d = screen_difference(torch.clamp(rgb, 0.0, 1.0), screen_channel)
    high = torch.clamp(torch.quantile(d.flatten(), 0.98), min=1e-4)
    return 1.0 - torch.clamp(d / high, 0.0, 1.0)


def measure(hint: np.ndarray, gt: np.ndarray, size: int) -> Dict[str, float]:
    solid = hint > 0.5
    radius = max(1, int(round(INTERIOR_EROSION * size)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    interior = cv2.erode((gt > INTERIOR_ALPHA).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE) > 0
    n_solid = int(solid.sum())
    return {
        "precision": float((solid & (gt > 0.5)).sum() / n_solid) if n_solid else float("nan"),
        "coverage": float((solid & interior).sum() / interior.sum()) if interior.any() else float("nan"),
        "solid_share": n_solid / solid.size,
    }


def hints_at_s(plate: Plate, size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(auto hint, baseline, GT alpha) at S x S, through the .pt's preprocess."""
    rgba = np.concatenate([plate.rgb, np.zeros_like(plate.alpha)[..., None]], axis=2)
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1)[None]
    with torch.no_grad():
        net_in = frame.preprocess(x, size, frame.GAMMA_SRGB, 1, plate.screen_channel)
        rgb_s = resize_bilinear_aa(x[:, 0:3], size, size)
        base = baseline_key(rgb_s, plate.screen_channel)
        gt = resize_bilinear_aa(torch.from_numpy(plate.alpha)[None, None], size, size)
    return net_in[0, 3].numpy(), base[0, 0].numpy(), gt[0, 0].numpy()


def _cell(value: float, target: Optional[float]) -> str:
    if value != value:  # NaN: nothing to measure
        return "    -    "
    mark = "" if target is None else (" ok" if value >= target else " NO")
    return f"{value:6.3f}{mark:<3}"


def run_table(size: int, h: int, w: int, say: Callable[[str], None] = print) -> bool:
    say(f"Automatic hint vs baseline at S = {size} (plates {w} x {h}); precision = share of hint > 0.5 where "
        f"GT alpha > 0.5 (target >= {PRECISION_TARGET}); coverage = share of the GT interior (alpha > "
        f"{INTERIOR_ALPHA}, eroded {INTERIOR_EROSION:.0%} of S) with hint > 0.5 (target >= {COVERAGE_TARGET}); "
        f"empty frame: share hint > 0.5 (target 0)")
    head = f"| {'plate':<26} | {'auto precision':>14} | {'auto coverage':>13} | {'base precision':>14} | " \
           f"{'base coverage':>13} |"
    say(head)
    say("| " + " | ".join("-" * n for n in (26, 14, 13, 14, 13)) + " |")
    all_ok = True
    for plate in make_plates(h, w):
        auto, base, gt = hints_at_s(plate, size)
        ma, mb = measure(auto, gt, size), measure(base, gt, size)
        if plate.alpha.max() == 0:  # empty frame: solid share
            ok = ma["solid_share"] == 0.0
            say(f"| {plate.name:<26} | {'solid ' + format(ma['solid_share'], '.4f') + (' ok' if ok else ' NO'):>14} "
                f"| {'':>13} | {'solid ' + format(mb['solid_share'], '.4f'):>14} | {'':>13} |")
        else:
            ok = ma["precision"] >= PRECISION_TARGET and ma["coverage"] >= COVERAGE_TARGET
            say(f"| {plate.name:<26} | {_cell(ma['precision'], PRECISION_TARGET):>14} | "
                f"{_cell(ma['coverage'], COVERAGE_TARGET):>13} | {_cell(mb['precision'], None):>14} | "
                f"{_cell(mb['coverage'], None):>13} |")
        all_ok &= ok
    say("targets met on every plate" if all_ok else "TARGETS MISSED (see NO above)")
    return all_ok


def timing(size: int = 2048, runs: int = 3, say: Callable[[str], None] = print) -> None:
    rgb = torch.rand(1, 3, size, size)
    scripted = torch.jit.script(rough_hint)
    for name, fn in (("eager", rough_hint), ("TorchScript", scripted)):
        fn(rgb, 1)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn(rgb, 1)
            times.append(time.perf_counter() - t0)
        say(f"rough_hint at S = {size}, {name}, CPU ({torch.get_num_threads()} threads): "
            f"median {sorted(times)[len(times) // 2] * 1000:.0f} ms over {runs} runs")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--img-size", type=int, default=512, help="model resolution S")
    parser.add_argument("--plate", default="720x1280", help="plate size HxW")
    parser.add_argument("--timing", action="store_true", help="also time the hint at S = 2048 on the CPU")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.plate.lower().split("x"))
    ok = run_table(args.img_size, h, w)
    if args.timing:
        timing()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
