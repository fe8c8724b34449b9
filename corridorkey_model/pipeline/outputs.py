"""A clip's outputs: the folders and files a run writes, which frames are done, and claiming them.

    select_frames(clip, range, out)   -> Selection     the --frames chunk, minus frames already written
    claim_output(clip, refs, out)     -> OutputClaim   the lock on those frames (lock.py), folders made

Output/ holds Matte/ FG/ Processed/ Comp/ (--layered-exr: Layered/ Comp/), and Hint/ with --write-hints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from corridorkey_model import atomic
from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.clips import Clip, ClipError, FrameRef
from corridorkey_model.pipeline.frame_io import ExrOptions
from corridorkey_model.pipeline.lock import OutputClaim

#: Output folders and what they hold.
OUTPUTS = {
    "Matte": "linear alpha",
    "FG": "straight (unpremultiplied) sRGB foreground, despilled",
    "Processed": "linear premultiplied RGBA EXR: srgb_to_linear(fg) * alpha, alpha in the 4th channel",
    "Comp": "preview: fg over a checkerboard, mixed in linear, 8-bit sRGB PNG",
}
#: With ``--layered-exr``: one EXR per frame instead of Matte/, FG/ and Processed/ (Comp/ stays).
LAYERED_DIR = "Layered"
#: Its channels: the premultiplied RGBA (Processed), the straight foreground (FG) and the matte as layers.
LAYERED_CHANNELS = ("R", "G", "B", "A", "fg.R", "fg.G", "fg.B", "matte.A")
#: ``oiio:ColorSpace`` labels of the outputs without an OCIO config (OpenImageIO's colour interop names).
LINEAR_LABEL = "lin_rec709_scene"
SRGB_LABEL = "srgb_rec709_scene"
#: The optional output folder of ``--write-hints``: the hint each frame was keyed with.
HINT_OUTPUT = "Hint"
HINT_OUTPUT_DESCRIPTION = ("the hint each frame was keyed with (the network's hint channel at S, resized back to "
                           "the plate size), one channel, Matte's file type")
IMAGE_FORMATS = ("exr", "png")


@dataclass(frozen=True)
class OutputSettings:
    """How outputs are written: Matte/FG file format, EXR options, overwrite or resume."""

    image_format: str = "exr"
    exr: ExrOptions = ExrOptions()
    overwrite: bool = False
    layered: bool = False  # --layered-exr: one multi-layer EXR per frame (Layered/) instead of Matte/FG/Processed
    write_hints: bool = False  # also write Hint/: the hint each frame was keyed with

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format {self.image_format!r}: choose from {', '.join(IMAGE_FORMATS)}")


@dataclass(frozen=True)
class Selection:
    """The frames of a clip to key now, and those skipped because their outputs exist."""

    todo: Tuple[FrameRef, ...]
    done: Tuple[FrameRef, ...]



def parse_frame_range(text: str) -> Tuple[int, int]:
    """``"1001-1050"`` -> ``(1001, 1050)``; ``"1001"`` -> ``(1001, 1001)``."""
    m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", text or "")
    if m is None:
        raise ValueError(f"frame range {text!r}: write FIRST-LAST (e.g. 1001-1050) or one frame number")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    if last < first:
        raise ValueError(f"frame range {text!r}: the last frame comes before the first")
    return first, last


#: The matte channel of each output file that holds one (its EXR channel name), for :func:`exr_options_for`.
MATTE_CHANNELS = {"Matte": "Y", HINT_OUTPUT: "Y", "Processed": "A", LAYERED_DIR: "matte.A"}


def exr_options_for(kind: str, out: OutputSettings) -> ExrOptions:
    """The EXR options of output ``kind``: ``out.exr``, except that a file holding a matte (Matte, Hint,
    Processed, Layered) is written with zip where the chosen compression would change its matte
    (:func:`frame_io.keeps_channel_exact`: dwaa/dwab on Y, b44/b44a on half, pxr24 on float)."""
    if kind not in MATTE_CHANNELS:
        return out.exr
    return frame_io.matte_exr_options(out.exr, MATTE_CHANNELS[kind])


def matte_compression_note(out: OutputSettings) -> Optional[str]:
    """What :func:`exr_options_for` changes for these settings, for the log (None: nothing)."""
    kinds = [k for k in MATTE_CHANNELS if exr_options_for(k, out) != out.exr]
    if not kinds:
        return None
    return (f"--exr-compression {out.exr.compression} would change the matte of {', '.join(kinds)} "
            f"({out.exr.pixel_type}); those files are written with {frame_io.MATTE_FALLBACK_COMPRESSION} "
            f"(lossless), the others with {out.exr.compression}")


def output_paths(output_dir: Path, ref: FrameRef, out: OutputSettings) -> Dict[str, Path]:
    """Final file of each output folder for ``ref``."""
    ext = "." + out.image_format
    if out.layered:
        paths = {LAYERED_DIR: output_dir / LAYERED_DIR / (ref.name + ".exr"),
                 "Comp": output_dir / "Comp" / (ref.name + ".png")}
        if out.write_hints:
            paths[HINT_OUTPUT] = output_dir / HINT_OUTPUT / (ref.name + ext)
        return paths
    paths = {
        "Matte": output_dir / "Matte" / (ref.name + ext),
        "FG": output_dir / "FG" / (ref.name + ext),
        "Processed": output_dir / "Processed" / (ref.name + ".exr"),
        "Comp": output_dir / "Comp" / (ref.name + ".png"),
    }
    if out.write_hints:  # a frame is done only when its hint is written too
        paths[HINT_OUTPUT] = output_dir / HINT_OUTPUT / (ref.name + ext)
    return paths


def select_frames(clip: Clip, frame_range: Optional[Tuple[int, int]], out: OutputSettings) -> Selection:
    """The ``frame_range`` chunk of ``clip`` (all of it for ``None``), split into to-do and already written."""
    refs = clip.frames
    if frame_range is not None:
        first, last = frame_range
        refs = tuple(r for r in refs if first <= r.number <= last)
        if not refs:
            nums = [r.number for r in clip.frames]
            raise ClipError(f"clip {clip.name}: no frames in {first}-{last}; it has frames "
                            f"{min(nums)}-{max(nums)}")
    if out.overwrite:
        return Selection(refs, ())
    done = tuple(r for r in refs if all(p.is_file() for p in output_paths(clip.output_dir, r, out).values()))
    done_set = {r.position for r in done}
    return Selection(tuple(r for r in refs if r.position not in done_set), done)


def output_folders(out: OutputSettings) -> Tuple[str, ...]:
    """The folders a run writes into: Layered/ and Comp/ with ``--layered-exr``, else those of OUTPUTS;
    and Hint/ with ``--write-hints``."""
    folders = (LAYERED_DIR, "Comp") if out.layered else tuple(OUTPUTS)
    return folders + ((HINT_OUTPUT,) if out.write_hints else ())


def prepare_output(clip: Clip, out: OutputSettings) -> None:
    """Create the output folders and prove they are writable (before any frame is keyed)."""
    for folder in output_folders(out):
        frame_io.check_writable(clip.output_dir / folder)


def check_output(clip: Clip, out: OutputSettings = OutputSettings()) -> None:
    """The output folders can be made and written (creates nothing: run before the model loads)."""
    for folder in output_folders(out):
        frame_io.check_can_create(clip.output_dir / folder)


def claim_output(clip: Clip, refs: Sequence[FrameRef], out: OutputSettings) -> OutputClaim:
    """Lock ``refs`` of ``clip``'s output folder, create its folders, remove a killed run's temporary files
    of those frames and prove the folders writable (:mod:`corridorkey_model.pipeline.lock`).

    Raises :class:`~corridorkey_model.pipeline.lock.OutputLocked` when a live run holds one
    of the frames, :class:`~corridorkey_model.pipeline.frame_io.FrameWriteError` when the
    folder cannot be written. ``release(failed=True)`` the claim to remove what it created.
    """
    names = {p.stem for r in refs for p in output_paths(clip.output_dir, r, out).values()}
    try:
        claim = OutputClaim.acquire(clip.output_dir, [r.number for r in refs], output_folders(out), names)
    except OSError as exc:
        raise frame_io.FrameWriteError(
            f"output folder {clip.output_dir} is not writable "
            f"({atomic.why_write_failed(clip.output_dir / 'x', exc)}); choose another place with --output if "
            f"that cannot be fixed") from exc
    try:
        for folder in output_folders(out):
            frame_io.check_writable(clip.output_dir / folder)
    except BaseException:
        claim.release(failed=True)
        raise
    return claim


