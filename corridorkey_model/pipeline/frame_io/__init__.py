"""The one place that reads and writes images and video.

* :mod:`.images`: frames through OpenImageIO (EXR scanline/tiled/multi-part/layered, every
  OpenEXR compression, DPX, TIFF, PNG, JPEG), with geometry, layers and metadata;
* :mod:`.video`: video through PyAV (frame-accurate decoding, 8/10/12-bit, the stream's
  matrix and range; the ``--video-out`` encodes);
* :mod:`.common`: the errors and the atomic-write helpers (:mod:`corridorkey_model.atomic`):
  data goes to a hidden temporary file beside the target, then ``os.replace`` puts it in
  place, so a killed run never leaves a half-written file under a final name.

Everything is re-exported here: callers write ``frame_io.read_image``, ``frame_io.iter_video``.
"""

from corridorkey_model.pipeline.frame_io.common import (
    FrameReadError,
    FrameWriteError,
    check_can_create,
    check_writable,
    commit,
    commit_or_discard,
    discard,
    temp_path_for,
)
from corridorkey_model.pipeline.frame_io.images import (
    CARRIED_ATTRIBUTES,
    DEFAULT_EXR_COMPRESSION,
    EXR_COMPRESSION_ALIASES,
    EXR_COMPRESSIONS,
    EXR_TYPES,
    HINT_FIT_TOLERANCE_PX,
    IMAGE_EXTENSIONS,
    LOSSLESS_EXR_COMPRESSIONS,
    MATTE_FALLBACK_COMPRESSION,
    Box,
    ExrOptions,
    Geometry,
    ImageInfo,
    check_exr_support,
    choose_channels,
    fit_to_format,
    hint_channel,
    hint_size_problem,
    image_size,
    is_exr,
    is_image,
    keeps_channel_exact,
    matte_exr_options,
    nearest_source_indices,
    plate_rgb,
    read_image,
    read_info,
    read_with_info,
    resize_nearest,
    same_aspect,
    to_uint8,
    write_temp,
)
from corridorkey_model.pipeline.frame_io.video import (
    VIDEO_CODECS,
    VIDEO_EXTENSIONS,
    VideoCodec,
    VideoInfo,
    count_video_frames,
    is_video,
    iter_video,
    probe_video,
    write_video,
)


def write_image(path, img, exr=ExrOptions(), *, eight_bit=False, info=None, channel_names=None, colorspace=""):
    """Atomic write of one image (temporary file + ``os.replace``); see :func:`.images.write_temp`."""
    tmp = write_temp(path, img, exr, eight_bit=eight_bit, info=info, channel_names=channel_names,
                     colorspace=colorspace)
    commit_or_discard(tmp, path)


__all__ = [
    "FrameReadError", "FrameWriteError", "check_can_create", "check_writable", "commit", "commit_or_discard",
    "discard", "temp_path_for",
    "CARRIED_ATTRIBUTES", "DEFAULT_EXR_COMPRESSION", "EXR_COMPRESSION_ALIASES", "EXR_COMPRESSIONS", "EXR_TYPES",
    "IMAGE_EXTENSIONS",
    "HINT_FIT_TOLERANCE_PX", "fit_to_format", "hint_size_problem", "nearest_source_indices", "resize_nearest",
    "same_aspect", "MATTE_FALLBACK_COMPRESSION", "keeps_channel_exact", "matte_exr_options",
    "LOSSLESS_EXR_COMPRESSIONS", "Box", "ExrOptions", "Geometry", "ImageInfo", "check_exr_support",
    "choose_channels", "hint_channel", "image_size", "is_exr", "is_image", "plate_rgb", "read_image", "read_info",
    "read_with_info", "to_uint8", "write_temp", "write_image",
    "VIDEO_CODECS", "VIDEO_EXTENSIONS", "VideoCodec", "VideoInfo", "count_video_frames", "is_video", "iter_video",
    "probe_video", "write_video",
]
