"""Flicker and fidelity of the temporal smoothing (``--temporal``) on synthetic sequences with known mattes.

    python benchmarks/bench_temporal.py                    # the table of docs/benchmarks.md
    python benchmarks/bench_temporal.py --strength 0.5 --frames 24 --size 144x256

Sequences (``--frames`` frames each, sRGB plates as the network receives them): a soft,
hairy subject over a green screen, sensor noise on every frame (Gaussian, sigma 0.015;
``--noise`` changes it: a grainier plate gets less smoothing)

* ``static``: nothing moves;
* ``static h264``: the same encoded with PyAV (libx264, 4:2:0) and decoded;
* ``move 2px`` / ``move 12px``: the subject moves 2 or 12 pixels a frame;
* ``blur 16px``: it moves 16 pixels a frame, motion-blurred over the whole frame interval.

Mattes:

* ``model``: a matte model, the ground truth plus independent per-frame Gaussian noise
  (sigma 0.08) on its edges (where 0 < alpha < 1, grown by 2 pixels), clamped to [0, 1];
* ``.pt``: the ``.pt``'s own output (the eager reference ``frame.key_frame``, which the
  ``.pt`` equals within 1e-5) of a RANDOM-WEIGHT network at S = ``--img-size``, the hint a
  hard blob around the subject. Random weights key nothing: its numbers measure how much
  the output varies from frame to frame, not quality.

Per sequence and method:

* **flicker**: mean ``|alpha(t) - alpha(t-1)|`` over the pixels where the ground truth
  did not change between t-1 and t;
* **fidelity**: mean ``|alpha(t) - gt(t)|`` over the pixels where it did (lag and ghosting
  show here). For the ``.pt`` rows it is ``|alpha(t) - alpha_off(t)|`` instead: how far the
  method moves the network's own key where the subject moved (0 for off).

Methods: ``off``; ``prev blend``, the peer's previous-frame blend at the same strength,
``(O_t + s O_{t-1}) / (1 + s)``; ``temporal``, :func:`corridorkey_model.keying.temporal.smooth`.
Targets at the chosen strength: flicker <= 0.5 x off on the static sequences; fidelity on
the moving ones within 10 % of off (matte model rows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corridorkey_model.keying import frame, temporal  # noqa: E402

NOISE_SIGMA = 0.015
MATTE_NOISE_SIGMA = 0.08
FLICKER_TARGET = 0.5  # x off, static sequences
FIDELITY_TARGET = 1.10  # x off, moving sequences
SCREEN = np.array([0.26, 0.70, 0.30], np.float32)  # sRGB green screen
SKIN = np.array([0.80, 0.58, 0.46], np.float32)
CLOTH = np.array([0.25, 0.28, 0.55], np.float32)


@dataclass(frozen=True)
class Sequence_:
    name: str
    plates: np.ndarray  # T x H x W x 3 sRGB (network space)
    gt: np.ndarray  # T x H x W alpha
    moving: bool


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def subject_alpha(h: int, w: int, cx: float, wisps: np.ndarray) -> np.ndarray:
    """A soft ellipse centred at column ``cx`` with hair-like wisps (``wisps``: a fixed H x 2W texture)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ry, rx = 0.32 * h, 0.16 * w
    d = np.sqrt(((yy - 0.5 * h) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    alpha = 1.0 - _smoothstep(0.93, 1.07, d)
    shift = int(round(cx)) - w // 2  # the wisps travel with the subject
    tex = np.roll(wisps, shift, axis=1)[:, :w]
    hair = tex * (1.0 - _smoothstep(1.0, 1.25, d)) * (d > 1.0)
    return np.clip(alpha + 0.6 * hair, 0.0, 1.0).astype(np.float32)


def blurred_alpha(h: int, w: int, cx0: float, step: float, wisps: np.ndarray, samples: int = 16) -> np.ndarray:
    """The subject moving from ``cx0`` by ``step`` over one frame, averaged over the shutter (motion blur)."""
    return np.mean([subject_alpha(h, w, cx0 + step * (k + 0.5) / samples, wisps) for k in range(samples)], axis=0)


def compose(alpha: np.ndarray, rng: np.random.Generator, noise: float = NOISE_SIGMA) -> np.ndarray:
    """The subject over the screen in sRGB plus sensor noise: ``H x W x 3``."""
    h, w = alpha.shape
    mix = _smoothstep(0.3, 0.7, np.mgrid[0:h, 0:w][0] / h)[..., None].astype(np.float32)
    fg = SKIN * (1 - mix) + CLOTH * mix
    rgb = fg * alpha[..., None] + SCREEN * (1.0 - alpha[..., None])
    return (rgb + rng.normal(0.0, noise, rgb.shape)).astype(np.float32)


def h264_round_trip(plates: np.ndarray) -> np.ndarray:
    """Encode with PyAV (libx264, yuv420p) and decode: what a compressed plate looks like."""
    from corridorkey_model.pipeline import frame_io

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plate.mp4"
        frame_io.write_video(path, list(plates), codec="h264")
        return np.stack([rgb for _i, rgb in frame_io.iter_video(path)]).astype(np.float32)


def make_sequences(h: int, w: int, count: int, seed: int = 0, noise: float = NOISE_SIGMA) -> List[Sequence_]:
    rng = np.random.default_rng(seed)
    wisps = _smoothstep(0.55, 1.0, rng.random((h, 2 * w)).astype(np.float32))
    seqs = []

    def moving(name: str, step: float, blur: bool) -> Sequence_:
        start = 0.5 * w - step * (count - 1) / 2
        gts = [blurred_alpha(h, w, start + step * t, step, wisps) if blur else subject_alpha(h, w, start + step * t,
                                                                                             wisps)
               for t in range(count)]
        gt = np.stack(gts)
        return Sequence_(name, np.stack([compose(a, rng, noise) for a in gt]), gt, True)

    still = subject_alpha(h, w, 0.5 * w, wisps)
    gt = np.repeat(still[None], count, axis=0)
    static = np.stack([compose(still, rng, noise) for _ in range(count)])
    seqs.append(Sequence_("static", static, gt, False))
    seqs.append(Sequence_("static h264", h264_round_trip(np.clip(static, 0, 1)), gt, False))
    seqs.append(moving("move 2px", 2.0, False))
    seqs.append(moving("move 12px", 12.0, False))
    seqs.append(moving("blur 16px", 16.0, True))
    return seqs


# --------------------------------------------------------------------------- mattes


def matte_model(gt: np.ndarray, seed: int) -> np.ndarray:
    """Ground truth + independent per-frame noise on the edges: ``T x H x W x 4`` raw outputs (fg constant)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for a in gt:
        edge = ((a > 0.0) & (a < 1.0)).astype(np.uint8)
        edge = cv2.dilate(edge, np.ones((5, 5), np.uint8)).astype(bool)
        noisy = np.clip(a + edge * rng.normal(0.0, MATTE_NOISE_SIGMA, a.shape), 0.0, 1.0).astype(np.float32)
        out.append(np.concatenate([np.broadcast_to(SKIN, a.shape + (3,)), noisy[..., None]], axis=2))
    return np.stack(out).astype(np.float32)


def network_outputs(model: torch.nn.Module, seq: Sequence_) -> np.ndarray:
    """The ``.pt``'s reference output per frame: ``T x H x W x 4`` (straight sRGB fg, linear alpha)."""
    outs = []
    with torch.no_grad():
        for plate, gt in zip(seq.plates, seq.gt):
            hint = (gt > 0.05).astype(np.float32)[..., None]
            x = torch.from_numpy(np.concatenate([plate, hint], axis=2)).permute(2, 0, 1)[None].contiguous()
            outs.append(frame.key_frame(model, x)[0].permute(1, 2, 0).numpy())
    return np.stack(outs).astype(np.float32)


# --------------------------------------------------------------------------- methods and measures


def method_off(outs: np.ndarray, _plates: np.ndarray, _s: float) -> np.ndarray:
    return outs


def method_prev_blend(outs: np.ndarray, _plates: np.ndarray, s: float) -> np.ndarray:
    """The peer's previous-frame blend: ``(O_t + s O_{t-1}) / (1 + s)`` (the first frame blends with itself)."""
    prev = np.concatenate([outs[:1], outs[:-1]], axis=0)
    return (outs + s * prev) / (1.0 + s)


def method_temporal(outs: np.ndarray, plates: np.ndarray, s: float) -> np.ndarray:
    n = len(outs)
    return np.stack([temporal.smooth_np(outs[t], plates[t],
                                        outs[t - 1] if t > 0 else None, plates[t - 1] if t > 0 else None,
                                        outs[t + 1] if t + 1 < n else None, plates[t + 1] if t + 1 < n else None, s)
                     for t in range(n)])


METHODS: Dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray]] = {
    "off": method_off, "prev blend": method_prev_blend, "temporal": method_temporal}


def flicker(alpha: np.ndarray, gt: np.ndarray) -> float:
    still = np.abs(gt[1:] - gt[:-1]) <= 1e-6
    return float(np.abs(alpha[1:] - alpha[:-1])[still].mean())


def fidelity(alpha: np.ndarray, reference: np.ndarray, gt: np.ndarray) -> float:
    changed = np.abs(gt[1:] - gt[:-1]) > 1e-6
    return float(np.abs(alpha[1:] - reference[1:])[changed].mean()) if changed.any() else float("nan")


def table(seqs: Sequence[Sequence_], strength: float, model: Optional[torch.nn.Module],
          say: Callable[[str], None] = print) -> bool:
    """Print the markdown table; return whether every target holds (matte model rows)."""
    ok = True
    say("| sequence | matte | method | flicker | x off | fidelity | x off |")
    say("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for seq in seqs:
        mattes: List[Tuple[str, np.ndarray]] = [("model", matte_model(seq.gt, seed=1))]
        if model is not None:
            mattes.append((".pt (random)", network_outputs(model, seq)))
        for matte_name, outs in mattes:
            results = {name: fn(outs, seq.plates, strength)[..., 3] for name, fn in METHODS.items()}
            off_alpha = results["off"]
            is_model = matte_name == "model"
            ref = seq.gt if is_model else off_alpha
            base_f, base_d = flicker(off_alpha, seq.gt), fidelity(off_alpha, ref, seq.gt)
            for name, alpha in results.items():
                f, d = flicker(alpha, seq.gt), fidelity(alpha, ref, seq.gt)
                rf = f / base_f if base_f > 0 else float("nan")
                rd = d / base_d if base_d > 0 else float("nan")
                if is_model and name == "temporal":
                    if not seq.moving and not rf <= FLICKER_TARGET:
                        ok = False
                    if seq.moving and not rd <= FIDELITY_TARGET:
                        ok = False
                ds = "n/a" if np.isnan(d) else f"{d:.4f}"
                rds = "n/a" if np.isnan(rd) else f"{rd:.2f}"
                say(f"| {seq.name} | {matte_name} | {name} | {f:.4f} | {rf:.2f} | {ds} | {rds} |")
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--strength", type=float, default=1.0, help="temporal strength (0-1) of both smoothers")
    parser.add_argument("--frames", type=int, default=24, help="frames per sequence (at least 24 for the table)")
    parser.add_argument("--size", default="144x256", help="plate size HxW")
    parser.add_argument("--noise", type=float, default=NOISE_SIGMA, help="sensor noise sigma of the plates (sRGB)")
    parser.add_argument("--img-size", type=int, default=128, help="S of the random-weight network (0: skip it)")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    temporal.check_strength(args.strength)
    torch.set_grad_enabled(False)
    model = None
    if args.img_size:
        from corridorkey_model.testing import make_random_model

        model = make_random_model(args.img_size, seed=0)
    seqs = make_sequences(h, w, args.frames, noise=args.noise)
    print(f"temporal smoothing, strength {args.strength:g}: {args.frames} frames of {h}x{w}, sensor noise sigma "
          f"{args.noise}, matte-model edge noise sigma {MATTE_NOISE_SIGMA}; RADIUS {temporal.RADIUS}, LOW "
          f"{temporal.LOW}, HIGH {temporal.HIGH}" + (f"; .pt: random weights at S = {args.img_size}" if model else ""))
    ok = table(seqs, args.strength, model)
    print(f"targets (matte model, temporal): flicker <= {FLICKER_TARGET} x off on static sequences, fidelity <= "
          f"{FIDELITY_TARGET} x off on moving ones: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
