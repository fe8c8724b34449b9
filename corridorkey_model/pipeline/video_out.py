"""``--video-out``: the preview comp and the matte of a keyed clip as review videos, with a metadata sidecar.

Written beside the frames (``OUTPUT/CLIP.comp.mp4``, ``OUTPUT/CLIP.matte.mp4`` or ``.mov``, and
``OUTPUT/CLIP.video.json``) from the frames on disk, once every frame of the clip is written: a
farm job's chunks each key part of a clip, and the run that completes it writes the videos.
They have the source's frame rate (a video's own; for image sequences the plates'
``FramesPerSecond`` header, else 24), its format (display window) and its frame count. The
sidecar records the source's codec, pixel format, frame rate, colour space (matrix), range,
transfer and primaries, and what was encoded. The pixels are encoded by
:func:`corridorkey_model.pipeline.frame_io.write_video`.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np

from corridorkey_model import atomic
from corridorkey_model.pipeline import clips, frame_io, outputs

log = logging.getLogger(__name__)

DEFAULT_IMAGE_FPS = 24


def video_paths(clip: clips.Clip, codec: str) -> Dict[str, Path]:
    ext = frame_io.VIDEO_CODECS[codec].extension
    return {"comp": clip.output_dir / f"{clip.name}.comp{ext}", "matte": clip.output_dir / f"{clip.name}.matte{ext}",
            "sidecar": clip.output_dir / f"{clip.name}.video.json"}


def source_metadata(clip: clips.Clip) -> Dict[str, Any]:
    """What the clip's plates are: a video's stream tags, or an image sequence's format and header."""
    first = clip.input.paths[0]
    if clip.input.kind == "video":
        return dict(frame_io.probe_video(first).as_dict(), kind="video")
    info = frame_io.read_info(first, clip.layer)
    fps = info.attribute("FramesPerSecond")
    return {"kind": "images", "path": str(first), "format": first.suffix.lower().lstrip("."),
            "width": info.geometry.display.width, "height": info.geometry.display.height,
            "frames": clip.input.count, "frame_rate": _rate(fps),
            "colorspace": info.colorspace or None, "pixel_aspect": info.geometry.pixel_aspect}


def _rate(value: Any) -> Any:
    """An OpenImageIO FramesPerSecond (a rational pair, or a number) as "N/D", ``None`` when absent."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[1]:
        return str(Fraction(int(value[0]), int(value[1])))
    return str(Fraction(float(value)).limit_denominator(100000))


def _frames(paths: List[Path], layer: Any) -> Iterator[np.ndarray]:
    for p in paths:
        display = frame_io.read_info(p, layer).geometry.display  # the format, wherever the pixels are stored
        yield frame_io.read_image(p, layer, window=display)


def _check_one_size(clip: clips.Clip, comp_files: List[Path]) -> None:
    """:class:`frame_io.FrameWriteError` naming the first frame whose size differs from the first frame's:
    a video holds one frame size, and a frame is never rescaled into it."""
    first = frame_io.image_size(comp_files[0])
    for p in comp_files[1:]:
        size = frame_io.image_size(p)
        if size is not None and first is not None and size != first:
            raise frame_io.FrameWriteError(
                f"{p} is {size[0]}x{size[1]} but the clip's first frame {comp_files[0].name} is "
                f"{first[0]}x{first[1]}: a video holds one frame size, and no frame is rescaled into it. Key the "
                f"plates at one format for --video-out, or encode the frames yourself")


def write_clip_videos(clip: clips.Clip, out: outputs.OutputSettings, codec: str) -> List[Path]:
    """Encode ``clip``'s Comp/ and matte frames; returns the files written (none until every frame exists)."""
    refs = clip.frames
    files = [outputs.output_paths(clip.output_dir, r, out) for r in refs]
    missing = [r for r, paths in zip(refs, files) if not all(p.is_file() for p in paths.values())]
    if missing:
        log.info("clip %s: --video-out waits for %d frame(s) not written yet (first: %s); the run that writes "
                 "the last of them encodes the videos", clip.name, len(missing), missing[0].label)
        return []
    paths = video_paths(clip, codec)
    if not out.overwrite and all(p.is_file() for p in paths.values()):
        log.info("clip %s: videos already written (use --overwrite to encode them again)", clip.name)
        return []
    _check_one_size(clip, [o["Comp"] for o in files])
    source = source_metadata(clip)
    fps = Fraction(source["frame_rate"]) if source.get("frame_rate") else Fraction(DEFAULT_IMAGE_FPS)
    if not source.get("frame_rate"):
        log.info("clip %s: the plates give no frame rate; the videos run at %d fps", clip.name, DEFAULT_IMAGE_FPS)
    comp_files = [o["Comp"] for o in files]
    if out.layered:
        matte_files, matte_layer = [o[outputs.LAYERED_DIR] for o in files], "matte"
    else:
        matte_files, matte_layer = [o["Matte"] for o in files], None
    frame_io.write_video(paths["comp"], _frames(comp_files, None), fps, codec, transfer="iec61966-2-1")
    frame_io.write_video(paths["matte"], _frames(matte_files, matte_layer), fps, codec, transfer="linear")
    spec = frame_io.VIDEO_CODECS[codec]
    encoded = {"codec": spec.encoder, "pix_fmt": spec.pix_fmt, "frame_rate": str(fps), "frames": len(refs),
               "colorspace": "bt709", "color_range": "tv", "primaries": "bt709"}
    sidecar = {"source": source,
               "comp": dict(encoded, path=paths["comp"].name, transfer="iec61966-2-1"),
               "matte": dict(encoded, path=paths["matte"].name, transfer="linear")}
    atomic.write_bytes(paths["sidecar"], (json.dumps(sidecar, indent=2) + "\n").encode("utf-8"))
    return [paths["comp"], paths["matte"], paths["sidecar"]]
