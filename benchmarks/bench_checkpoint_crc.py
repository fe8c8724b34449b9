"""Cost of checking a ``.pth``'s zip CRC-32s before ``torch.load`` (corridorkey_model/network/checkpoint.py).

Writes a synthetic checkpoint of about the released file's size (~400 MB of float32
tensors, ``torch.save``) to a temporary folder, then times, each on the same file:
the CRC check (``zipfile.testzip``), the SHA-256 the loader computes anyway, and
``torch.load(weights_only=True, mmap=True)``. The first pass reads the file from disk;
the figures printed are the best of ``--repeat`` passes (file in the page cache).

    python benchmarks/bench_checkpoint_crc.py              # ~400 MB
    python benchmarks/bench_checkpoint_crc.py --mb 100
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from corridorkey_model.network.checkpoint import check_zip_crcs, sha256_of


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=400, help="checkpoint size in MB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ck-crc-"))
    try:
        path = folder / "synthetic.pth"
        n = args.mb * (1 << 20) // 4 // 360  # ~360 tensors, as the released state dict
        gen = torch.Generator().manual_seed(0)
        torch.save({f"t{i}": torch.randn(n, generator=gen) for i in range(360)}, path)
        size = path.stat().st_size / 2**20
        crc = best_of(args.repeat, lambda: check_zip_crcs(path))
        sha = best_of(args.repeat, lambda: sha256_of(path))
        load = best_of(args.repeat, lambda: torch.load(path, map_location="cpu", weights_only=True, mmap=True))
        print(f"checkpoint {size:.0f} MB")
        print(f"  zip CRC check (testzip)   {crc:6.2f} s  ({size / crc:.0f} MB/s)")
        print(f"  SHA-256 (done anyway)     {sha:6.2f} s  ({size / sha:.0f} MB/s)")
        print(f"  torch.load (mmap)         {load:6.2f} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
