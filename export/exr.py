"""Float EXR files of the parity kit and the Verify plate, through the pipeline's one I/O module.

Files are written as Nuke reads them without conversion when its Read node has
``raw`` on: 32-bit float channels R, G, B, A (zip, lossless), written atomically by
:mod:`corridorkey_model.pipeline.frame_io`. Renders are read by channel name (so a
file whose channels are stored in another order reads the same) over the file's
display window: a data window that differs (Nuke writes the bounding box) is placed
into it, black outside, cropped where it overhangs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from corridorkey_model.pipeline import frame_io

CHANNELS = ("R", "G", "B", "A")


class ExrError(Exception):
    """An EXR could not be read or written; the message names the file and says why."""


def write_exr(path: Path, img: np.ndarray) -> None:
    """``H x W x 4`` float32 RGBA -> a float EXR (channels R, G, B, A, zip), as Nuke reads it raw."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    try:
        frame_io.write_image(path, img, frame_io.ExrOptions("float", "zip"), channel_names=CHANNELS[: img.shape[2]])
    except frame_io.FrameWriteError as exc:
        raise ExrError(str(exc)) from None


def read_exr_rgba(path: Path) -> np.ndarray:
    """A float EXR's R, G, B, A channels as ``H x W x 4`` float32 over its display window."""
    try:
        info = frame_io.read_info(path)
        short = [name.split(".")[-1].upper() for name in info.channels]
        if short != list(CHANNELS):
            raise ExrError(f"{path} holds the channels {', '.join(info.channels)}, not R, G, B and A: render RGBA "
                           "(the kit's Write nodes have channels rgba)")
        return frame_io.read_image(path, window=info.geometry.display)
    except frame_io.FrameReadError as exc:
        raise ExrError(str(exc)) from None


__all__ = ["CHANNELS", "ExrError", "write_exr", "read_exr_rgba"]
