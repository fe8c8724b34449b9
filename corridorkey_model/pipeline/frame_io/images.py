"""Image frames through OpenImageIO: EXR, DPX, TIFF, PNG, JPEG, with their geometry, layers and metadata.

Conventions: pixels are ``H x W x C`` float32 (8/10/12/16-bit integers scaled to [0, 1]
by OpenImageIO, float files as stored, values may leave [0, 1]).

* **Geometry** (:class:`Geometry`): an EXR's data window (the pixels stored) may be smaller
  than, offset inside, or larger than its display window (the format). A frame is read over
  its display window (the format), as the gizmo's Crop to the format hands the Inference node:
  pixels stored outside it are dropped, pixels inside it with nothing stored are 0. A hint
  lines up with its plate's format whatever either file's window origin; a hint of another
  size but the same aspect is fitted to the plate's format by nearest-neighbour sampling
  (:func:`fit_to_format`, the gizmo's Reformat with filter impulse). Every output is written
  with data window = the plate's display window, its pixel aspect and metadata.
* **Alpha**: pixels are read as stored: a plate's own alpha (straight or premultiplied) never
  changes its RGB (OpenImageIO would premultiply unassociated alpha on read; it is told not to).
* **Channels** (:func:`choose_channels`): the default is the R, G, B (and A) of the first
  part (subimage) that has them outside any layer; then Y (and A), then A alone.
  ``layer`` picks an EXR part by name or a layer by channel prefix (``beauty`` for
  ``beauty.R``...). A file with none of these names the layers it has.
* **Errors**: a missing, corrupt or truncated file of any format (a JPEG included: libjpeg only
  warns about a premature end, OpenImageIO reports it and we stop) is a
  :class:`FrameReadError` naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import OpenImageIO as oiio

from corridorkey_model.keying.hint_fit import HINT_FIT_TOLERANCE_PX, same_aspect  # noqa: F401 (frame_io's API)
from corridorkey_model.pipeline.frame_io.common import (
    FrameReadError,
    FrameWriteError,
    discard,
    temp_path_for,
    why_encoder_failed,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg")

#: Every compression of OpenEXR 3.5 (the library inside the OpenImageIO wheel), in its own names.
#: htj2k256/htj2k32 (OpenEXR 3.4) and zstd (3.5) are only readable by that recent an OpenEXR.
EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab",
                    "htj2k256", "htj2k32", "zstd")
LOSSLESS_EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "htj2k256", "htj2k32", "zstd")
DEFAULT_EXR_COMPRESSION = "zip"
#: Earlier names still accepted on the command line: ``no`` was OpenCV's name of ``none``.
EXR_COMPRESSION_ALIASES: Dict[str, str] = {"no": "none"}
#: EXR pixel types: OpenImageIO's names of the two OpenEXR float types.
EXR_TYPES: Dict[str, str] = {"half": "half", "float": "float"}
#: PNG files are encoded by OpenCV's libpng (zlib level 1, RLE strategy, its defaults): OpenImageIO
#: cannot choose the zlib strategy and writes 16-bit PNG 2.2x slower (benchmarks/bench_frame_io.py).
#: PNG holds no windows or EXR metadata anyway: a PNG output is the plate's display window.
PNG_CHANNEL_ORDER = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}
JPEG_QUALITY = 95

#: Header attributes an output inherits from its plate because they still hold for it
#: (OpenImageIO's names). Geometry, pixel aspect and colour space are set explicitly.
CARRIED_ATTRIBUTES = ("smpte:TimeCode", "smpte:KeyCode", "FramesPerSecond", "Artist", "Copyright",
                      "ImageDescription", "capDate", "owner", "comments", "utcOffset", "openexr:chromaticities",
                      "screenWindowCenter", "screenWindowWidth", "worldToCamera", "worldToNDC")

# Channel suffixes by meaning (OpenEXR's names R, G, B, A, Y, and the long names red, green, blue, alpha).
_SUFFIXES = {"R": ("R", "r", "red"), "G": ("G", "g", "green"), "B": ("B", "b", "blue"),
             "A": ("A", "a", "alpha"), "Y": ("Y", "y")}


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_exr(path: Path) -> bool:
    return Path(path).suffix.lower() == ".exr"


def check_exr_support() -> None:
    """Kept for callers of the OpenCV era: OpenImageIO always reads and writes EXR."""


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Box:
    """A pixel rectangle ``[x0, x1) x [y0, y1)`` in a file's pixel coordinates (y down, as OpenEXR's)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def union(self, other: Box) -> Box:
        return Box(min(self.x0, other.x0), min(self.y0, other.y0), max(self.x1, other.x1), max(self.y1, other.y1))

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at ({self.x0},{self.y0})"


@dataclass(frozen=True)
class Geometry:
    """Data window (pixels stored), display window (the format) and pixel aspect of a frame."""

    data: Box
    display: Box
    pixel_aspect: float = 1.0

    @classmethod
    def plain(cls, width: int, height: int) -> Geometry:
        box = Box(0, 0, width, height)
        return cls(box, box)

    @property
    def frame_box(self) -> Box:
        """What is keyed: the display window (the format). Stored pixels outside it are dropped, as the
        gizmo's Crop to the format (``crop false``) drops them before the Inference node."""
        return self.display

    @property
    def is_plain(self) -> bool:
        return self.data == self.display and self.data.x0 == 0 and self.data.y0 == 0


def nearest_source_indices(in_size: int, out_size: int) -> np.ndarray:
    """For each output pixel i of a nearest-neighbour resize: the input pixel floor((i + 0.5) * in / out).

    The sample is taken at the output pixel's centre (the rule of Nuke's Reformat with
    ``filter impulse``, which the gizmo uses to fit a hint to the plate's format), in integer
    arithmetic so that no rounding of a float moves a sample: floor((2i + 1) * in / (2 out)).
    """
    # Nuke: Reformat "to box" with resize distort scales each axis to the box on its own, and filter impulse
    # takes no filtering, each output pixel the input pixel under its centre (Foundry, Nuke 13.1 Reference
    # Guide, Transform nodes > Reformat: learn.foundry.com/nuke/13.1/content/reference_guide/transform_nodes/
    # reformat.html, and User Guide "Choosing a Filtering Algorithm": Impulse, "no filtering").
    i = np.arange(out_size, dtype=np.int64)
    return ((2 * i + 1) * in_size) // (2 * out_size)


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``H x W (x C)`` -> ``height x width (x C)`` by :func:`nearest_source_indices` per axis (no interpolation)."""
    if img.shape[:2] == (height, width):
        return img
    rows = nearest_source_indices(img.shape[0], height)
    cols = nearest_source_indices(img.shape[1], width)
    return np.ascontiguousarray(img[rows][:, cols])


def fit_to_format(hint: np.ndarray, plate_size: Tuple[int, int], what: str = "hint") -> np.ndarray:
    """A hint (its own format, ``H x W (x C)``) fitted to the plate's format ``(width, height)``.

    Same size: unchanged. Same aspect (:func:`same_aspect`): :func:`resize_nearest`. Another
    aspect: :class:`FrameReadError` naming both sizes.
    """
    h, w = hint.shape[:2]
    pw, ph = plate_size
    if (w, h) == (pw, ph):
        return hint
    if not same_aspect((w, h), (pw, ph)):
        raise FrameReadError(hint_size_problem(what, (w, h), (pw, ph)))
    return resize_nearest(hint, ph, pw)


def hint_size_problem(what: str, hint_size: Tuple[int, int], plate_size: Tuple[int, int]) -> str:
    """The message for a hint whose format cannot be fitted to its plate's (another aspect ratio)."""
    return (f"{what} is {hint_size[0]}x{hint_size[1]} but its plate's format is {plate_size[0]}x{plate_size[1]}, "
            f"another aspect ratio: a hint is fitted to its plate's format only when the two have the same aspect "
            f"(within {HINT_FIT_TOLERANCE_PX:g} pixel). Make the hints at the plate's format (or a scale of it)")


@dataclass(frozen=True)
class ImageInfo:
    """A frame's header as the pipeline uses it: where the chosen channels are, geometry, carried metadata."""

    path: Path
    subimage: int
    channels: Tuple[str, ...]  # the chosen channel names, in R G B A / Y A / A order
    indices: Tuple[int, ...]  # their indices in the subimage
    geometry: Geometry
    colorspace: str = ""  # the file's oiio:ColorSpace, "" when unknown
    metadata: Tuple[Tuple[str, str, Any], ...] = field(default=())  # (name, OIIO type, value) of CARRIED_ATTRIBUTES

    def attribute(self, name: str) -> Any:
        """A carried attribute's value, ``None`` when the file has none."""
        return next((value for n, _type, value in self.metadata if n == name), None)


# --------------------------------------------------------------------------- reading


def _read_config() -> oiio.ImageSpec:
    """Open hints: pixels as stored. ``oiio:UnassociatedAlpha`` = 1 stops OpenImageIO premultiplying a
    straight-alpha file (PNG, TIFF with unassociated alpha) on read; a plate's alpha never changes its RGB."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)
    return config


_READ_CONFIG = _read_config()


def _open(path: Path) -> oiio.ImageInput:
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(f"cannot read frame {path}: file not found")
    inp = oiio.ImageInput.open(str(path), _READ_CONFIG)
    if inp is None:
        raise FrameReadError(f"cannot read frame {path}: {_oiio_error()} (corrupt, truncated or not an image)")
    return inp


def _oiio_error(obj: Any = None) -> str:
    text = (obj.geterror() if obj is not None else oiio.geterror()) or "unknown error"
    return " ".join(text.split())


def _split_channel(name: str) -> Tuple[str, str]:
    """``"beauty.R"`` -> ``("beauty", "R")``; ``"R"`` -> ``("", "R")``."""
    layer, _, suffix = name.rpartition(".")
    return layer, suffix


def _pick(names: Sequence[str], layer: str) -> Optional[List[int]]:
    """Indices of R G B (A), else Y (A), else A, among ``names`` in ``layer`` ("" = outside layers)."""
    found: Dict[str, int] = {}
    for i, name in enumerate(names):
        lay, suffix = _split_channel(name)
        if lay != layer:
            continue
        for meaning, spellings in _SUFFIXES.items():
            if suffix in spellings and meaning not in found:
                found[meaning] = i
    alpha = [found["A"]] if "A" in found else []
    if all(c in found for c in "RGB"):
        return [found["R"], found["G"], found["B"]] + alpha
    if "Y" in found:
        return [found["Y"]] + alpha
    return alpha or None


def _layers_of(parts: Sequence[Tuple[str, Sequence[str]]]) -> str:
    """A readable list of a file's parts and layers, for error messages."""
    items = []
    for k, (part, names) in enumerate(parts):
        layers = sorted({_split_channel(n)[0] for n in names} - {""})
        bare = [n for n in names if "." not in n]
        what = ", ".join(layers + ([f"channels {' '.join(bare)}"] if bare else []))
        items.append(f"part {k}{f' {part!r}' if part else ''}: {what or 'no channels'}")
    return "; ".join(items)


def choose_channels(path: Path, parts: Sequence[Tuple[str, Sequence[str]]],
                    layer: Optional[str]) -> Tuple[int, List[int]]:
    """``(subimage, channel indices)`` to read from a file whose parts are ``(part name, channel names)``."""
    if layer:
        for k, (part, names) in enumerate(parts):
            if part == layer:
                picked = _pick(names, "") or _pick(names, layer)
                if picked:
                    return k, picked
        for k, (_part, names) in enumerate(parts):
            picked = _pick(names, layer)
            if picked:
                return k, picked
        raise FrameReadError(f"{path} has no part or layer {layer!r} with R, G, B (or Y or A) channels; it has "
                             f"{_layers_of(parts)}. Choose one of those with --layer")
    for k, (_part, names) in enumerate(parts):
        picked = _pick(names, "")
        if picked:
            return k, picked
    if len(parts) == 1 and not is_exr(path) and 0 < len(parts[0][1]) <= 4:
        return 0, list(range(len(parts[0][1])))  # e.g. a TIFF with unusual channel names
    raise FrameReadError(f"{path} has no R, G, B (or Y or A) channels outside a layer; it has {_layers_of(parts)}. "
                         f"Pick the layer to key with --layer NAME")


def _geometry(spec: oiio.ImageSpec) -> Geometry:
    data = Box(spec.x, spec.y, spec.x + spec.width, spec.y + spec.height)
    display = Box(spec.full_x, spec.full_y, spec.full_x + spec.full_width, spec.full_y + spec.full_height)
    if display.width <= 0 or display.height <= 0:
        display = data
    aspect = float(spec.get_float_attribute("PixelAspectRatio", 1.0)) or 1.0
    return Geometry(data, display, aspect)


def _info(inp: oiio.ImageInput, path: Path, layer: Optional[str]) -> ImageInfo:
    parts = []
    count = inp.spec().get_int_attribute("oiio:subimages", 0)  # EXR says; other formats are probed
    k = 0
    while (count <= 0 or k < count) and inp.seek_subimage(k, 0):
        spec = inp.spec()
        parts.append((spec.get_string_attribute("name", ""), tuple(spec.channelnames)))
        k += 1
    inp.geterror()  # a failed probe past the last subimage leaves an error behind; it is not one
    subimage, indices = choose_channels(path, parts, layer)
    if not inp.seek_subimage(subimage, 0):
        raise FrameReadError(f"cannot read frame {path}: {_oiio_error(inp)}")
    spec = inp.spec()
    if spec.deep:
        raise FrameReadError(f"{path} holds deep data (part {subimage}); key a flat render of it")
    names = tuple(spec.channelnames)
    carried = tuple((a.name, str(a.type), a.value) for a in spec.extra_attribs if a.name in CARRIED_ATTRIBUTES)
    return ImageInfo(Path(path), subimage, tuple(names[i] for i in indices), tuple(indices), _geometry(spec),
                     spec.get_string_attribute("oiio:ColorSpace", ""), carried)


def read_info(path: Path, layer: Optional[str] = None) -> ImageInfo:
    """The header of ``path`` (no pixels): which channels :func:`read_image` reads, geometry, metadata."""
    inp = _open(path)
    try:
        return _info(inp, Path(path), layer)
    finally:
        inp.close()


def _place(pixels: np.ndarray, data: Box, window: Box) -> np.ndarray:
    """``pixels`` (covering ``data``) in a ``window``-sized array, zeros where nothing is stored."""
    if data == window:
        return pixels
    out = np.zeros((window.height, window.width, pixels.shape[2]), np.float32)
    x0, y0 = max(data.x0, window.x0), max(data.y0, window.y0)
    x1, y1 = min(data.x1, window.x1), min(data.y1, window.y1)
    if x1 > x0 and y1 > y0:
        out[y0 - window.y0:y1 - window.y0, x0 - window.x0:x1 - window.x0] = \
            pixels[y0 - data.y0:y1 - data.y0, x0 - data.x0:x1 - data.x0]
    return out


def read_with_info(path: Path, layer: Optional[str] = None,
                   window: Optional[Box] = None) -> Tuple[np.ndarray, ImageInfo]:
    """Pixels of ``path``'s chosen channels over ``window`` (default: its frame box) and its :class:`ImageInfo`."""
    path = Path(path)
    inp = _open(path)
    try:
        info = _info(inp, path, layer)
        first, last = min(info.indices), max(info.indices) + 1
        pixels = inp.read_image(info.subimage, 0, first, last, "float")
        if pixels is None or inp.has_error:
            raise FrameReadError(f"cannot read frame {path}: {_oiio_error(inp)} (the file is corrupt or truncated)")
    finally:
        inp.close()
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    picked = [i - first for i in info.indices]
    if picked != list(range(pixels.shape[2])):
        pixels = pixels[..., picked]
    box = window if window is not None else info.geometry.frame_box
    return np.ascontiguousarray(_place(pixels, info.geometry.data, box)), info


def image_size(path: Path) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of an image's format (display window) from its header alone, or None when unreadable.

    Opens the header, not the pixels: the up-front check that every hint matches its plate
    costs milliseconds per frame. None (a damaged or unknown file) leaves the check to the
    frame's own read, which stops the run at that frame.
    """
    try:
        info = read_info(path)
    except (FrameReadError, OSError, ValueError):
        return None
    return info.geometry.display.width, info.geometry.display.height


def read_image(path: Path, layer: Optional[str] = None, window: Optional[Box] = None) -> np.ndarray:
    """Any supported image -> ``H x W x C`` float32 over ``window`` (default: the frame box); see the module doc."""
    return read_with_info(path, layer, window)[0]


def plate_rgb(img: np.ndarray) -> np.ndarray:
    """The plate's RGB from an image (grey is repeated, an alpha channel ignored)."""
    if img.shape[2] <= 2:
        return np.repeat(img[..., :1], 3, axis=2)
    return img[..., :3]


def hint_channel(img: np.ndarray) -> np.ndarray:
    """The alpha hint from a hint image, ``H x W``.

    One channel: that channel. Two (grey + alpha) or four (RGBA): the alpha
    channel. Three (RGB): the red channel (a matte written as RGB holds the
    same value in each channel).
    """
    c = img.shape[2]
    if c == 1:
        return img[..., 0]
    if c in (2, 4):
        return img[..., -1]
    return img[..., 0]


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ExrOptions:
    """How EXR files are written: pixel type (``half``/``float``) and OpenEXR compression name."""

    pixel_type: str = "half"
    compression: str = DEFAULT_EXR_COMPRESSION

    def __post_init__(self) -> None:
        if self.pixel_type not in EXR_TYPES:
            raise ValueError(f"EXR pixel type {self.pixel_type!r}: choose from {', '.join(EXR_TYPES)}")
        if self.compression in EXR_COMPRESSION_ALIASES:
            object.__setattr__(self, "compression", EXR_COMPRESSION_ALIASES[self.compression])
        if self.compression not in EXR_COMPRESSIONS:
            raise ValueError(f"EXR compression {self.compression!r}: choose from {', '.join(EXR_COMPRESSIONS)}")


#: Channel names DWAA/DWAB compress lossily (OpenEXR's DWA classifies channels by the name after the last
#: dot: R, G, B, Y, BY, RY go through its lossy DCT; every other channel, A included, is kept exactly).
DWA_LOSSY_CHANNELS = ("R", "G", "B", "Y", "BY", "RY")
#: The compression a file holding a matte falls back to when the chosen one would change the matte.
MATTE_FALLBACK_COMPRESSION = "zip"


def keeps_channel_exact(compression: str, pixel_type: str, channel: str) -> bool:
    """Whether an EXR channel named ``channel`` of ``pixel_type`` round-trips exactly under ``compression``.

    Lossy for every channel: b44/b44a on half (4x4 blocks), pxr24 on float (24-bit floats).
    DWAA/DWAB: lossy for :data:`DWA_LOSSY_CHANNELS` only. Every other combination is lossless.
    """
    compression = EXR_COMPRESSION_ALIASES.get(compression, compression)
    if compression in ("b44", "b44a"):
        return pixel_type != "half"
    if compression == "pxr24":
        return pixel_type != "float"
    if compression in ("dwaa", "dwab"):
        return channel.rpartition(".")[2].upper() not in DWA_LOSSY_CHANNELS
    return True


def matte_exr_options(exr: ExrOptions, matte_channel: str) -> ExrOptions:
    """``exr`` for a file holding a matte in ``matte_channel``: unchanged when it keeps the matte exact, else
    with :data:`MATTE_FALLBACK_COMPRESSION` (mattes are always lossless)."""
    if keeps_channel_exact(exr.compression, exr.pixel_type, matte_channel):
        return exr
    return ExrOptions(exr.pixel_type, MATTE_FALLBACK_COMPRESSION)


def default_channel_names(channels: int) -> Tuple[str, ...]:
    """Y, Y A, R G B, R G B A (OpenEXR's names); more channels are numbered after those."""
    if channels <= 4:
        return {1: ("Y",), 2: ("Y", "A"), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}[channels]
    return ("R", "G", "B", "A") + tuple(f"channel{i}" for i in range(4, channels))


def _spec_for(path: Path, shape: Tuple[int, int, int], exr: ExrOptions, eight_bit: bool) -> oiio.ImageSpec:
    ext = path.suffix.lower()
    h, w, c = shape
    if ext == ".exr":
        spec = oiio.ImageSpec(w, h, c, EXR_TYPES[exr.pixel_type])
        spec.attribute("compression", exr.compression)
    elif ext in (".png", ".tif", ".tiff"):
        spec = oiio.ImageSpec(w, h, c, "uint8" if eight_bit else "uint16")
        spec.attribute("compression", "zip")
    elif ext in (".jpg", ".jpeg"):
        spec = oiio.ImageSpec(w, h, c, "uint8")
        spec.attribute("Compression", f"jpeg:{JPEG_QUALITY}")
    elif ext == ".dpx":
        spec = oiio.ImageSpec(w, h, c, "uint16")
        spec.attribute("oiio:BitsPerSample", 10)
    else:
        raise FrameWriteError(f"{path}: cannot write {ext} frames; use one of {', '.join(IMAGE_EXTENSIONS)}")
    return spec


def _frame_for(path: Path, img: np.ndarray, info: Optional[ImageInfo]) -> Tuple[np.ndarray, Optional[Geometry]]:
    """``img`` (covering ``info``'s frame box, its display window) and the geometry to store it with:
    data window = display window (what the Inference node behind the gizmo's Crop writes)."""
    if info is None:
        return img, None
    g = info.geometry
    return img, Geometry(g.display, g.display, g.pixel_aspect)


def write_temp(path: Path, img: np.ndarray, exr: ExrOptions = ExrOptions(), *, eight_bit: bool = False,
               info: Optional[ImageInfo] = None, channel_names: Optional[Sequence[str]] = None,
               colorspace: str = "") -> Path:
    """Write ``img`` to a temporary file beside ``path``; returns it (``commit`` it, or ``discard`` it).

    ``img`` is ``H x W`` or ``H x W x C`` floats. EXR keeps floats (``exr``); PNG/TIFF are
    16-bit (8-bit with ``eight_bit``, the preview comp), JPEG 8-bit, clipped to [0, 1] and
    rounded. With ``info`` (the plate's), ``img`` covers the plate's frame box and the file
    gets the plate's geometry and carried metadata; ``colorspace`` labels the file
    (``oiio:ColorSpace``, OpenEXR ``colorSpace`` is written by OpenImageIO from it).
    """
    path = Path(path)
    data = np.asarray(img, dtype=np.float32)
    if data.ndim == 2:
        data = data[..., None]
    data, geometry = _frame_for(path, data, info)
    data = np.ascontiguousarray(data)
    spec = _spec_for(path, data.shape, exr, eight_bit)
    spec.channelnames = tuple(channel_names) if channel_names else default_channel_names(data.shape[2])
    if "A" in spec.channelnames:
        spec.alpha_channel = list(spec.channelnames).index("A")
    if geometry is not None:
        spec.x, spec.y = geometry.data.x0, geometry.data.y0
        spec.full_x, spec.full_y = geometry.display.x0, geometry.display.y0
        spec.full_width, spec.full_height = geometry.display.width, geometry.display.height
        spec.attribute("PixelAspectRatio", float(geometry.pixel_aspect))
    if info is not None:
        for name, type_name, value in info.metadata:
            try:
                spec.attribute(name, oiio.TypeDesc(type_name), value)
            except (TypeError, ValueError):  # a value type this binding cannot set back: leave it out
                log.debug("%s: metadata %s not carried over", path, name)
    if colorspace:
        spec.attribute("oiio:ColorSpace", colorspace)
    if path.suffix.lower() == ".png" and data.shape[2] in PNG_CHANNEL_ORDER:
        return _write_png_temp(path, data, eight_bit)
    tmp = temp_path_for(path)
    try:
        out = oiio.ImageOutput.create(str(tmp))
        if out is None:
            raise FrameWriteError(f"cannot write {path}: {_oiio_error()}")
        try:
            ok = out.open(str(tmp), spec) and out.write_image(data)
            error = "" if ok else _oiio_error(out)
        finally:
            out.close()
        if not ok or not tmp.is_file() or tmp.stat().st_size == 0:
            why = why_encoder_failed(path, data)
            raise FrameWriteError(f"cannot write {path}: {why or error or 'OpenImageIO refused to write the file'}"
                                  + ("" if why else " (is its folder writable?)"))
    except BaseException:
        discard(tmp)
        raise
    return tmp


def _write_png_temp(path: Path, data: np.ndarray, eight_bit: bool) -> Path:
    """A PNG through OpenCV's encoder (see PNG_CHANNEL_ORDER's note), to a temporary file beside ``path``."""
    c = data.shape[2]
    bgr = data[..., ::-1] if c == 3 else (data[..., PNG_CHANNEL_ORDER[c]] if c == 4 else data)  # a view for RGB
    scaled = np.clip(bgr, 0.0, 1.0)
    scaled *= 255.0 if eight_bit else 65535.0
    np.rint(scaled, out=scaled)
    ints = scaled.astype(np.uint8 if eight_bit else np.uint16)
    tmp = temp_path_for(path)
    try:
        ok = cv2.imwrite(str(tmp), ints)
        if not ok or tmp.stat().st_size == 0:
            why = why_encoder_failed(path, ints)
            raise FrameWriteError(f"cannot write {path}: {why or 'the PNG encoder refused it (is its folder writable?)'}")
    except cv2.error as exc:
        why = why_encoder_failed(path, ints)
        discard(tmp)
        raise FrameWriteError(f"cannot write {path}: {why or exc}") from None
    except BaseException:
        discard(tmp)
        raise
    return tmp


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> rounded 8-bit."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
