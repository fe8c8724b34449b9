"""Video through PyAV (FFmpeg's libraries): frame-accurate decoding, 8/10/12-bit, and the review encodes.

Decoding goes through every frame in order (no seeking, so frame N is always the Nth
picture), and converts to RGB with libswscale using the stream's own matrix (colorspace)
and range as tagged on each frame: 8-bit streams to 8-bit RGB, deeper ones to 16-bit
RGB, then to float32 in [0, 1]. An untagged matrix is taken as BT.709 for pictures 720
lines high or more and BT.601 below (what players assume; logged). The transfer
function is reported (:class:`VideoInfo`), not undone: the pipeline keys video as an
sRGB/Rec.709-encoded picture, and warns when the stream says otherwise (PQ, HLG, linear).

A stream that cannot be decoded, or ends before the frame count its container promised, is
a :class:`FrameReadError` naming the file and the frame (1-based, as ``--frames`` counts).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple

import av
import numpy as np
from av.video.reformatter import Colorspace

from corridorkey_model.pipeline.frame_io.common import (
    FrameReadError,
    FrameWriteError,
    commit_or_discard,
    discard,
    temp_path_for,
)

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".mxf", ".webm", ".m4v", ".mpg", ".mpeg")

# AVColorSpace / AVColorTransferCharacteristic / AVColorPrimaries / AVColorRange codes (libavutil/pixfmt.h).
_MATRICES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
             8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
_TRANSFERS = {1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
              8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
_PRIMARIES = {1: "bt709", 2: "unspecified", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020",
              11: "smpte431", 12: "smpte432"}
_RANGES = {0: "unspecified", 1: "tv", 2: "pc"}
#: Transfers the pipeline keys as they are (sRGB-like display encodings).
DISPLAY_TRANSFERS = ("bt709", "unspecified", "gamma22", "smpte170m", "iec61966-2-1", "bt2020-10", "bt2020-12")


def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoInfo:
    """What a video's first stream says about itself (recorded in the ``--video-out`` sidecar)."""

    path: str
    codec: str
    pix_fmt: str
    width: int
    height: int
    frame_rate: str  # exact, "24000/1001"
    frames: int
    bit_depth: int
    colorspace: str  # the YCbCr matrix
    color_range: str
    transfer: str
    primaries: str

    @property
    def fps(self) -> Fraction:
        return Fraction(self.frame_rate)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _open(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FrameReadError(f"cannot open video {path}: file not found")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise FrameReadError(f"cannot open video {path}: {exc} (corrupt, truncated or not a video)") from None
    if not container.streams.video:
        container.close()
        raise FrameReadError(f"{path} holds no video stream that can be read (not a video, or truncated before "
                             f"its first frame); give a complete video file")
    return container


def _bit_depth(stream: Any) -> int:
    fmt = stream.codec_context.format
    if fmt is None:
        return 8
    return max((c.bits for c in fmt.components), default=8)


def _count_packets(container: Any, stream: Any, path: Path) -> int:
    n = 0
    try:
        for packet in container.demux(stream):
            if packet.size:
                n += 1
    except av.FFmpegError as exc:
        raise FrameReadError(f"video {path} is corrupt after frame {n}: {exc}") from None
    return n


def probe_video(path: Path) -> VideoInfo:
    """The first video stream's codec, size, rate, frame count, bit depth and colour tags."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        frames = int(stream.frames or 0)
        if frames <= 0:  # no count in the header (Matroska, AVI): count the packets, one per frame
            frames = _count_packets(container, stream, path)
        if frames <= 0:
            raise FrameReadError(f"video {path} holds no decodable frame (truncated or corrupt?); give a complete "
                                 f"video file")
        return VideoInfo(str(path), cc.name, cc.pix_fmt or "", cc.width, cc.height, str(Fraction(rate)), frames,
                         _bit_depth(stream), _MATRICES.get(int(cc.colorspace), str(int(cc.colorspace))),
                         _RANGES.get(int(cc.color_range), str(int(cc.color_range))),
                         _TRANSFERS.get(int(cc.color_trc), str(int(cc.color_trc))),
                         _PRIMARIES.get(int(cc.color_primaries), str(int(cc.color_primaries))))
    finally:
        container.close()


def count_video_frames(path: Path) -> int:
    """Frames in a video: the container's count, else its packets counted (no decoding)."""
    return probe_video(path).frames


def _to_rgb(frame: Any, deep: bool) -> np.ndarray:
    """A decoded frame -> ``H x W x 3`` float32 RGB in [0, 1], with the frame's matrix and range."""
    src = None
    if int(frame.colorspace) == 2:  # unspecified: what players assume
        src = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
    if deep:
        rgb = frame.to_ndarray(format="rgb48le", src_colorspace=src) if src is not None else \
            frame.to_ndarray(format="rgb48le")
        return rgb.astype(np.float32) * np.float32(1.0 / 65535.0)
    rgb = frame.to_ndarray(format="rgb24", src_colorspace=src) if src is not None else frame.to_ndarray(format="rgb24")
    return rgb.astype(np.float32) * np.float32(1.0 / 255.0)


def iter_video(path: Path, wanted: Optional[Sequence[int]] = None) -> Iterator[Tuple[int, np.ndarray]]:
    """Decode ``path`` in order, yielding ``(index, H x W x 3 float32 RGB)`` for the 0-based indices in ``wanted``.

    Frames not wanted are decoded but not converted. Stops after the last wanted frame.
    """
    path = Path(path)
    info = probe_video(path)
    if info.transfer not in DISPLAY_TRANSFERS:
        log.warning("%s: transfer %s is not a display (sRGB/Rec.709-like) encoding; it is keyed as if it were",
                    path, info.transfer)
    want = None if wanted is None else set(wanted)
    last = (info.frames - 1) if want is None else (max(want) if want else -1)
    deep = info.bit_depth > 8
    container = _open(path)
    index = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        while index <= last:
            try:
                frame = next(frames)
            except StopIteration:
                raise FrameReadError(f"video {path} ended at frame {index + 1}: its container promised {info.frames} "
                                     f"frame(s) (truncated?)") from None
            except av.FFmpegError as exc:
                raise FrameReadError(f"cannot decode frame {index + 1} of video {path}: {exc} (corrupt or "
                                     f"truncated)") from None
            if want is None or index in want:
                if getattr(frame, "is_corrupt", False):
                    raise FrameReadError(f"frame {index + 1} of video {path} is corrupt (the decoder flagged it)")
                yield index, _to_rgb(frame, deep)
            index += 1
    finally:
        container.close()


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class VideoCodec:
    """An encode offered by ``--video-out``: FFmpeg encoder, pixel format, container, options."""

    name: str
    encoder: str
    pix_fmt: str
    extension: str
    options: Tuple[Tuple[str, str], ...]
    why: str


VIDEO_CODECS: Dict[str, VideoCodec] = {
    "h264": VideoCodec("h264", "libx264", "yuv420p", ".mp4", (("crf", "16"), ("preset", "medium")),
                       "H.264 8-bit 4:2:0 in MP4: plays everywhere (browsers, review tools, phones)"),
    "prores": VideoCodec("prores", "prores_ks", "yuv444p10le", ".mov", (("profile", "4"),),
                         "Apple ProRes 4444 in QuickTime: 10-bit 4:4:4, so the matte's soft edges keep their "
                         "levels; the usual editorial and review intermediate"),
}


def write_video(path: Path, frames: Iterable[np.ndarray], fps: Any = 24, codec: str = "h264",
                transfer: str = "iec61966-2-1") -> Path:
    """Encode RGB float frames in [0, 1] (``H x W x 3``, or ``H x W`` grey) to ``path``, atomically.

    Tagged BT.709 matrix and primaries, limited range, and ``transfer``. Returns ``path``.
    """
    path = Path(path)
    spec = VIDEO_CODECS[codec]
    tmp = temp_path_for(path)
    count = 0
    try:
        with av.open(str(tmp), "w", format=None if path.suffix else "mp4") as container:
            stream = None
            for img in frames:
                img = np.asarray(img, np.float32)
                if img.ndim == 2 or img.shape[2] == 1:
                    img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
                h, w = img.shape[:2]
                if stream is None:
                    stream = _add_stream(container, spec, w, h, fps, transfer)
                elif (w, h) != (stream.width, stream.height):  # never rescale a frame silently
                    raise FrameWriteError(f"cannot write video {path}: frame {count + 1} is {w}x{h} but the first "
                                          f"is {stream.width}x{stream.height}; a video holds one frame size")
                rgb = np.round(np.clip(img[..., :3], 0.0, 1.0) * 65535.0).astype(np.uint16)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb48le")
                frame = frame.reformat(format=stream.pix_fmt, dst_colorspace=Colorspace.ITU709, dst_color_range=1)
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            if stream is None:
                raise FrameWriteError(f"cannot write {path}: no frames to encode")
            for packet in stream.encode():
                container.mux(packet)
    except av.FFmpegError as exc:
        discard(tmp)
        raise FrameWriteError(f"cannot write video {path}: {exc}") from None
    except BaseException:
        discard(tmp)
        raise
    commit_or_discard(tmp, path)
    log.info("wrote %s (%d frame(s), %s)", path, count, spec.name)
    return path


def _add_stream(container: Any, spec: VideoCodec, width: int, height: int, fps: Any, transfer: str) -> Any:
    pix_fmt = spec.pix_fmt
    if pix_fmt == "yuv420p" and (width % 2 or height % 2):
        pix_fmt = "yuv444p"  # 4:2:0 needs even sizes; keep the plate's size rather than pad it
        log.warning("%dx%d is odd: H.264 is written 4:4:4 (less widely playable than 4:2:0)", width, height)
    stream = container.add_stream(spec.encoder, rate=Fraction(fps).limit_denominator(100000))
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.options = dict(spec.options)
    cc = stream.codec_context
    cc.color_range = 1  # limited ("tv"), what players expect
    cc.colorspace = 1  # BT.709 matrix
    cc.color_primaries = 1
    cc.color_trc = {v: k for k, v in _TRANSFERS.items()}.get(transfer, 2)
    return stream
