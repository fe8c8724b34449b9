"""Cost of the despeckle (``corridorkey_model/keying/despeckle.py``) at plate sizes, as a markdown table.

    python benchmarks/bench_despeckle.py                 # 1080p and 4K, despeckle_size 0 and 400, CPU
    python benchmarks/bench_despeckle.py --quick         # fewer runs
    python benchmarks/bench_despeckle.py --threads 1     # torch on one thread
    python benchmarks/bench_despeckle.py --device cuda   # on a GPU (timed with synchronisation)

The matte is a keyed-looking one: a soft-edged subject with wisps, plus ~1 speck per
1000 pixels (islands of 1 to ~600 pixels, most below 400) on a low haze. Columns: the
eager function, the same function compiled with ``torch.jit.script`` (what the ``.pt``
runs; timed after three warm-up calls, as the TorchScript profiling executor
optimises on the first calls) and upstream's OpenCV despeckle (``tests/support/despeckle_oracle.py``)
for reference. ``despeckle_size`` 0 is off (the knob's default): the function returns
its input. Timings are median [min-max] over the runs; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from corridorkey_model.keying.despeckle import despeckle

FRAMES = {"1080p": (1080, 1920), "4K": (2160, 3840)}
SIZES = (0, 400)


def speckled_matte(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A float32 ``H x W`` matte: soft subject with wisps, specks of 1 to ~600 px on a haze below 0.5."""
    rng = np.random.default_rng(seed)
    alpha = (rng.random((height, width), dtype=np.float32) * 0.2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    d = np.sqrt(((yy - height * 0.5) / (height * 0.3)) ** 2 + ((xx - width * 0.5) / (width * 0.2)) ** 2)
    alpha = np.maximum(alpha, np.clip((1.0 - d) * 40.0 + 0.5, 0.0, 1.0))  # a ~25 px soft edge at 4K
    wisps = (d > 1.0) & (d < 1.15) & (rng.random((height, width)) < 0.3)
    alpha[wisps] = 0.7
    for _ in range(height * width // 1000):  # specks: squares of side 1-25 px
        side = int(rng.integers(1, 26))
        y, x = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
        alpha[y:y + side, x:x + side] = 0.9
    return alpha


def timed(fn: Callable[[], Any], runs: int, sync: Callable[[], None], warmup: int = 1) -> List[float]:
    """Wall times (ms) of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000.0)
    return times


def fmt(times: Optional[List[float]]) -> str:
    if not times:
        return "-"
    return f"{statistics.median(times):.0f} [{min(times):.0f}-{max(times):.0f}]"


def _oracle():
    """Upstream's OpenCV despeckle from the tests (the reference, not part of the library), or None."""
    tests = Path(__file__).resolve().parent.parent / "tests"
    if not (tests / "despeckle_oracle.py").is_file():
        return None
    sys.path.insert(0, str(tests))
    try:
        import despeckle_oracle
    except ImportError:
        return None
    finally:
        sys.path.remove(str(tests))
    return despeckle_oracle.despeckle


def measure(frames: List[str], sizes: List[int], runs: int, device: str = "cpu") -> List[Dict[str, Any]]:
    """One row per (frame, despeckle_size): times in ms of eager, scripted and OpenCV (CPU only)."""
    torch.set_grad_enabled(False)
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    scripted = torch.jit.script(despeckle)
    oracle = _oracle() if dev.type == "cpu" else None
    rows = []
    for name in frames:
        h, w = FRAMES[name]
        matte = speckled_matte(h, w)
        alpha = torch.from_numpy(matte)[None, None].to(dev)
        for size in sizes:
            row = {"frame": f"{name} ({w}x{h})", "despeckle_size": size,
                   "eager": timed(lambda a=alpha, s=size: despeckle(a, s), runs, sync),
                   "scripted": timed(lambda a=alpha, s=size: scripted(a, s), runs, sync, warmup=3)}
            if oracle is not None and size > 0:
                row["opencv"] = timed(lambda m=matte, s=size: oracle(m, s), runs, sync)
                out = despeckle(alpha, size)[0, 0].cpu().numpy()
                row["max_abs_err_vs_opencv"] = float(np.abs(out - oracle(matte, size)).max())
            rows.append(row)
    return rows


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| frame | despeckle_size | torch eager (ms) | TorchScript (ms) | OpenCV, upstream (ms) "
             "| max abs err vs OpenCV |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        err = f"{r['max_abs_err_vs_opencv']:.1e}" if "max_abs_err_vs_opencv" in r else "-"
        lines.append(f"| {r['frame']} | {r['despeckle_size']} | {fmt(r['eager'])} | {fmt(r['scripted'])} | "
                     f"{fmt(r.get('opencv'))} | {err} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 runs per figure instead of 5")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5; quick: 2)")
    parser.add_argument("--frames", default="1080p,4K", help="comma separated, of 1080p, 4K (default: both)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="despeckle_size values (default 0,400)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args(argv)
    frames = [f.strip() for f in args.frames.split(",")]
    unknown = [f for f in frames if f not in FRAMES]
    if unknown:
        parser.error(f"unknown frame {', '.join(unknown)}; choose from {', '.join(FRAMES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or (2 if args.quick else 5)
    rows = measure(frames, [int(s) for s in args.sizes.split(",")], runs, args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"## Despeckle cost on {args.device} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"load average {load:.1f}; Python {platform.python_version()}, torch {torch.__version__})")
    print("times: median [min-max] over %d runs" % runs)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
