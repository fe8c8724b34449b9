"""Frame read and write speed: the old OpenCV I/O against the new OpenImageIO I/O, on the same files.

For 1080p and 4K, 16-bit PNG (RGB) and half-float EXR (RGBA, zip): frames per second of

* reading: ``cv2.imread(IMREAD_UNCHANGED)`` + BGR -> RGB + to float32 (what ``frame_io.read_image``
  did before issue #20) against ``frame_io.read_image`` now (OpenImageIO, with geometry and
  channel choice), on the very same files;
* writing: the old encode (float -> uint16 / half, BGR, ``cv2.imwrite`` with the old flags, PNG at
  OpenCV's default zlib level 1) to a temporary file and ``os.replace``, against
  ``frame_io.write_image`` now (OpenImageIO, same pixel types and compression, atomic).

Old and new run interleaved, ``--runs`` times over ``--frames`` different frames; the median
frames per second is printed with new/old (target: >= 1.00, i.e. not slower).

    python benchmarks/bench_frame_io.py            # 1080p and 4K
    python benchmarks/bench_frame_io.py --quick    # 1080p only, fewer runs
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # the old reader needs it before cv2 loads

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from corridorkey_model.pipeline import frame_io  # noqa: E402

SIZES = {"1080p": (1080, 1920), "4K": (2160, 4096)}
FORMATS = ("png", "exr")


def frames_for(height: int, width: int, count: int, channels: int) -> List[np.ndarray]:
    """Smooth gradients with a little noise (compresses like a plate, not like noise or flat colour)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        base = [(xx / width + 0.1 * i) % 1.0, yy / height, (xx + yy) / (width + height), np.ones_like(xx)]
        img = np.stack(base[:channels], -1) + rng.normal(0, 0.01, (height, width, channels)).astype(np.float32)
        out.append(np.clip(img, 0.0, 1.0).astype(np.float32))
    return out


# --------------------------------------------------------------------------- the OpenCV I/O of before issue #20


def old_read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    if img.dtype == np.uint16:
        return np.ascontiguousarray(img.astype(np.float32) / 65535.0)
    return np.ascontiguousarray(img.astype(np.float32))


def old_write(path: Path, img: np.ndarray) -> None:
    data = img[..., ::-1] if img.shape[2] == 3 else img[..., [2, 1, 0, 3]]
    if path.suffix == ".exr":
        data = np.ascontiguousarray(data, np.float32)
        params = [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_HALF, cv2.IMWRITE_EXR_COMPRESSION,
                  cv2.IMWRITE_EXR_COMPRESSION_ZIP]
    else:
        data = np.round(np.clip(data, 0.0, 1.0) * 65535.0).astype(np.uint16)
        params = []
    tmp = path.with_name("." + path.name + ".tmp" + path.suffix)
    assert cv2.imwrite(str(tmp), data, params)
    os.replace(tmp, path)


def new_write(path: Path, img: np.ndarray) -> None:
    frame_io.write_image(path, img, frame_io.ExrOptions("half", "zip"))


# --------------------------------------------------------------------------- measuring


def _fps(fn: Callable[[int], Any], count: int) -> float:
    t = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - t)


def _interleaved(files: List[Path], outs: Dict[str, List[Path]], imgs: List[np.ndarray],
                 runs: int) -> Dict[str, float]:
    """Median frames per second of old and new reads and writes, run interleaved ``runs`` times."""
    n = len(files)
    fps: Dict[str, List[float]] = {"old read": [], "new read": [], "old write": [], "new write": []}
    for _ in range(runs):
        fps["old read"].append(_fps(lambda i: old_read(files[i]), n))
        fps["new read"].append(_fps(lambda i: frame_io.read_image(files[i]), n))
        fps["old write"].append(_fps(lambda i: old_write(outs["old"][i], imgs[i]), n))
        fps["new write"].append(_fps(lambda i: new_write(outs["new"][i], imgs[i]), n))
    return {k: statistics.median(v) for k, v in fps.items()}


def measure(sizes: List[str], frames: int = 4, runs: int = 3) -> List[Dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ck-bench-io-") as tmp:
        folder = Path(tmp)
        for size in sizes:
            h, w = SIZES[size]
            for fmt in FORMATS:
                channels = 3 if fmt == "png" else 4
                imgs = frames_for(h, w, frames, channels)
                files = [folder / f"{size}.{i}.{fmt}" for i in range(frames)]
                for f, img in zip(files, imgs):
                    new_write(f, img)  # the files both readers read
                outs = {k: [folder / f"{k}.{size}.{i}.{fmt}" for i in range(frames)] for k in ("old", "new")}
                med = _interleaved(files, outs, imgs, runs)
                what = "16-bit RGB" if fmt == "png" else "half RGBA zip"
                rows.append({"size": size, "format": fmt, "what": what, "fps": med,
                             "read_ratio": med["new read"] / med["old read"],
                             "write_ratio": med["new write"] / med["old write"]})
    return rows


def table(rows: List[Dict[str, Any]]) -> str:
    lines = ["| frames | read fps: OpenCV | read fps: OpenImageIO | new/old | write fps: OpenCV | "
             "write fps: OpenImageIO | new/old |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        f = r["fps"]
        lines.append(f"| {r['size']} {r['format'].upper()} {r['what']} | {f['old read']:.1f} | {f['new read']:.1f} | "
                     f"{r['read_ratio']:.2f} | {f['old write']:.1f} | {f['new write']:.1f} | {r['write_ratio']:.2f} |")
    return "\n".join(lines)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1080p only, 2 runs")
    parser.add_argument("--frames", type=int, default=4, help="different frames per run")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs; the median is printed")
    args = parser.parse_args(argv)
    sizes = ["1080p"] if args.quick else list(SIZES)
    rows = measure(sizes, args.frames, 2 if args.quick else args.runs)
    print(f"OpenCV {cv2.__version__}, OpenImageIO {frame_io.images.oiio.__version__}, "
          f"{os.cpu_count()} cores, load {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
