"""The encoder's global attention, the kernel that bounds the bfloat16 speed-up in older libtorch.

    python benchmarks/bench_attention.py                  # S = 2048: stage 3, 16384 tokens
    python benchmarks/bench_attention.py --img-size 1024  # 4096 tokens
    /path/to/torch-2.1.2/bin/python benchmarks/bench_attention.py   # Nuke 15.1-17's libtorch

Needs torch only (no timm, not this package), so it runs in any torch a Nuke ships. At model
resolution S, stage 3 of the Hiera encoder (blocks 5-20 of 24: the first still attends within
mask units, the other 15 globally over (S/16)^2 tokens) attends with 8 heads of 56 channels: the
released checkpoint's ``encoder.model.blocks.6.attn.qkv.weight`` is [1344, 448] = [3 x 8 x 56,
448] (tests/test_bench_attention.py checks these against the encoder itself). The
script times ``F.scaled_dot_product_attention`` on those shapes in fp32 and bfloat16, then
splits one call's time into its softmax (exp, max, sum: proportional to heads x tokens^2) and
its two matrix products (proportional to heads x head_dim x tokens^2) from two more bfloat16
calls with the same products and half the softmax (4 heads of 112) or half the products (8
heads of 28): ``t = a * heads + b * heads * head_dim`` fitted to the three. Last, the unfused
alternative in bfloat16 (scores of a block of queries by matmul, softmax, matmul; what a
TorchScript file could run instead of the fused kernel), for the record.

Inputs are random (the speed of attention does not depend on the values). Times are medians
of interleaved runs after a warm-up call; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

HEADS, HEAD_DIM = 8, 56  # Hiera base plus, stage 3 (see the docstring)
GLOBAL_BLOCKS = 15  # stage 3 blocks attending over all of their tokens at one resolution


def stage3_tokens(img_size: int) -> int:
    """Tokens of stage 3 at model resolution ``img_size``: patch stride 4, then two 2x2 query poolings."""
    if img_size % 16:
        raise ValueError(f"img_size {img_size} is not a multiple of 16")
    return (img_size // 16) ** 2


def qkv(heads: int, head_dim: int, tokens: int, dtype: torch.dtype, seed: int = 0) -> Sequence[torch.Tensor]:
    """Contiguous ``[1, heads, tokens, head_dim]`` q, k, v (the layout timm's Hiera hands the kernel)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, heads, tokens, head_dim, generator=g).to(dtype) for _ in range(3)]


def unfused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int) -> torch.Tensor:
    """Attention by query blocks: ``softmax(q k^T / sqrt(d)) v`` with plain matmuls."""
    kt = (k * q.shape[-1] ** -0.5).transpose(-2, -1)
    return torch.cat([torch.matmul(torch.matmul(q[:, :, s:s + block], kt).softmax(-1), v)
                      for s in range(0, q.shape[2], block)], dim=2)


def interleaved(calls: Dict[str, Callable[[], object]], runs: int) -> Dict[str, float]:
    """Median seconds per call, the calls interleaved ``runs`` times after one warm-up each."""
    for fn in calls.values():
        fn()
    times: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def measure(img_size: int, runs: int, blocks: Sequence[int]) -> Dict[str, float]:
    """Seconds per call of each variant at ``img_size`` (see the docstring), keyed by name."""
    torch.set_grad_enabled(False)
    n = stage3_tokens(img_size)
    inputs = {
        "fused fp32": qkv(HEADS, HEAD_DIM, n, torch.float32),
        "fused bf16": qkv(HEADS, HEAD_DIM, n, torch.bfloat16),
        "fused bf16, half the softmax": qkv(HEADS // 2, HEAD_DIM * 2, n, torch.bfloat16),
        "fused bf16, half the products": qkv(HEADS, HEAD_DIM // 2, n, torch.bfloat16),
    }
    calls: Dict[str, Callable[[], object]] = {
        name: (lambda t=t: F.scaled_dot_product_attention(*t)) for name, t in inputs.items()}
    bf16 = inputs["fused bf16"]
    for block in blocks:
        calls[f"unfused bf16, {block}-query blocks"] = lambda b=block: unfused(*bf16, b)
    return interleaved(calls, runs)


def split(times: Dict[str, float]) -> Dict[str, float]:
    """The fused bf16 call's seconds in its softmax and in its matrix products (least squares over 3 calls)."""
    rows = [(HEADS, HEADS * HEAD_DIM, times["fused bf16"]),
            (HEADS // 2, HEADS * HEAD_DIM, times["fused bf16, half the softmax"]),
            (HEADS, HEADS * (HEAD_DIM // 2), times["fused bf16, half the products"])]
    a_mat = torch.tensor([[r[0], r[1]] for r in rows], dtype=torch.float64)
    t_vec = torch.tensor([[r[2]] for r in rows], dtype=torch.float64)
    a, b = torch.linalg.lstsq(a_mat, t_vec).solution.flatten().tolist()
    return {"softmax": a * HEADS, "products": b * HEADS * HEAD_DIM}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--img-size", type=int, default=2048, help="model resolution S (default 2048)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per figure (default 3)")
    parser.add_argument("--blocks", default="64,1024", help="query block sizes of the unfused variant "
                        "(default 64,1024; empty: skip it)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    args = parser.parse_args(argv)
    try:
        tokens = stage3_tokens(args.img_size)
        blocks = [int(b) for b in args.blocks.split(",") if b.strip()]
    except ValueError as e:
        parser.error(str(e))
    if args.runs < 1 or any(b < 1 for b in blocks):
        parser.error("--runs and --blocks take positive integers")
    if args.threads:
        torch.set_num_threads(args.threads)
    times = measure(args.img_size, args.runs, blocks)
    parts = split(times)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"## Stage-3 global attention at S = {args.img_size}: [1, {HEADS}, {tokens}, {HEAD_DIM}], torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, load {load:.2f}, median of {args.runs}")
    print("| call | s per call | x fp32 | per frame (x15) |")
    print("| --- | --- | --- | --- |")
    fp32 = times["fused fp32"]
    for name, t in times.items():
        print(f"| {name} | {t:.3f} | x{fp32 / t:.2f} | {t * GLOBAL_BLOCKS:.1f} s |")
    total = times["fused bf16"]
    print(f"fused bf16 call: softmax ~{parts['softmax']:.2f} s ({100 * parts['softmax'] / total:.0f} %), "
          f"matrix products ~{parts['products']:.2f} s ({100 * parts['products'] / total:.0f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
