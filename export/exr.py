"""Float EXR reading and writing for the parity kit and the Verify plate, with OpenImageIO.

Files are written as Nuke reads them without conversion when its Read node has
``raw`` on: 32-bit float channels R, G, B, A (zip, lossless). Renders are read by
channel name, so a file whose channels are stored in another order reads the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHANNELS = ("R", "G", "B", "A")


class ExrError(Exception):
    """An EXR could not be read or written; the message names the file and says why."""


def write_exr(path: Path, img: np.ndarray) -> None:
    """``H x W x 4`` float32 RGBA -> a float EXR (channels R, G, B, A, zip), as Nuke reads it raw."""
    import OpenImageIO as oiio

    img = np.ascontiguousarray(img, dtype=np.float32)
    spec = oiio.ImageSpec(int(img.shape[1]), int(img.shape[0]), int(img.shape[2]), oiio.FLOAT)
    spec.channelnames = CHANNELS[: img.shape[2]]
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(path))
    if out is None or not out.open(str(path), spec):
        raise ExrError(f"cannot write {path}: {oiio.geterror() or 'OpenImageIO has no EXR writer'}")
    try:
        if not out.write_image(img):
            raise ExrError(f"cannot write {path}: {out.geterror()}")
    finally:
        out.close()


def read_exr_rgba(path: Path) -> np.ndarray:
    """A float EXR's R, G, B, A channels as ``H x W x 4`` float32 (by channel name, any order in the file).

    The image is the file's display window: a data window that differs (Nuke writes the
    bounding box) is placed into it, black outside, cropped where it overhangs.
    """
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise ExrError(f"cannot read {path}: {oiio.geterror() or 'not an image'}")
    try:
        spec = inp.spec()
        names = list(spec.channelnames)
        data = inp.read_image(0, 0, 0, spec.nchannels, oiio.FLOAT)
    finally:
        inp.close()
    if data is None:
        raise ExrError(f"cannot read {path}: the file is truncated or damaged")
    data = np.asarray(data, np.float32).reshape(spec.height, spec.width, spec.nchannels)
    if (spec.x, spec.y, spec.width, spec.height) != (spec.full_x, spec.full_y, spec.full_width, spec.full_height):
        full = np.zeros((spec.full_height, spec.full_width, spec.nchannels), np.float32)
        x0, y0 = spec.x - spec.full_x, spec.y - spec.full_y
        xs, ys = max(x0, 0), max(y0, 0)
        xe, ye = min(x0 + spec.width, spec.full_width), min(y0 + spec.height, spec.full_height)
        if xe > xs and ye > ys:
            full[ys:ye, xs:xe] = data[ys - y0:ye - y0, xs - x0:xe - x0]
        data = full
    short = [n.split(".")[-1].upper() for n in names]
    missing = [c for c in CHANNELS if c not in short]
    if missing:
        raise ExrError(f"{path} holds the channels {', '.join(names)} but not {', '.join(missing)}: render RGBA "
                       "(the kit's Write nodes have channels rgba)")
    return np.ascontiguousarray(data[..., [short.index(c) for c in CHANNELS]])


__all__ = ["CHANNELS", "ExrError", "write_exr", "read_exr_rgba"]
