"""Frame-by-frame comparison of two folders of renders, and the parity tolerances per run mode.

``corridorkey compare A B`` is a TD's production parity test on a real shot:
for example the CorridorKey node's renders of a clip against ``corridorkey
run``'s output for the same clip and knobs. Frames are matched by the frame
number at the end of their file names (``shot.1001.exr`` is frame 1001); both
folders must hold the same frame numbers, and each pair the same format (display window
size: frames are read over their format, whatever their data windows), or the comparison
refuses to run (a partial comparison would look like a pass).

:data:`RUN_MODES` is the one table of how far a render may stray from the
Python reference, per way of running the network (docs/parity.md,
"Tolerances"). ``export-torchscript parity-check`` judges a parity kit's
renders with it, and ``corridorkey compare`` takes its default tolerance from
the CPU fp32 entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class RunMode:
    """How a render was made, and how far it may be from the reference.

    A case passes when, in every channel, the share of pixels whose abs error
    exceeds ``tolerance`` is at most ``outlier_share`` (0: none may), and every
    value is finite. ``measured``: the tolerance rests on figures measured on that
    hardware; otherwise it is derived (see ``basis``).
    """

    name: str
    label: str
    tolerance: float
    outlier_share: float
    measured: bool
    basis: str


RUN_MODES: Dict[str, RunMode] = {m.name: m for m in (
    RunMode("cpu", "CPU, fp32", 5e-5, 0.0, True,
            "the validation's 1e-5 (same torch, same CPU) widened for another libtorch build and CPU: "
            "torch 2.1.2 (Nuke 15.1-17's runtime) measured 1.6e-6 from the exporting torch"),
    RunMode("gpu", "GPU, fp32", 5e-3, 1e-3, False,
            "derived, not measured: libtorch runs cuDNN convolutions in TF32 on Ampere and newer GPUs "
            "(10-bit mantissa, as fp16), so the error is of the fp16 figure's order; up to 0.1% of pixels "
            "may exceed it where the despeckle threshold (alpha 0.5) moves an island edge"),
    RunMode("gpu-fp16", "GPU, fp16 (Optimize for Speed and Memory)", 1e-2, 1e-3, False,
            "derived, not measured on a GPU: the validation's fp16 tolerance (fp16 measured 1e-3 to 3e-3 "
            "on CPU with random weights); up to 0.1% of pixels may exceed it (despeckle threshold)"),
    RunMode("cpu-bf16", "CPU, bfloat16 (CPU Precision: bfloat16; the .pt's bfloat16 copy)", 0.1, 1e-3, True,
            "the validation's bfloat16 tolerance (export/validate.py BF16_TOLERANCE) against the fp32 reference: "
            "measured 6.5e-3 to 3.4e-2 with random weights in torch 2.15, and within it in torch 2.1.2 (Nuke "
            "15.1-17's runtime, the compat test); up to 0.1% of pixels may exceed it (despeckle threshold)"),
)}
#: ``corridorkey compare``'s default tolerance: the CPU fp32 figure.
DEFAULT_TOLERANCE = RUN_MODES["cpu"].tolerance

#: How both judges (``corridorkey compare`` and ``export-torchscript parity-check``) treat NaN and infinity:
#: a non-finite value in either image fails, even at the same pixel of both (a key is always finite; a NaN
#: that both hold is a shared bug, not a match).
NAN_RULE = "a NaN or infinity in either image fails, even where both hold it at the same pixel"

#: Channel letters of ``--channels`` in RGBA order.
CHANNEL_LETTERS = "rgba"


class CompareError(Exception):
    """The folders cannot be compared; the message says why and what to do."""


@dataclass(frozen=True)
class FrameResult:
    """One frame pair: its number, the two files, and the max abs error per compared channel."""

    number: int
    a: Path
    b: Path
    max_abs: Tuple[float, ...]

    @property
    def max_error(self) -> float:
        return max(self.max_abs) if self.max_abs else 0.0


def parse_channels(text: str) -> Tuple[int, ...]:
    """``"rgba"``, ``"rgb"``, ``"a"``, ``"r,g,b"`` -> channel indices (RGBA order); ``ValueError`` otherwise."""
    letters = [c for c in text.lower() if c not in ", "]
    if not letters or any(c not in CHANNEL_LETTERS for c in letters) or len(set(letters)) != len(letters):
        raise ValueError(f"--channels {text!r}: give channel letters from {CHANNEL_LETTERS!r} without repeats, "
                         "e.g. rgba, rgb or a")
    return tuple(sorted(CHANNEL_LETTERS.index(c) for c in letters))


def frame_files(folder: Path, extensions: Sequence[str]) -> Dict[int, Path]:
    """Frame number -> file, for the image files of ``folder``; every file needs a distinct trailing number."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompareError(f"{folder} is not a folder of frames")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions)
    if not files:
        raise CompareError(f"{folder} holds no frames ({', '.join(extensions)})")
    out: Dict[int, Path] = {}
    for p in files:
        m = re.search(r"(\d+)$", p.stem)
        if m is None:
            raise CompareError(f"{p} has no frame number at the end of its name (e.g. shot.1001.exr); frames are "
                               "matched by number")
        n = int(m.group(1))
        if n in out:
            raise CompareError(f"{folder} holds two files for frame {n}: {out[n].name} and {p.name}; keep one")
        out[n] = p
    return out


def _ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (at most 8 pieces)."""
    nums = sorted(numbers)
    parts: List[str] = []
    start = prev = nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts[:8]) + (", ..." if len(parts) > 8 else "")


def match_frames(a: Dict[int, Path], b: Dict[int, Path], name_a: str, name_b: str) -> List[int]:
    """The common frame numbers; a :class:`CompareError` when the two folders do not hold the same ones."""
    if len(a) != len(b) or set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        detail = "; ".join(part for part in (
            f"only in {name_a}: {_ranges(only_a)}" if only_a else "",
            f"only in {name_b}: {_ranges(only_b)}" if only_b else "") if part)
        raise CompareError(f"{name_a} has {len(a)} frame(s) and {name_b} {len(b)}, matched by frame number ({detail}); "
                           "compare folders holding the same frames (render or copy the missing ones)")
    return sorted(a)


def frame_error(img_a: np.ndarray, img_b: np.ndarray, channels: Optional[Sequence[int]],
                where: str) -> Tuple[float, ...]:
    """Max abs error per channel of two ``H x W x C`` float images over their format (display window).

    :data:`NAN_RULE`: a NaN or infinity in either image is an error of inf, even when both hold it at
    the same pixel (the one rule of ``compare`` and ``export-torchscript parity-check``).
    """
    if img_a.shape[:2] != img_b.shape[:2]:
        raise CompareError(f"{where}: formats (display windows) differ: {img_a.shape[1]}x{img_a.shape[0]} "
                           f"against {img_b.shape[1]}x{img_b.shape[0]}; compare renders of the same format")
    if channels is None:
        if img_a.shape[2] != img_b.shape[2]:
            raise CompareError(f"{where}: {img_a.shape[2]} channel(s) against {img_b.shape[2]}; choose the "
                               "channels both hold with --channels (e.g. --channels rgb)")
        channels = range(img_a.shape[2])
    out = []
    for c in channels:
        if c >= img_a.shape[2] or c >= img_b.shape[2]:
            raise CompareError(f"{where}: channel {CHANNEL_LETTERS[c]} is missing ({img_a.shape[2]} and "
                               f"{img_b.shape[2]} channel(s)); choose others with --channels")
        x, y = img_a[..., c].astype(np.float64), img_b[..., c].astype(np.float64)
        with np.errstate(invalid="ignore"):
            diff = np.abs(x - y)
        diff = np.where(np.isfinite(x) & np.isfinite(y), diff, np.inf)
        out.append(float(diff.max()) if diff.size else 0.0)
    return tuple(out)


def compare_folders(folder_a: Path, folder_b: Path, channels: Optional[Sequence[int]] = None,
                    progress: bool = True) -> List[FrameResult]:
    """Compare every frame of ``folder_a`` with the frame of the same number in ``folder_b``.

    Frames are read with :func:`corridorkey_model.pipeline.frame_io.read_image`; a file it
    cannot read is a :class:`CompareError` naming it.
    """
    from tqdm import tqdm

    from corridorkey_model.pipeline import frame_io

    a = frame_files(folder_a, frame_io.IMAGE_EXTENSIONS)
    b = frame_files(folder_b, frame_io.IMAGE_EXTENSIONS)
    numbers = match_frames(a, b, str(folder_a), str(folder_b))
    results = []
    for n in tqdm(numbers, desc="compare", unit="frame", disable=not progress, leave=False):
        try:
            img_a, img_b = frame_io.read_image(a[n]), frame_io.read_image(b[n])
        except frame_io.FrameReadError as exc:
            raise CompareError(str(exc)) from None
        results.append(FrameResult(n, a[n], b[n], frame_error(img_a, img_b, channels,
                                                              f"frame {n} ({a[n].name}, {b[n].name})")))
    return results


def worst(results: Sequence[FrameResult]) -> FrameResult:
    return max(results, key=lambda r: r.max_error)


__all__ = ["RunMode", "RUN_MODES", "DEFAULT_TOLERANCE", "NAN_RULE", "CompareError", "FrameResult", "parse_channels",
           "frame_files", "match_frames", "frame_error", "compare_folders", "worst"]
