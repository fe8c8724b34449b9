"""Throughput of the threaded runner vs a naive sequential loop on a 1080p PNG clip.

The network is swapped for a fast stand-in (a few tensor ops with GreenFormer's
interface), so the figure measures what the runner is for: overlapping frame
reading, pre/postprocessing and writing with inference. Both paths run the
very same stage functions of :mod:`corridorkey_model.pipeline.stages` and write the
same four outputs per frame.

    python benchmarks/bench_pipeline.py            # 100 frames, 1920x1080
    python benchmarks/bench_pipeline.py --quick    # 20 frames
    python benchmarks/bench_pipeline.py --infer-ms 40   # pretend inference takes 40 ms (a GPU)

Prints frames per second of each and the ratio. Timings depend on the machine's
cores and load; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from corridorkey_model.pipeline import clips, frame_io, outputs, stages
from corridorkey_model.testing import green_screen_plate


class FastStandIn(torch.nn.Module):
    """GreenFormer's interface (``img_size``; ``x -> (alpha, fg, delta) logits``) at almost no cost."""

    def __init__(self, img_size: int, infer_ms: float = 0.0) -> None:
        super().__init__()
        self.img_size = img_size
        self.infer_ms = infer_ms

    def forward(self, x):
        if self.infer_ms:
            time.sleep(self.infer_ms / 1000.0)  # releases the GIL, like a CUDA call
        alpha_logits = x[:, 3:4] * 8.0 - 4.0
        fg_logits = x[:, 0:3] * 0.5
        delta = torch.zeros_like(x)
        return alpha_logits, fg_logits, delta


def make_clip(root: Path, frames: int, height: int, width: int, unique: int = 4) -> Path:
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    for u in range(min(unique, frames)):
        p = green_screen_plate(height, width, seed=u)
        cv2.imwrite(str(root / "Input" / f"plate.{1001 + u}.png"), frame_io.to_uint8(p[..., 2::-1]))
        cv2.imwrite(str(root / "AlphaHint" / f"hint.{1001 + u}.png"), frame_io.to_uint8(p[..., 3]))
    for i in range(unique, frames):
        shutil.copy(root / "Input" / f"plate.{1001 + i % unique}.png", root / "Input" / f"plate.{1001 + i}.png")
        shutil.copy(root / "AlphaHint" / f"hint.{1001 + i % unique}.png", root / "AlphaHint" / f"hint.{1001 + i}.png")
    return root


def run_both(root: Path, work: Path, model: torch.nn.Module, img_size: int, io_threads: int,
             say=print) -> dict:
    """Key the clip at ``root`` with the sequential loop and with the threaded runner; frames/s of each."""
    worker = stages.Worker(model.eval(), torch.device("cpu"))
    s = stages.KeySettings(despill_strength=5.0)
    out = outputs.OutputSettings(overwrite=True)
    results = {}
    for name in ("sequential", "runner"):
        clip = clips.load_clip(clips.scan(root, output=work / f"Output_{name}")[0])
        outputs.prepare_output(clip, out)
        t = time.perf_counter()
        if name == "sequential":
            count = stages.key_clip_sequential(clip, clip.frames, worker, img_size, s, out)
        else:
            count = stages.key_clip(clip, clip.frames, [worker], img_size, s, out, io_threads)
        dt = time.perf_counter() - t
        results[name] = count / dt
        say(f"{name:>10}: {count} frames in {dt:6.1f} s = {count / dt:6.2f} fps")
    a = frame_io.read_image(work / "Output_sequential" / "Processed" / "plate.1001.exr")
    b = frame_io.read_image(work / "Output_runner" / "Processed" / "plate.1001.exr")
    assert np.array_equal(a, b), "runner and sequential outputs differ"
    results["ratio"] = results["runner"] / results["sequential"]
    say(f"runner / sequential throughput: {results['ratio']:.2f}x")
    return results


def measure(frames: int = 100, img_size: int = 256, real_frames: int = 0, height: int = 1080, width: int = 1920,
            io_threads: int = 2) -> dict:
    """For benchmarks/run.py: the fast stand-in on ``frames`` frames and, if ``real_frames``, the real
    (random-init) GreenFormer at ``img_size`` on that many frames. Returns figures and printable lines."""
    from corridorkey_model.testing import make_random_model

    lines = []
    say = lines.append
    work = Path(tempfile.mkdtemp(prefix="ck_bench_"))
    try:
        root = make_clip(work / "Bench", frames, height, width)
        say(f"fast stand-in model (S={img_size}), {frames} frames {width}x{height} PNG, {io_threads} io threads:")
        fast = run_both(root, work / "fast", FastStandIn(img_size), img_size, io_threads, say)
        real = None
        if real_frames:
            real_root = make_clip(work / "BenchReal", real_frames, height, width)
            say(f"real GreenFormer (random init) at S={img_size}, {real_frames} frames:")
            real = run_both(real_root, work / "real", make_random_model(img_size), img_size, io_threads, say)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"fast": fast, "real": real, "lines": lines}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="20 frames")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--img-size", type=int, default=512, help="model resolution the frames are resized to")
    ap.add_argument("--infer-ms", type=float, default=0.0, help="simulated inference time per frame")
    ap.add_argument("--io-threads", type=int, default=2)
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="torch intra-op threads (0: torch's default); 1 avoids oversubscription on few cores")
    ap.add_argument("--workdir", type=Path, default=None, help="where the clip goes (default: a temp folder)")
    args = ap.parse_args()
    n = 20 if args.quick else args.frames
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ck_bench_"))
    try:
        t0 = time.perf_counter()
        root = make_clip(work / "Bench", n, args.height, args.width)
        print(f"clip: {n} frames {args.width}x{args.height} 8-bit PNG (+ hints) in {time.perf_counter() - t0:.1f} s")
        print(f"stand-in model at S={args.img_size}, simulated inference {args.infer_ms:g} ms/frame, "
              f"torch threads {torch.get_num_threads()}, io threads {args.io_threads}")
        run_both(root, work, FastStandIn(args.img_size, args.infer_ms), args.img_size, args.io_threads)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
