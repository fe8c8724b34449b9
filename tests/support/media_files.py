"""Test support for media files the tests write themselves: an EXR header parser and an OpenImageIO writer.

The header parser reads the bytes after the OpenEXR file layout (magic, version, then
``name\\0type\\0size value`` attributes up to a null byte), independently of OpenImageIO.
"""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np
import OpenImageIO as oiio
from av.video.reformatter import ColorRange, Colorspace

#: OpenEXR's compression codes (OpenEXR file layout, "compression" attribute; ImfCompression.h).
EXR_CODES = {"none": 0, "rle": 1, "zips": 2, "zip": 3, "piz": 4, "pxr24": 5, "b44": 6, "b44a": 7, "dwaa": 8,
             "dwab": 9}


def exr_header(path):
    """The attributes of a single-part EXR header that the tests check, parsed from the bytes."""
    data = path.read_bytes()
    assert data[:4] == b"\x76\x2f\x31\x01", "not an OpenEXR file"
    pos, attrs = 8, {}
    while data[pos] != 0:
        name_end = data.index(b"\x00", pos)
        type_end = data.index(b"\x00", name_end + 1)
        name, kind = data[pos:name_end].decode(), data[name_end + 1:type_end].decode()
        (size,) = struct.unpack("<i", data[type_end + 1:type_end + 5])
        value = data[type_end + 5:type_end + 5 + size]
        if kind == "box2i":
            attrs[name] = struct.unpack("<4i", value)  # xMin, yMin, xMax, yMax (inclusive)
        elif kind == "float":
            attrs[name] = struct.unpack("<f", value)[0]
        elif kind == "compression":
            attrs[name] = value[0]
        elif kind == "chlist":
            chans, i = [], 0
            while value[i] != 0:
                end = value.index(b"\x00", i)
                (ptype,) = struct.unpack("<i", value[end + 1:end + 5])
                chans.append((value[i:end].decode(), ptype))  # pixel type 1 half, 2 float
                i = end + 17
            attrs[name] = chans
        elif kind == "string":
            attrs[name] = value.decode()
        else:
            attrs[name] = value
        pos = type_end + 5 + size
    return attrs


def write_oiio(path, pixels, *, x=0, y=0, full=None, pixel_type="float", names=None, tiles=0, attrs=()):
    """Write ``pixels`` (H x W x C) with OpenImageIO, data window at (x, y), display window ``full`` (x, y, w, h)."""
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, pixel_type)
    spec.x, spec.y = x, y
    if full is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = full
    if names:
        spec.channelnames = tuple(names)
    if tiles:
        spec.tile_width = spec.tile_height = tiles
    for attr in attrs:
        spec.attribute(*attr)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels, np.float32)), out.geterror()
    out.close()


def encode(path, frames, pix_fmt="yuv444p", matrix=Colorspace.ITU709, color_range=ColorRange.MPEG,
           rate=Fraction(24000, 1001), options=None, container_options=None, tag_matrix=True, transfer=None):
    """Encode float RGB frames losslessly with libx264, tagging the matrix (unless not ``tag_matrix``), the range
    used and ``transfer`` (an AVColorTransferCharacteristic code)."""
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        s.options = dict({"qp": "0"}, **(options or {}))
        if tag_matrix:
            s.codec_context.colorspace = 1 if matrix == Colorspace.ITU709 else 6  # AVCOL_SPC_BT709 / SMPTE170M
        if transfer is not None:
            s.codec_context.color_trc = transfer
        s.codec_context.color_range = int(color_range)
        for img in frames:
            rgb = np.round(np.clip(img, 0, 1) * 65535).astype(np.uint16)
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le")
            f = f.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range=color_range)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path
