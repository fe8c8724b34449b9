"""Quality of the automatic hint (knob ``auto_hint``) on synthetic plates with known mattes.

    python benchmarks/bench_hint.py                 # S = 512, plates 720 x 1280: the tables of docs/benchmarks.md
    python benchmarks/bench_hint.py --limits        # also where the hint stops working
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

A second table (issue 30) holds **camera-like plates**: sensor noise in linear light (stronger in the
darks once encoded), tracking markers (dark dots, tape crosses 1-2 % of the frame wide; the largest hint
value on them must stay below 0.5), a green floor with a cyclorama curve and a contact shadow, screen
wrinkles with a hot spot, a screen that does not fill the frame (set walls, a light stand and a softbox
outside it: measured without and with a garbage matte, ``auto_hint = 2``), subject textures from the images
scikit-image ships (read from its package folder with OpenCV; a seeded fractal noise where it is not
installed, and the table says so) tinted to foliage and olive greens, fast motion blur (8 % and 20 % of the
width) and a blue screen. Each plate is measured clean, through 4:2:0 8-bit h264 and through 4:2:2 10-bit
ProRes (PyAV encodes and decodes it), with the same targets.

The same figures are printed for the baseline "screen minus max of the other two" key
(``1 - clamp(d / q98(d), 0, 1)``, ``d = S - max(A, B)``: the crude fallback of a C++ OFX
port), and ``--timing`` adds the hint's cost at S = 2048 against nothing else (the network
at that size takes a minute or more per frame on a CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
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
from corridorkey_model.keying.colour import linear_to_srgb_np, resize_bilinear_aa, srgb_to_linear_np  # noqa: E402
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


# --------------------------------------------------------------------------- camera-like plates (issue #30)
#
# Built in scene-linear light like the plates above, then through what a camera adds: sensor noise (shot noise
# that grows with the signal plus a read-noise floor, so the dark parts are the noisiest once sRGB-encoded),
# the sRGB encode, and, per variant, 4:2:0 8-bit h264 or 4:2:2 10-bit ProRes (PyAV, encoded and decoded).

#: Sensor noise in linear light: sigma = sqrt(SHOT * x + READ^2), an ISO 800-ish and an ISO 6400-ish camera.
NOISE_ISO800 = (0.0004, 0.002)
NOISE_ISO6400 = (0.003, 0.006)
VARIANTS = ("clean", "h264 4:2:0 8-bit", "ProRes 4:2:2 10-bit")


def _texture(name: str, h: int, w: int, seed: int) -> Tuple[np.ndarray, str]:
    """An H x W x 3 texture in [0, 1] (sRGB-ish) from scikit-image's bundled images, tiled and resized.

    Read with OpenCV from the package folder (scikit-image is not imported; it need not even work), so the
    benchmark runs where the package files are present; without them a seeded fractal noise stands in and the
    table says so.
    """
    spec = importlib.util.find_spec("skimage")
    folder = None if spec is None or spec.origin is None else Path(spec.origin).parent / "data"
    path = None if folder is None else folder / name
    if path is not None and path.is_file():
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # BGR, grey images become 3 equal channels
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        reps = (int(np.ceil(h / img.shape[0])), int(np.ceil(w / img.shape[1])), 1)
        return np.tile(img, reps)[:h, :w], name
    rng = np.random.default_rng(seed)
    noise = np.zeros((h, w), np.float32)
    for octave in range(1, 7):
        small = rng.random((2 ** octave + 1, 2 ** octave + 1)).astype(np.float32)
        noise += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) / octave
    noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
    return np.repeat(noise[..., None], 3, axis=2), "fractal noise (scikit-image data not found)"


def _tinted(tex: np.ndarray, dark, light) -> np.ndarray:
    """Linear colours: the texture's luminance mapped from ``dark`` to ``light`` (a two-colour palette)."""
    lum = (0.2126 * tex[..., 0] + 0.7152 * tex[..., 1] + 0.0722 * tex[..., 2])[..., None]
    return np.asarray(dark, np.float32) + (np.asarray(light, np.float32) - np.asarray(dark, np.float32)) * lum


def _camera(lin: np.ndarray, seed: int, noise=NOISE_ISO800) -> np.ndarray:
    """Sensor noise in linear light, then the sRGB encode, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    shot, read = noise
    sigma = np.sqrt(shot * np.clip(lin, 0.0, None) + read ** 2)
    noisy = lin + sigma * rng.standard_normal(lin.shape).astype(np.float32)
    return np.clip(linear_to_srgb_np(np.clip(noisy, 0.0, None).astype(np.float32)), 0.0, 1.0)


def through_codec(rgb: np.ndarray, variant: str) -> np.ndarray:
    """``rgb`` (H x W x 3 sRGB in [0, 1]) encoded and decoded: h264 4:2:0 8-bit or ProRes 4:2:2 10-bit (PyAV)."""
    import av  # PyAV: a dependency of the pipeline's video I/O

    if variant == VARIANTS[0]:
        return rgb
    h264 = variant == VARIANTS[1]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4" if h264 else "mov") as out:
        stream = out.add_stream("libx264" if h264 else "prores_ks", rate=24)
        stream.width, stream.height = rgb.shape[1], rgb.shape[0]
        stream.pix_fmt = "yuv420p" if h264 else "yuv422p10le"
        if h264:
            stream.options = {"crf": "18", "preset": "medium"}  # a good camera h264, not a proxy
        else:
            stream.options = {"profile": "2"}  # ProRes 422
        if h264:
            frm = av.VideoFrame.from_ndarray(np.round(rgb * 255.0).astype(np.uint8), format="rgb24")
        else:
            frm = av.VideoFrame.from_ndarray(np.round(rgb * 65535.0).astype(np.uint16), format="rgb48le")
        for packet in stream.encode(frm):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        decoded = next(inp.decode(video=0))
        if h264:
            return decoded.to_ndarray(format="rgb24").astype(np.float32) / 255.0
        return decoded.to_ndarray(format="rgb48le").astype(np.float32) / 65535.0


@dataclass(frozen=True)
class CameraPlate:
    name: str
    lin: np.ndarray  # H x W x 3 scene-linear plate before the camera
    alpha: np.ndarray  # H x W ground truth (0: screen, markers, floor, studio)
    screen_channel: int
    seed: int
    noise: Tuple[float, float] = NOISE_ISO800
    garbage: Optional[np.ndarray] = None  # H x W garbage matte (1: the subject may be here), when the set needs one

    def rgb(self, variant: str) -> np.ndarray:
        return through_codec(_camera(self.lin, self.seed, self.noise), variant)


def _over(alpha: np.ndarray, fg: np.ndarray, back: np.ndarray) -> np.ndarray:
    return fg * alpha[..., None] + back * (1.0 - alpha[..., None])


def _textured_subject(h: int, w: int, sub: Subject, edge: float, shirt: np.ndarray, legs: np.ndarray,
                      skin=(0.60, 0.38, 0.28)) -> Tuple[np.ndarray, np.ndarray]:
    alpha = np.zeros((h, w), np.float32)
    fg = np.zeros((h, w, 3), np.float32)
    for sdf, colour in ((sub.head, np.broadcast_to(np.asarray(skin, np.float32), (h, w, 3))), (sub.body, shirt),
                        (sub.legs, legs)):
        a = _soft(sdf, edge)
        fg = fg * (1 - a[..., None]) + colour * a[..., None]
        alpha = np.maximum(alpha, a)
    return alpha, fg


def _markers(h: int, w: int, alpha: np.ndarray, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Tracking markers over the screen: (coverage H x W, colour H x W x 3 linear). Dots of 0.6 % of the
    height and tape crosses 1-2 % of the width wide, dark, light grey, pink and a darker green tape, set
    only where the subject is not."""
    rng = np.random.default_rng(seed)
    cover = np.zeros((h, w), np.float32)
    colour = np.zeros((h, w, 3), np.float32)
    tapes = [(0.015, 0.02, 0.015), (0.35, 0.37, 0.35), (0.6, 0.15, 0.25), (0.03, 0.22, 0.04), (0.01, 0.01, 0.01)]
    for i, y in enumerate(np.linspace(0.08, 0.92, 5)):
        for j, x in enumerate(np.linspace(0.06, 0.94, 7)):
            cy, cx = int(y * h + rng.uniform(-0.02, 0.02) * h), int(x * w + rng.uniform(-0.02, 0.02) * w)
            m = np.zeros((h, w), np.float32)
            tape = tapes[(i + j) % len(tapes)]
            if (i + j) % 2 == 0:  # a dot
                cv2.circle(m, (cx, cy), max(2, int(0.006 * h)), 1.0, -1, cv2.LINE_AA)
            else:  # a tape cross, 1-2 % of the width across, arms 0.3 % of the height thick
                half = int(rng.uniform(0.005, 0.01) * w)
                t = max(2, int(0.003 * h))
                cv2.line(m, (cx - half, cy), (cx + half, cy), 1.0, t, cv2.LINE_AA)
                cv2.line(m, (cx, cy - half), (cx, cy + half), 1.0, t, cv2.LINE_AA)
            m *= (alpha < 0.01)
            colour = colour * (1 - m[..., None]) + np.asarray(tape, np.float32) * m[..., None]
            cover = np.maximum(cover, m)
    return cover, colour


def make_camera_plates(h: int, w: int) -> Tuple[List[CameraPlate], str]:
    """The camera-like plates and the name of the texture source used."""
    edge = 2.0 / h
    ys, xs = _grid(h, w)
    sub = person(h, w)
    green = np.asarray(GREEN_SCREEN, np.float32)
    base_light = 1.0 + 0.12 * (2.0 * (0.6 * xs + 0.4 * ys) - 1.0)
    screen = green * base_light[..., None]
    plates: List[CameraPlate] = []
    a, fg = _colours(sub, edge)

    tex_shirt, src = _texture("astronaut.png", h, w, 1)
    tex_grass, _ = _texture("grass.png", h, w, 2)
    tex_fur, _ = _texture("chelsea.png", h, w, 3)
    tex_gravel, _ = _texture("gravel.png", h, w, 4)

    # 1. noise: a high-ISO camera, noisiest in the dark trousers and the shadowed screen
    plates.append(CameraPlate("cam: ISO 6400 noise", _over(a, fg, screen), a, 1, 20, NOISE_ISO6400))
    # 2. tracking markers on the screen (GT 0 on them)
    cover, mcol = _markers(h, w, a, 21)
    back = screen * (1 - cover[..., None]) + mcol * cover[..., None]
    plates.append(CameraPlate("cam: tracking markers", _over(a, fg, back), a, 1, 21))
    # 3. a green floor: cyclorama curve from wall (y < 0.70) to floor (y > 0.80), the floor less lit and more
    #    desaturated by the grazing top light, the subject's contact shadow at its feet (down to 35 %)
    t = np.clip((ys - 0.70) / 0.10, 0.0, 1.0)
    t = t * t * (3 - 2 * t)
    floor = green * 0.75 + 0.025  # grazing light: darker, with a little white sheen
    cyc = screen * (1 - t[..., None]) + floor * t[..., None]
    feet = _soft(_box(ys, xs, 0.955, 0.985, 0.40, 0.60, w / h), 0.03)
    contact = 1.0 - 0.65 * cv2.GaussianBlur(feet, (0, 0), 0.015 * h) * t
    plates.append(CameraPlate("cam: green floor, cyc, contact shadow", _over(a, fg, cyc * contact[..., None]), a, 1,
                              22))
    # 4. a wrinkled screen with a hot spot: folds that shade the cloth +-20 %, a specular hot spot
    folds = 1.0 + 0.2 * np.sin(2 * np.pi * (xs * 7 + ys * 3 + 0.3 * np.sin(2 * np.pi * ys * 2))) ** 7
    creases = 1.0 - 0.25 * np.exp(-(((xs - 0.2 - 0.3 * ys) * w) / 4.0) ** 2)  # a sharp crease (dark line)
    spot = np.exp(-(((xs - 0.75) * w / h) ** 2 + (ys - 0.3) ** 2) / (2 * 0.12 ** 2))
    hot = screen * (folds * creases * (1 + 0.8 * spot))[..., None] + 0.04 * spot[..., None]
    plates.append(CameraPlate("cam: wrinkles + hot spot", _over(a, fg, hot), a, 1, 23))
    # 5. the screen does not fill the frame: studio walls, a light stand and a softbox outside it
    inside = _soft(_box(ys, xs, 0.07, 2.0, 0.14, 0.86, w / h), 0.004)  # the screen: not the top and sides
    studio = np.full((h, w, 3), 0.03, np.float32) * (0.6 + 0.8 * ys)[..., None]
    stand = _soft(_box(ys, xs, 0.10, 1.2, 0.06, 0.066, w / h), 0.002)  # a pole
    box = _soft(_box(ys, xs, 0.05, 0.22, 0.02, 0.11, w / h), 0.002)  # a softbox, bright
    studio = studio * (1 - stand[..., None]) + np.asarray((0.01, 0.01, 0.012), np.float32) * stand[..., None]
    studio = studio * (1 - box[..., None]) + np.asarray((0.9, 0.88, 0.85), np.float32) * box[..., None]
    back = screen * inside[..., None] + studio * (1 - inside[..., None])
    garbage = cv2.erode((inside > 0.5).astype(np.uint8), np.ones((15, 15), np.uint8)).astype(np.float32)
    plates.append(CameraPlate("cam: screen not filling frame", _over(a, fg, back), a, 1, 24, garbage=garbage))
    # 6. real textures: a printed shirt, olive/foliage-green trousers, a cat-fur-textured head
    shirt = srgb_lin(tex_shirt)
    legs = _tinted(tex_grass, (0.01, 0.02, 0.004), (0.10, 0.16, 0.03))  # foliage: yellow-greens
    a6, fg6 = _textured_subject(h, w, sub, edge, shirt, legs, skin=(0.6, 0.38, 0.28))
    head = _soft(sub.head, edge)
    fg6 = fg6 * (1 - head[..., None]) + srgb_lin(tex_fur) * head[..., None]
    plates.append(CameraPlate("cam: textures, foliage greens", _over(a6, fg6, screen), a6, 1, 25))
    olive = _tinted(tex_gravel, (0.02, 0.025, 0.006), (0.09, 0.11, 0.03))  # olive drab
    a7, fg7 = _textured_subject(h, w, sub, edge, olive, _tinted(tex_grass, (0.005, 0.01, 0.003),
                                                                 (0.05, 0.09, 0.02)))
    plates.append(CameraPlate("cam: olive + foliage clothing", _over(a7, fg7, screen), a7, 1, 26))
    # 7. fast motion blur across the screen: 8 % and 20 % of the width (at 20 % no pixel is 0.95 opaque: no
    #    coverage figure, but the precision: the half-transparent smear must not be solid)
    for frac, seed in ((0.08, 27), (0.2, 29)):
        k = max(3, int(frac * w) | 1)
        a8 = cv2.blur(a, (k, 1))
        fg8 = cv2.blur(fg * a[..., None], (k, 1)) / np.maximum(a8, 1e-6)[..., None]
        plates.append(CameraPlate(f"cam: fast motion blur ({frac:.0%})", _over(a8, fg8, screen), a8, 1, seed))
    # 8. a blue screen with markers and high-ISO noise
    blue = np.asarray(BLUE_SCREEN, np.float32) * base_light[..., None]
    cover, mcol = _markers(h, w, a, 30)
    plates.append(CameraPlate("cam: blue screen, markers, ISO 6400", _over(a, fg, blue * (1 - cover[..., None])
                                                                              + mcol * cover[..., None]),
                              a, 2, 30, NOISE_ISO6400))
    # 9. the empty screen with everything: markers, floor, wrinkles, noise
    empty = np.zeros((h, w), np.float32)
    cover, mcol = _markers(h, w, empty, 28)
    back = (cyc * (folds * creases)[..., None]) * (1 - cover[..., None]) + mcol * cover[..., None]
    plates.append(CameraPlate("cam: empty, markers + floor", back, empty, 1, 28, NOISE_ISO6400))
    return plates, src


def srgb_lin(tex: np.ndarray) -> np.ndarray:
    """A texture read as sRGB code values, to linear light."""
    return srgb_to_linear_np(tex.astype(np.float32))


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
    return hints_of(plate.rgb, plate.alpha, plate.screen_channel, size)


def hints_of(rgb: np.ndarray, alpha: np.ndarray, screen_channel: int, size: int,
             garbage: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(auto hint, baseline, GT alpha) at S x S of an sRGB plate, through the .pt's preprocess; with a
    ``garbage`` matte in the hint channel and ``auto_hint = 2`` when one is given."""
    matte = np.zeros_like(alpha) if garbage is None else garbage
    rgba = np.concatenate([rgb, matte[..., None]], axis=2).astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1)[None]
    with torch.no_grad():
        net_in = frame.preprocess(x, size, frame.GAMMA_SRGB, 1 if garbage is None else 2, screen_channel)
        rgb_s = resize_bilinear_aa(x[:, 0:3], size, size)
        base = baseline_key(rgb_s, screen_channel)
        gt = resize_bilinear_aa(torch.from_numpy(np.ascontiguousarray(alpha))[None, None], size, size)
    return net_in[0, 3].numpy(), base[0, 0].numpy(), gt[0, 0].numpy()


def marker_solid(hint: np.ndarray, plate: CameraPlate, size: int) -> float:
    """The largest hint value on a tracking marker (at S): must stay below 0.5."""
    h, w = plate.alpha.shape
    cover, _ = _markers(h, w, plate.alpha, plate.seed)
    cover_s = cv2.resize(cover, (size, size), interpolation=cv2.INTER_AREA) > 0.05
    return float(hint[cover_s].max()) if cover_s.any() else 0.0


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


def run_camera_table(size: int, h: int, w: int, say: Callable[[str], None] = print) -> bool:
    """The camera-like plates, each clean, through h264 4:2:0 and through ProRes 4:2:2 (see make_camera_plates)."""
    plates, src = make_camera_plates(h, w)
    say(f"Camera-like plates at S = {size} (plates {w} x {h}; textures: {src}); auto precision / coverage "
        f"(targets {PRECISION_TARGET} / {COVERAGE_TARGET}), empty frames: share solid (target 0); markers: the "
        f"largest hint value on a tracking marker (target < 0.5)")
    say(f"| {'plate':<46} | " + " | ".join(f"{v:^24}" for v in VARIANTS) + " |")
    say("| " + " | ".join("-" * n for n in (46, 24, 24, 24)) + " |")
    all_ok = True
    rows = [(p, None) for p in plates] + [(p, p.garbage) for p in plates if p.garbage is not None]
    for plate, garbage in rows:
        cells = []
        for variant in VARIANTS:
            auto, _base, gt = hints_of(plate.rgb(variant), plate.alpha, plate.screen_channel, size, garbage)
            m = measure(auto, gt, size)
            if plate.alpha.max() == 0:
                ok = m["solid_share"] == 0.0
                cell = f"solid {m['solid_share']:.4f}{' ok' if ok else ' NO'}"
            else:  # no GT interior (a 20 % motion blur): precision only
                covered = m["coverage"] != m["coverage"] or m["coverage"] >= COVERAGE_TARGET
                ok = m["precision"] >= PRECISION_TARGET and covered
                coverage = "-" if m["coverage"] != m["coverage"] else f"{m['coverage']:.3f}"
                cell = f"{m['precision']:.3f} / {coverage}{' ok' if ok else ' NO'}"
            if "markers" in plate.name:
                top = marker_solid(auto, plate, size)
                ok = ok and top < 0.5
                cell += f" m{top:.2f}"
            if garbage is None and plate.garbage is not None:
                cell = cell.replace(" NO", " (a)")  # documented: needs a garbage matte, not counted
                ok = True
            cells.append(cell)
            all_ok &= ok
        name = plate.name + (" + garbage matte" if garbage is not None else "")
        say(f"| {name:<46} | " + " | ".join(f"{c:>24}" for c in cells) + " |")
    say("(a) without a garbage matte the studio outside the screen is not screen-coloured, so it is solid in the "
        "hint: expected, see docs/pipeline.md (--garbage-matte) and the gizmo's GarbageMatte input")
    say("camera-like targets met on every plate and variant" if all_ok else "CAMERA-LIKE TARGETS MISSED (see NO)")
    return all_ok


def run_limits(size: int, h: int, w: int, say: Callable[[str], None] = print) -> None:
    """Where the hint stops working (docs/benchmarks.md, "limits"): the camera pipeline (ISO 800 noise, h264)
    on the standard person with one condition pushed step by step. Printed, not targets."""
    sub = person(h, w)
    a, fg = _colours(sub, 2.0 / h)
    ys, xs = _grid(h, w)
    green = np.asarray(GREEN_SCREEN, np.float32)
    variant = VARIANTS[1]

    def figures(lin: np.ndarray, alpha: np.ndarray, seed: int) -> str:
        plate = CameraPlate("limit", lin, alpha, 1, seed)
        auto, _base, gt = hints_of(plate.rgb(variant), alpha, 1, size)
        m = measure(auto, gt, size)
        if alpha.max() == 0:
            return f"solid {m['solid_share']:.4f}"
        return f"{m['precision']:.3f} / {m['coverage']:.3f}"

    say(f"Limits at S = {size} ({variant}, ISO 800 noise): precision / coverage as one condition grows")
    say("| condition | " + " | ".join(["value", "precision / coverage"]) + " |")
    say("| --- | --- | --- |")
    for stops in (-3, -5, -6, -7, -8):  # the whole plate under-exposed: the screen too dark
        say(f"| under-exposed | {stops} stops | {figures(_over(a, fg, green) * 2.0 ** stops, a, 40)} |")
    for grad in (0.5, 0.7, 0.8, 0.85):  # light falling off across the screen: +-grad
        light = 1.0 + grad * (2.0 * xs - 1.0)
        say(f"| uneven light, left to right | +-{grad:.0%} | {figures(_over(a, fg, green * light[..., None]), a, 41)} |")
    for grad in (0.7, 0.8, 0.85):
        light = 1.0 + grad * (2.0 * xs - 1.0)
        empty = np.zeros((h, w), np.float32)
        say(f"| uneven light, empty screen | +-{grad:.0%} | {figures(green * light[..., None], empty, 42)} |")
    shirt = np.asarray((0.35, 0.33, 0.30), np.float32)
    for mix in (0.1, 0.2, 0.3, 0.4, 0.5):  # the shirt's colour moved toward the screen's own
        colour = shirt * (1 - mix) + green * mix
        a_s, fg_s = _colours(sub, 2.0 / h, shirt=tuple(colour))
        say(f"| shirt toward the screen's hue | {mix:.0%} screen | {figures(_over(a_s, fg_s, green), a_s, 43)} |")


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
    parser.add_argument("--no-camera", action="store_true", help="skip the camera-like plates (h264, ProRes)")
    parser.add_argument("--limits", action="store_true", help="also print where the hint stops working")
    parser.add_argument("--timing", action="store_true", help="also time the hint at S = 2048 on the CPU")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.plate.lower().split("x"))
    ok = run_table(args.img_size, h, w)
    if not args.no_camera:
        print()
        ok = run_camera_table(args.img_size, h, w) and ok
    if args.limits:
        print()
        run_limits(args.img_size, h, w)
    if args.timing:
        timing()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
