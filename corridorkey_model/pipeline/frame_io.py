"""Reading and writing frames: PNG/TIFF (8/16-bit), JPEG, EXR (half/float) and video via OpenCV.

This is the one module that imports ``cv2`` (others take it from here), so that
``OPENCV_IO_ENABLE_OPENEXR`` is set before OpenCV loads: OpenCV 4.x keeps its
EXR codec switched off unless that variable is set when ``cv2`` is imported.
(opencv-python 5.0 wheels are built without OpenEXR at all; hence the ``<5`` pin.)

Conventions: images are ``H x W x C`` float32 RGB(A) (OpenCV's BGR order is
undone here); 8-bit values are divided by 255, 16-bit by 65535, float files are
returned as stored (values may leave [0, 1]). Writes are atomic
(:mod:`corridorkey_model.atomic`): the data goes to a hidden temporary file in
the target folder, then ``os.replace`` puts it in place, so a killed run never
leaves a half-written frame under a final name.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

os.environ["OPENCV_IO_ENABLE_OPENEXR"] = "1"

import cv2  # noqa: E402  (must follow the environment variable above)
import numpy as np  # noqa: E402

from corridorkey_model import atomic  # noqa: E402

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".exr")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".mxf", ".webm", ".m4v", ".mpg", ".mpeg")

#: OpenCV flags left out: the OpenEXR 2.3 bundled with opencv-python 4.x writes DWAA/DWAB files
#: that neither OpenCV nor OpenEXR 3.5 can read back (checked with opencv-python 4.14).
UNUSABLE_EXR_COMPRESSIONS = ("dwaa", "dwab")
#: EXR compressions, named after OpenCV's own ``cv2.IMWRITE_EXR_COMPRESSION_*`` flags.
EXR_COMPRESSIONS: Dict[str, int] = {
    name[len("IMWRITE_EXR_COMPRESSION_"):].lower(): int(getattr(cv2, name))
    for name in dir(cv2) if name.startswith("IMWRITE_EXR_COMPRESSION_")
    and name[len("IMWRITE_EXR_COMPRESSION_"):].lower() not in UNUSABLE_EXR_COMPRESSIONS
}
EXR_COMPRESSIONS = dict(sorted(EXR_COMPRESSIONS.items(), key=lambda kv: kv[1]))
DEFAULT_EXR_COMPRESSION = "zip" if "zip" in EXR_COMPRESSIONS else next(iter(EXR_COMPRESSIONS), "")
EXR_TYPES: Dict[str, int] = {"half": int(cv2.IMWRITE_EXR_TYPE_HALF), "float": int(cv2.IMWRITE_EXR_TYPE_FLOAT)}


class FrameReadError(Exception):
    """A frame or video could not be read; the message names the file."""


class FrameWriteError(Exception):
    """A frame could not be written; the message names the file."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_exr(path: Path) -> bool:
    return path.suffix.lower() == ".exr"


def check_exr_support() -> None:
    """Raise :class:`FrameWriteError` if this OpenCV build cannot read and write EXR."""
    if not cv2.haveImageWriter("probe.exr"):
        raise FrameWriteError(
            f"this OpenCV build ({cv2.__version__}) has no OpenEXR codec, so EXR frames cannot be read or "
            f"written. opencv-python 5.0 wheels ship without it: install opencv-python>=4.5,<5."
        )


# --------------------------------------------------------------------------- reading


def to_float(img: np.ndarray, path: Path) -> np.ndarray:
    """Integer or float pixels -> float32 (8-bit / 255, 16-bit / 65535, float as stored)."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype in (np.float16, np.float32, np.float64):
        return img.astype(np.float32)
    raise FrameReadError(f"{path}: unsupported pixel type {img.dtype} (use 8/16-bit integer or half/float)")


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img[..., None]
    if img.shape[2] == 3:
        return img[..., ::-1]
    if img.shape[2] == 4:
        return img[..., [2, 1, 0, 3]]
    return img


def read_image(path: Path) -> np.ndarray:
    """Any supported image -> ``H x W x C`` float32, channels RGB(A) or one grey channel."""
    path = Path(path)
    if is_exr(path):
        check_exr_support()
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        why = "file not found" if not path.exists() else "OpenCV cannot decode it (corrupt, truncated or not an image)"
        raise FrameReadError(f"cannot read frame {path}: {why}")
    return np.ascontiguousarray(to_float(_bgr_to_rgb(img), path))


def image_size(path: Path) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of an image from its header alone (PNG, JPEG, TIFF, EXR), or None when it cannot tell.

    Reads a few bytes, not the pixels: the up-front check that every hint matches its plate
    costs milliseconds per frame. None (a file this parser does not know, or a damaged
    header) leaves the check to the frame's own read, which fails at that frame. EXR: the
    first part's ``dataWindow``; TIFF: the first image (classic TIFF, not BigTIFF).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
                return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            if head.startswith(b"\xff\xd8"):
                return _jpeg_size(f)
            if head[:4] in (b"II*\x00", b"MM\x00*"):
                return _tiff_size(f, "little" if head[:2] == b"II" else "big")
            if head.startswith(b"\x76\x2f\x31\x01"):
                return _exr_size(f)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _jpeg_size(f) -> Optional[Tuple[int, int]]:
    """Width and height from a JPEG's first SOFn segment (ITU T.81, table B.1: markers C0-CF but C4, C8, CC)."""
    f.seek(2)
    while True:
        byte = f.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers: no length
            byte = f.read(1)
            if byte != b"\xff":
                return None
            continue
        length = int.from_bytes(f.read(2), "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            data = f.read(5)  # precision, height, width
            return int.from_bytes(data[3:5], "big"), int.from_bytes(data[1:3], "big")
        if length < 2:
            return None
        f.seek(length - 2, os.SEEK_CUR)
        byte = f.read(1)
        if byte != b"\xff":
            return None


def _tiff_size(f, order: str) -> Optional[Tuple[int, int]]:
    """ImageWidth (tag 256) and ImageLength (257) of a classic TIFF's first IFD (SHORT or LONG values)."""
    f.seek(4)
    f.seek(int.from_bytes(f.read(4), order))
    count = int.from_bytes(f.read(2), order)
    found = {}
    for _ in range(count):
        entry = f.read(12)
        if len(entry) < 12:
            return None
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257):
            found[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], order)
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _exr_size(f) -> Optional[Tuple[int, int]]:
    """The ``dataWindow`` (box2i: xMin, yMin, xMax, yMax) of an OpenEXR header (the first part's)."""
    f.seek(8)
    for _ in range(1000):
        name = _read_cstring(f)
        if not name:
            return None  # end of the header without a dataWindow
        _read_cstring(f)  # attribute type
        size = int.from_bytes(f.read(4), "little")
        if name == b"dataWindow" and size == 16:
            x0, y0, x1, y1 = np.frombuffer(f.read(16), dtype="<i4").tolist()
            return x1 - x0 + 1, y1 - y0 + 1
        f.seek(size, os.SEEK_CUR)
    return None


def _read_cstring(f, limit: int = 256) -> bytes:
    out = bytearray()
    while len(out) <= limit:
        c = f.read(1)
        if not c or c == b"\x00":
            return bytes(out)
        out += c
    raise ValueError("not an OpenEXR attribute name")


def video_size(path: Path) -> Tuple[int, int]:
    """``(width, height)`` of a video's frames, as its container states them."""
    cap = _open_video(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()


def plate_rgb(img: np.ndarray) -> np.ndarray:
    """The plate's RGB from an image (grey is repeated, an alpha channel ignored)."""
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
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


def count_video_frames(path: Path) -> int:
    """Frames in a video (container's count when it gives one, otherwise counted by decoding)."""
    cap = _open_video(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n > 0:
            return n
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def _open_video(path: Path) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameReadError(f"cannot open video {path}: OpenCV (FFmpeg) cannot decode it")
    return cap


def iter_video(path: Path, wanted: Optional[Sequence[int]] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """Decode ``path`` in order, yielding ``(index, H x W x 3 float32 RGB)`` for the 0-based indices in ``wanted``.

    Frames not wanted are skipped without being converted. Stops after the last wanted frame.
    """
    want = None if wanted is None else set(wanted)
    last = None if want is None else (max(want) if want else -1)
    cap = _open_video(path)
    try:
        index = 0
        while last is None or index <= last:
            if not cap.grab():
                if last is not None:
                    raise FrameReadError(f"video {path} ended at frame {index} (0-based), before frame {last}")
                return
            if want is None or index in want:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    raise FrameReadError(f"cannot decode frame {index} (0-based) of video {path}")
                yield index, np.ascontiguousarray(to_float(_bgr_to_rgb(frame), path))
            index += 1
    finally:
        cap.release()


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ExrOptions:
    """How EXR files are written: pixel type (``half``/``float``) and compression name."""

    pixel_type: str = "half"
    compression: str = DEFAULT_EXR_COMPRESSION

    def __post_init__(self) -> None:
        if self.pixel_type not in EXR_TYPES:
            raise ValueError(f"EXR pixel type {self.pixel_type!r}: choose from {', '.join(EXR_TYPES)}")
        if self.compression not in EXR_COMPRESSIONS:
            raise ValueError(f"EXR compression {self.compression!r}: choose from {', '.join(EXR_COMPRESSIONS)}")

    def params(self) -> list:
        return [cv2.IMWRITE_EXR_TYPE, EXR_TYPES[self.pixel_type],
                cv2.IMWRITE_EXR_COMPRESSION, EXR_COMPRESSIONS[self.compression]]


def _rgb_to_bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return img[..., ::-1]
    if img.ndim == 3 and img.shape[2] == 4:
        return img[..., [2, 1, 0, 3]]
    return img


def encode_for(path: Path, img: np.ndarray, exr: ExrOptions) -> Tuple[np.ndarray, list]:
    """Float image -> the array and flags ``cv2.imwrite`` needs for ``path``'s format.

    EXR keeps floats (half or float per ``exr``); PNG/TIFF are 16-bit, JPEG 8-bit,
    both clipped to [0, 1] and rounded.
    """
    ext = path.suffix.lower()
    data = np.ascontiguousarray(_rgb_to_bgr(np.asarray(img, dtype=np.float32)))
    if ext == ".exr":
        return data, exr.params()
    if ext in (".png", ".tif", ".tiff"):
        return np.round(np.clip(data, 0.0, 1.0) * 65535.0).astype(np.uint16), []
    if ext in (".jpg", ".jpeg"):
        return np.round(np.clip(data, 0.0, 1.0) * 255.0).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95]
    raise FrameWriteError(f"{path}: cannot write {ext} frames; use one of {', '.join(IMAGE_EXTENSIONS)}")


def to_uint8(img: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> rounded 8-bit."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def temp_path_for(path: Path) -> Path:
    """A new, empty hidden temporary file next to ``path`` with the same extension (OpenCV picks the codec by it)."""
    try:
        return atomic.temp_path_for(path)
    except OSError as exc:
        why = atomic.why_write_failed(path, exc)
        if exc.errno == errno.ENOENT:
            why = f"its folder {path.parent} does not exist"
        raise FrameWriteError(f"cannot write {path}: {why}") from exc


def write_temp(path: Path, img: np.ndarray, exr: ExrOptions = ExrOptions(), *, eight_bit: bool = False) -> Path:
    """Write ``img`` to a temporary file beside ``path``; returns it (``commit`` it, or ``discard`` it).

    ``eight_bit`` writes 8-bit PNG/JPEG (the preview comp) instead of 16-bit.
    """
    path = Path(path)
    if is_exr(path):
        check_exr_support()
    if eight_bit:
        data = np.ascontiguousarray(_rgb_to_bgr(to_uint8(img)))
        params: list = []
    else:
        data, params = encode_for(path, img, exr)
    tmp = temp_path_for(path)
    try:
        ok = cv2.imwrite(str(tmp), data, params)
    except cv2.error as exc:
        why = _why_opencv_failed(path, data)
        discard(tmp)
        raise FrameWriteError(f"cannot write {path}: {why or exc}") from exc
    except BaseException:
        discard(tmp)
        raise
    if not ok or not tmp.is_file() or tmp.stat().st_size == 0:
        why = _why_opencv_failed(path, data)  # before the partial file is removed: its space counts
        discard(tmp)
        raise FrameWriteError(f"cannot write {path}: {why or 'OpenCV refused to write the file (is its folder writable?)'}")
    return tmp


def _why_opencv_failed(path: Path, data: np.ndarray) -> Optional[str]:
    """OpenCV says only that a write failed: a full disk is told apart by the space left, else None."""
    free = atomic.free_bytes(path.parent)
    if free is not None and free < max(int(data.nbytes), atomic.NEARLY_FULL_BYTES):
        return atomic.why_write_failed(path, None, int(data.nbytes))
    return None


#: Move a finished temporary file onto its final name (atomic ``os.replace``).
commit = atomic.commit
#: Delete a temporary file if it is there.
discard = atomic.discard


def write_image(path: Path, img: np.ndarray, exr: ExrOptions = ExrOptions(), *, eight_bit: bool = False) -> None:
    """Atomic write of one image (temporary file + ``os.replace``)."""
    tmp = write_temp(path, img, exr, eight_bit=eight_bit)
    try:
        commit(tmp, Path(path))
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise FrameWriteError(f"cannot write {path}: {atomic.why_write_failed(path, exc)}") from exc
        raise


def check_writable(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written and removed there, else :class:`FrameWriteError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = atomic.temp_path_for(folder / "write-probe")
        try:
            with open(probe, "wb") as f:
                f.write(b"ok")
        finally:
            os.unlink(probe)
    except OSError as exc:
        raise FrameWriteError(
            f"output folder {folder} is not writable ({atomic.why_write_failed(folder / 'x', exc)}); choose "
            f"another place with --output if that cannot be fixed"
        ) from exc


def check_can_create(folder: Path) -> None:
    """Without creating anything: :class:`FrameWriteError` if ``folder`` is not, and cannot be made, a writable
    folder (its nearest existing part is a file, or is not writable). The cheap check before a model loads."""
    folder = Path(folder)
    p = folder.absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise FrameWriteError(f"output folder {folder} is not writable ({p} is a file, not a folder); move it away "
                              f"or choose another place with --output")
    if not os.access(p, os.W_OK | os.X_OK):
        raise FrameWriteError(f"output folder {folder} is not writable (permission denied in {p}); fix its "
                              f"permissions or choose another place with --output")


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 24.0, fourcc: str = "MJPG") -> None:
    """Write RGB float frames in [0, 1] to a video (for tests and examples)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise FrameWriteError(f"cannot open a {fourcc} video writer for {path}")
    try:
        for f in frames:
            writer.write(np.ascontiguousarray(to_uint8(f)[..., ::-1]))
    finally:
        writer.release()
