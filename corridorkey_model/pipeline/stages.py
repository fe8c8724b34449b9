"""The reference pipeline: key whole clips with the same math as the exported ``.pt``.

The flow, one plain function per stage, each handing the next a frozen dataclass::

    scan(path)                        -> [ClipSource]  a folder of clips, one clip folder, or a video file
    load_clip(source)                 -> Clip          frames listed, hint present, counts and sizes match
    select_frames(clip, range, out)   -> Selection     the --frames chunk, minus frames already written
    iter_tasks(clip, refs)            -> FrameTask...  (video frames are decoded here, in order)
    read_frame(task)                  -> LoadedFrame   plate RGB + hint as one H x W x 4 float32 array
    preprocess_frame(loaded, s)       -> Prepared      frame.preprocess: resize, gamma, automatic hint, normalise
    infer(model, device, prepared, s) -> Inferred      the network + frame.combine (refiner strength)
    postprocess_frame(inferred, s)    -> Keyed         frame.postprocess (resize back, despill), then
                                                       despeckle, premultiplied linear RGBA, checker comp
    write_frame(keyed, out)           -> Written       temporary files; commit_written() renames them

:func:`key_clip` runs read/preprocess -> infer -> postprocess/write on
:func:`corridorkey_model.pipeline.runner.run_ordered`, which commits frames in order.
The frame math is :mod:`corridorkey_model.keying.frame` and :mod:`corridorkey_model.keying.colour`;
nothing here re-implements it.

Clip layout (as upstream CorridorKey)::

    Shot_010/
        Input/      plate frames (PNG/TIFF/JPEG/EXR) or one video file
    AlphaHint/  one rough matte per plate frame, same count and order (or one video);
                not needed with --hint auto (the hint is made from each plate)
    Output/     written here: Matte/ FG/ Processed/ Comp/ (--layered-exr: Layered/ Comp/), and Hint/
                with --write-hints
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from corridorkey_model import atomic
from corridorkey_model.keying import frame
from corridorkey_model.keying.colour import (
    composite_over_checkerboard_np,
    premultiply_np,
    resize_bilinear_aa,
    srgb_to_linear_np,
)
from corridorkey_model.keying.knobs import KNOBS_BY_NAME
from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.colour_management import OcioConversion
from corridorkey_model.pipeline.frame_io import ExrOptions, FrameReadError, ImageInfo
from corridorkey_model.pipeline.lock import OutputClaim
from corridorkey_model.pipeline.runner import Stage, run_ordered

log = logging.getLogger(__name__)

INPUT_DIR = "Input"
HINT_DIR = "AlphaHint"
OUTPUT_DIR = "Output"
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
#: Island size ``--despeckle`` uses unless ``--despeckle-size`` says otherwise (upstream's default);
#: the knob itself (``knobs.DESPECKLE_SIZE``) defaults to 0, off.
RUN_DESPECKLE_SIZE = 400


class ClipError(Exception):
    """A clip cannot be keyed as laid out on disk; the message says what to fix."""


# --------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class ClipSource:
    """Where one clip's plates, hints and outputs are (nothing read yet)."""

    name: str
    input_path: Path  # Input/ folder or a video file
    hint_path: Optional[Path]  # AlphaHint/ folder or video file; None when there is none
    output_dir: Path


@dataclass(frozen=True)
class Media:
    """A listed image sequence (``paths`` in frame order) or one video file (``paths[0]``)."""

    kind: str  # "images" or "video"
    paths: Tuple[Path, ...]
    count: int

    @property
    def is_exr(self) -> bool:
        return self.kind == "images" and frame_io.is_exr(self.paths[0])


@dataclass(frozen=True)
class FrameRef:
    """One frame of a clip: its position, number, output name and where its plate and hint live."""

    position: int  # 0-based, in clip order
    number: int  # frame number (from the file name; 1-based position for videos)
    name: str  # output file stem, follows the input name
    plate: Path
    hint: Optional[Path]  # None: the hint is made from the plate (--hint auto)
    plate_is_video: bool = False
    hint_is_video: bool = False

    @property
    def label(self) -> str:
        """The frame's path for messages (video frames say which)."""
        return f"{self.plate} (frame {self.position + 1})" if self.plate_is_video else str(self.plate)


@dataclass(frozen=True)
class Clip:
    """A validated clip: plates and hints pair up one to one."""

    name: str
    input: Media
    hint: Optional[Media]  # None: no hint files are read, the hint is made from each plate (--hint auto)
    output_dir: Path
    frames: Tuple[FrameRef, ...]
    layer: Optional[str] = None  # --layer: the EXR part or layer of the plates to key

    @property
    def is_linear(self) -> bool:
        """EXR plates are scene-linear (what ``--gamma auto`` picks)."""
        return self.input.is_exr


@dataclass(frozen=True)
class KeySettings:
    """The keyer's settings for one clip; knob ranges come from :mod:`corridorkey_model.keying.knobs`."""

    gamma_input: int = KNOBS_BY_NAME["gamma_input"].typed_default
    despill_strength: float = KNOBS_BY_NAME["despill_strength"].typed_default
    refiner_strength: float = KNOBS_BY_NAME["refiner_strength"].typed_default
    despeckle: bool = False
    despeckle_size: int = RUN_DESPECKLE_SIZE
    screen_channel: int = 1  # the clip's screen: 1 green, 2 blue (chooses the model and the despill channel)
    colour: Optional[OcioConversion] = None  # --ocio-config: working <-> network by OCIO; None: project sRGB maths
    auto_hint: int = KNOBS_BY_NAME["auto_hint"].typed_default  # 1: the hint is made from the plate

    def __post_init__(self) -> None:
        for name in ("gamma_input", "despill_strength", "refiner_strength", "auto_hint"):
            KNOBS_BY_NAME[name].check(getattr(self, name))
        if self.despeckle_size < 0:
            raise ValueError(f"despeckle_size must be >= 0, got {self.despeckle_size}")
        if self.screen_channel not in (1, 2):
            raise ValueError(f"screen_channel must be 1 (green) or 2 (blue), got {self.screen_channel}")


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


@dataclass(frozen=True)
class FrameTask:
    """A frame to key; video frames arrive already decoded (H x W x 3 plate, H x W x C hint)."""

    ref: FrameRef
    plate: Optional[np.ndarray] = None
    hint: Optional[np.ndarray] = None
    layer: Optional[str] = None  # the clip's --layer


@dataclass(frozen=True)
class LoadedFrame:
    ref: FrameRef
    plate: np.ndarray  # H x W x 4 float32: plate RGB + hint, over the plate's frame box
    info: Optional[ImageInfo] = None  # the plate's geometry and metadata (None: a video frame)


@dataclass(frozen=True)
class Prepared:
    ref: FrameRef
    x: Tensor  # [1, 4, S, S] network input
    height: int
    width: int
    info: Optional[ImageInfo] = None


@dataclass(frozen=True)
class Inferred:
    ref: FrameRef
    alpha: Tensor  # [1, 1, S, S], on the CPU
    fg: Tensor  # [1, 3, S, S], on the CPU
    height: int
    width: int
    info: Optional[ImageInfo] = None
    hint: Optional[Tensor] = None  # [1, 1, S, S] the network's hint channel, on the CPU


@dataclass(frozen=True)
class Keyed:
    ref: FrameRef
    fg: np.ndarray  # H x W x 3 straight, despilled: sRGB (with an OCIO config: the working space)
    alpha: np.ndarray  # H x W linear alpha (despeckled if asked)
    processed: np.ndarray  # H x W x 4 premultiplied RGBA: linear (with an OCIO config: the working space)
    comp: np.ndarray  # H x W x 3 sRGB preview
    info: Optional[ImageInfo] = None
    fg_space: str = SRGB_LABEL  # colour space names written into the files (oiio:ColorSpace)
    processed_space: str = LINEAR_LABEL
    hint: Optional[np.ndarray] = None  # H x W: the hint it was keyed with (only when written)


@dataclass(frozen=True)
class Written:
    """A frame's finished temporary files and their final names."""

    ref: FrameRef
    files: Tuple[Tuple[Path, Path], ...]  # (temporary, final)


# --------------------------------------------------------------------------- scanning and validation


def _child(folder: Path, name: str) -> Optional[Path]:
    """``folder/name``, matching the name case-insensitively."""
    exact = folder / name
    if exact.is_dir():
        return exact
    for p in folder.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def scan(path: Path, hint: Optional[Path] = None, output: Optional[Path] = None) -> List[ClipSource]:
    """Find the clips at ``path``: a video file, a clip folder (with ``Input/``) or a folder of clip folders.

    ``hint`` gives a single clip its hint source; ``output`` replaces the default
    ``Output/`` folder (for a folder of clips, each clip goes to ``output/<clip>``).
    """
    path = Path(path)
    if not path.exists():
        raise ClipError(f"{path} does not exist")
    if path.is_file():
        if not frame_io.is_video(path):
            raise ClipError(
                f"{path} is a file but not a video ({', '.join(frame_io.VIDEO_EXTENSIONS)}); to key an image "
                f"sequence, put it in CLIP/{INPUT_DIR}/ with its hints in CLIP/{HINT_DIR}/ and pass CLIP"
            )
        out = output or path.parent / f"{path.stem}_{OUTPUT_DIR}"
        return [ClipSource(path.stem, path, hint, out)]
    if _child(path, INPUT_DIR) is not None:
        hint_path = hint or _child(path, HINT_DIR)
        return [ClipSource(path.name, _child(path, INPUT_DIR), hint_path, output or path / OUTPUT_DIR)]
    clips = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        inp = _child(sub, INPUT_DIR)
        if inp is None:
            log.info("skipping %s: no %s/ folder", sub, INPUT_DIR)
            continue
        out = (output / sub.name) if output else sub / OUTPUT_DIR
        clips.append(ClipSource(sub.name, inp, _child(sub, HINT_DIR), out))
    if not clips:
        raise ClipError(
            f"no clips found in {path}: expected {path}/{INPUT_DIR}/ (one clip), sub-folders each holding "
            f"{INPUT_DIR}/ and {HINT_DIR}/ (a folder of clips), or a video file"
        )
    if hint is not None:
        raise ClipError(f"--hint applies to a single clip or video, but {path} holds {len(clips)} clips")
    return clips


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def list_media(path: Path, what: str) -> Media:
    """The frames of an ``Input/`` or ``AlphaHint/`` folder (or a video file), in order."""
    if path.is_file():
        if frame_io.is_video(path):
            return Media("video", (path,), frame_io.count_video_frames(path))
        if frame_io.is_image(path):
            raise ClipError(f"{what} {path} is a single image; give the folder that holds the sequence")
        raise ClipError(f"{what} {path} is neither a video nor a folder of frames")
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    images = sorted((p for p in files if frame_io.is_image(p)), key=_natural_key)
    videos = [p for p in files if frame_io.is_video(p)]
    if images and videos:
        raise ClipError(f"{what} folder {path} holds both image frames and video files; keep one kind")
    if len(videos) > 1:
        raise ClipError(f"{what} folder {path} holds {len(videos)} videos ({', '.join(v.name for v in videos)}); "
                        f"keep one")
    if videos:
        return Media("video", (videos[0],), frame_io.count_video_frames(videos[0]))
    if not images:
        raise ClipError(f"{what} folder {path} holds no frames ({', '.join(frame_io.IMAGE_EXTENSIONS)}) "
                        f"and no video")
    kinds = {p.suffix.lower().replace("jpeg", "jpg").replace("tiff", "tif") for p in images}
    if len(kinds) > 1:
        raise ClipError(f"{what} folder {path} mixes file types ({', '.join(sorted(kinds))}); keep one")
    _refuse_duplicates(images, lambda p: p.stem, f"{what} folder {path}", "the same frame name",
                       "their outputs would overwrite each other")
    return Media("images", tuple(images), len(images))


def _refuse_duplicates(paths: Sequence[Path], key: Callable[[Path], object], where: str, what: str,
                       why: str) -> None:
    """:class:`ClipError` naming the first two of ``paths`` that share ``key`` (e.g. shot.1001.jpg and .jpeg)."""
    seen: Dict[object, Path] = {}
    for p in paths:
        k = key(p)
        if k in seen:
            raise ClipError(f"{where} holds {seen[k].name} and {p.name}, {what} ({k}): {why}. Remove or rename one")
        seen[k] = p


def _frame_numbers(paths: Sequence[Path]) -> List[int]:
    """Trailing numbers of the file stems (``shot.1001.png`` -> 1001); 1-based positions when a stem has none.

    Two files with one number are refused (:class:`ClipError` naming both): ``--frames``
    could not tell them apart.
    """
    nums = []
    for p in paths:
        m = re.search(r"(\d+)$", p.stem)
        if m is None:
            return list(range(1, len(paths) + 1))
        nums.append(int(m.group(1)))
    if paths:
        _refuse_duplicates(paths, lambda p: int(re.search(r"(\d+)$", p.stem).group(1)),
                           f"input folder {paths[0].parent}", "the same frame number",
                           "--frames and the farm's chunks could not tell them apart")
    return nums


def _frame_refs(inp: Media, hint: Optional[Media]) -> Tuple[FrameRef, ...]:
    plate_video, hint_video = inp.kind == "video", hint is not None and hint.kind == "video"
    if plate_video:
        stem = inp.paths[0].stem
        numbers = list(range(1, inp.count + 1))
        names = [f"{stem}.{n:04d}" for n in numbers]
        plates = [inp.paths[0]] * inp.count
    else:
        numbers = _frame_numbers(inp.paths)
        names = [p.stem for p in inp.paths]
        plates = list(inp.paths)
    if hint is None:  # --hint auto: no hint files
        hints: List[Optional[Path]] = [None] * inp.count
    else:
        hints = [hint.paths[0]] * hint.count if hint_video else list(hint.paths)
    return tuple(FrameRef(i, numbers[i], names[i], plates[i], hints[i], plate_video, hint_video)
                 for i in range(inp.count))


def _format_of(media: Media, layer: Optional[str] = None) -> frame_io.Box:
    """The display window (format) of a clip's first frame: a video's frame size."""
    if media.kind == "video":
        info = frame_io.probe_video(media.paths[0])
        return frame_io.Box(0, 0, info.width, info.height)
    return frame_io.read_info(media.paths[0], layer).geometry.display


def load_clip(source: ClipSource, layer: Optional[str] = None, auto_hint: bool = False) -> Clip:
    """List and check a clip: a hint source exists, frame counts match, first plate and hint have one format.

    ``layer`` (``--layer``) picks the plates' EXR part or layer; it is checked on the first plate here.
    ``auto_hint``: the hint is made from each plate (``--hint auto``); no hint files are
    looked at, an ``AlphaHint/`` folder included.
    """
    inp = list_media(source.input_path, "input")
    if auto_hint:
        try:
            _format_of(inp, layer)  # the first plate's header, and its --layer
        except FrameReadError as exc:
            raise ClipError(f"clip {source.name}: {exc}") from exc
        return Clip(source.name, inp, None, source.output_dir, _frame_refs(inp, None), layer)
    if source.hint_path is None:
        where = (f"{source.input_path.parent / HINT_DIR}/" if source.input_path.is_dir()
                 else "a hint video or folder given with --hint")
        raise ClipError(
            f"clip {source.name} has no alpha hint: the network needs a rough matte per frame. Put one hint "
            f"per input frame (same count and order) in {where}, or pass --hint auto to make a rough hint "
            f"from each plate"
        )
    hint = list_media(source.hint_path, "hint")
    if inp.count != hint.count:
        raise ClipError(
            f"clip {source.name}: {inp.count} input frame(s) in {source.input_path} but {hint.count} hint "
            f"frame(s) in {source.hint_path}; there must be one hint per frame"
        )
    try:
        plate0, hint0 = _format_of(inp, layer), _format_of(hint)
    except FrameReadError as exc:
        raise ClipError(f"clip {source.name}: {exc}") from exc
    if (plate0.width, plate0.height) != (hint0.width, hint0.height):
        raise ClipError(
            f"clip {source.name}: plates are {plate0.width}x{plate0.height} but hints are "
            f"{hint0.width}x{hint0.height} ({inp.paths[0].name}, {hint.paths[0].name}); resize the hints "
            f"to the plate size"
        )
    refs = _frame_refs(inp, hint)
    _check_every_hint_size(source.name, refs, (plate0.width, plate0.height), (hint0.width, hint0.height))
    return Clip(source.name, inp, hint, source.output_dir, refs, layer)


def _check_every_hint_size(clip: str, refs: Sequence[FrameRef], plate0: Tuple[int, int],
                           hint0: Tuple[int, int]) -> None:
    """Every frame's hint has its plate's format (width, height), read from the image headers
    (:func:`frame_io.image_size`: the display window).

    A video's frames all have the size of its first frame (checked by the caller). A file
    whose header cannot be read here is left to its frame's read, which stops the run there.
    """
    if all(r.plate_is_video and r.hint_is_video for r in refs):
        return
    bad = []
    for r in refs[1:]:
        plate = plate0 if r.plate_is_video else frame_io.image_size(r.plate)
        hint = hint0 if r.hint_is_video else frame_io.image_size(r.hint)
        if plate is not None and hint is not None and plate != hint:
            bad.append(f"{r.label} is {plate[0]}x{plate[1]} but its hint {r.hint.name} is {hint[0]}x{hint[1]}")
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ClipError(f"clip {clip}: {len(bad)} hint(s) differ in size from their plates: {'; '.join(bad[:3])}"
                        f"{more}; resize the hints to the plate size")


def load_clips(sources: Sequence[ClipSource], layer: Optional[str] = None, auto_hint: bool = False) -> List[Clip]:
    """:func:`load_clip` for each source; every problem is reported together in one :class:`ClipError`."""
    clips, problems = [], []
    for s in sources:
        try:
            clips.append(load_clip(s, layer, auto_hint))
        except ClipError as exc:
            problems.append(str(exc))
    if problems:
        head = f"{len(problems)} of {len(sources)} clip(s) cannot be keyed:\n" if len(sources) > 1 else ""
        raise ClipError(head + "\n".join(f"  - {p}" if head else p for p in problems))
    return clips


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


# --------------------------------------------------------------------------- per-frame stages


def iter_tasks(clip: Clip, refs: Sequence[FrameRef]) -> Iterator[FrameTask]:
    """Tasks for ``refs`` in order; frames from video files are decoded here (videos decode in order)."""
    positions = [r.position for r in refs]
    plates = frame_io.iter_video(clip.input.paths[0], positions) if clip.input.kind == "video" else None
    hints = (frame_io.iter_video(clip.hint.paths[0], positions)
             if clip.hint is not None and clip.hint.kind == "video" else None)
    for ref in refs:
        plate = next(plates)[1] if plates is not None else None
        hint = next(hints)[1] if hints is not None else None
        yield FrameTask(ref, plate, hint, clip.layer)


def read_frame(task: FrameTask) -> LoadedFrame:
    """Plate RGB and hint (read from disk unless decoded already) as one ``H x W x 4`` float32 array.

    Without a hint source (``--hint auto``) the hint channel is 0; the preprocess makes the hint.
    """
    ref = task.ref
    info = None
    if task.plate is not None:
        plate = task.plate
    else:
        plate, info = frame_io.read_with_info(ref.plate, task.layer)
    if task.hint is None and ref.hint is None:  # --hint auto: the channel stays 0, the preprocess makes the hint
        rgba = np.concatenate([frame_io.plate_rgb(plate), np.zeros(plate.shape[:2] + (1,), np.float32)], axis=2)
        return LoadedFrame(ref, np.ascontiguousarray(rgba, dtype=np.float32), info)
    if task.hint is not None:
        hint = task.hint
    else:  # an image hint is read into the plate's frame box, wherever its own pixels are stored
        hint = frame_io.read_image(ref.hint, window=info.geometry.frame_box if info is not None else None)
    if plate.shape[:2] != hint.shape[:2]:
        raise FrameReadError(f"plate {ref.label} is {plate.shape[1]}x{plate.shape[0]} but its hint {ref.hint} "
                             f"is {hint.shape[1]}x{hint.shape[0]}")
    rgba = np.concatenate([frame_io.plate_rgb(plate), frame_io.hint_channel(hint)[..., None]], axis=2)
    return LoadedFrame(ref, np.ascontiguousarray(rgba, dtype=np.float32), info)


def plate_to_tensor(plate: np.ndarray) -> Tensor:
    """``H x W x 4`` -> ``[1, 4, H, W]`` (the Inference node's layout)."""
    return torch.from_numpy(np.ascontiguousarray(plate)).permute(2, 0, 1)[None].contiguous()


def count_non_finite_pixels(plate: np.ndarray) -> int:
    """Pixels of an ``H x W x C`` array with a NaN or infinite value in any channel."""
    with np.errstate(invalid="ignore", over="ignore"):
        if np.isfinite(plate.sum()):  # one cheap pass for the usual clean frame (NaN/inf make the sum non-finite)
            return 0
    return int(np.count_nonzero(~np.isfinite(plate).all(axis=2)))


def preprocess_frame(loaded: LoadedFrame, img_size: int, s: KeySettings) -> Prepared:
    """:func:`corridorkey_model.keying.frame.preprocess` on the CPU (NaN / inf count as 0 there; warned about here)."""
    h, w = loaded.plate.shape[:2]
    bad = count_non_finite_pixels(loaded.plate)
    if bad:
        log.warning("%s: %d of %d pixel(s) hold NaN or infinite values in the plate or hint; they are keyed as 0",
                    loaded.ref.label, bad, h * w)
    plate = loaded.plate
    if s.colour is not None and s.gamma_input == frame.GAMMA_SRGB:  # the gizmo's ToNetwork (bypassed for Linear)
        plate = np.concatenate([s.colour.to_network(plate[..., 0:3]), plate[..., 3:4]], axis=2)
    with torch.no_grad():
        x = frame.preprocess(plate_to_tensor(plate), img_size, s.gamma_input, s.auto_hint, s.screen_channel)
    return Prepared(loaded.ref, x, h, w, loaded.info)


def infer(model: torch.nn.Module, device: torch.device, prepared: Prepared, s: KeySettings) -> Inferred:
    """The network on ``device``, then :func:`corridorkey_model.keying.frame.combine`; results back on the CPU."""
    with torch.no_grad():
        alpha_logits, fg_logits, delta_logits = model(prepared.x.to(device))
        alpha, fg = frame.combine(alpha_logits, fg_logits, delta_logits, s.refiner_strength)
    return Inferred(prepared.ref, alpha.float().cpu(), fg.float().cpu(), prepared.height, prepared.width,
                    prepared.info, prepared.x[:, 3:4].clone())  # a copy: the [1, 4, S, S] input need not stay alive


def premultiplied_linear(fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``srgb_to_linear(fg) * alpha`` with alpha as the 4th channel: ``H x W x 4`` linear premultiplied RGBA."""
    rgb = premultiply_np(srgb_to_linear_np(fg), alpha)
    return np.concatenate([rgb, alpha[..., None]], axis=2).astype(np.float32)


def hint_at_plate_size(inferred: Inferred) -> np.ndarray:
    """The network's hint channel resized back to the plate: ``H x W`` float32 (what ``--write-hints`` writes)."""
    with torch.no_grad():
        hint = resize_bilinear_aa(inferred.hint.float(), inferred.height, inferred.width)
    return np.ascontiguousarray(hint[0, 0].numpy())


def postprocess_frame(inferred: Inferred, s: KeySettings, with_hint: bool = False) -> Keyed:
    """:func:`corridorkey_model.keying.frame.postprocess`, optional despeckle, premultiplied linear RGBA, preview comp.

    ``with_hint``: also the hint the frame was keyed with, at plate size (:func:`hint_at_plate_size`).
    """
    with torch.no_grad():
        # The .pt's postprocess: the same despill and despeckle (knob despeckle_size) functions.
        out = frame.postprocess(inferred.alpha, inferred.fg, inferred.height, inferred.width, s.despill_strength,
                                s.despeckle_size if s.despeckle else 0, s.screen_channel)
    out = out[0].permute(1, 2, 0).contiguous().numpy()
    fg = np.ascontiguousarray(out[..., 0:3])
    alpha = np.ascontiguousarray(out[..., 3])
    comp = composite_over_checkerboard_np(fg, alpha)
    hint = hint_at_plate_size(inferred) if with_hint and inferred.hint is not None else None
    if s.colour is None:
        return Keyed(inferred.ref, fg, alpha, premultiplied_linear(fg, alpha), comp, inferred.info, hint=hint)
    # The gizmo's FromNetwork (the alpha is not converted), then its Premult, in the working space.
    fg = s.colour.to_working(fg)
    processed = np.concatenate([premultiply_np(fg, alpha), alpha[..., None]], axis=2).astype(np.float32)
    return Keyed(inferred.ref, fg, alpha, processed, comp, inferred.info, s.colour.working, s.colour.working, hint)


def write_frame(keyed: Keyed, output_dir: Path, out: OutputSettings) -> Written:
    """Write a frame's four outputs (five with ``--write-hints``) to temporary files (none left behind if one fails)."""
    paths = output_paths(output_dir, keyed.ref, out)
    data = {"Matte": keyed.alpha, "FG": keyed.fg, "Processed": keyed.processed, "Comp": keyed.comp,
            HINT_OUTPUT: keyed.hint}
    labels = {"Matte": "", "FG": keyed.fg_space, "Processed": keyed.processed_space, "Comp": SRGB_LABEL,
              LAYERED_DIR: keyed.processed_space, HINT_OUTPUT: ""}
    names: Dict[str, Optional[Tuple[str, ...]]] = {}
    if out.layered:
        data[LAYERED_DIR] = np.concatenate([keyed.processed, keyed.fg, keyed.alpha[..., None]], axis=2)
        names[LAYERED_DIR] = LAYERED_CHANNELS
    if HINT_OUTPUT in paths and keyed.hint is None:
        raise ValueError(f"{keyed.ref.label}: --write-hints asked for its hint, but the frame was keyed without it")
    files: List[Tuple[Path, Path]] = []
    try:
        for kind, final in paths.items():
            tmp = frame_io.write_temp(final, data[kind], out.exr, eight_bit=(kind == "Comp"), info=keyed.info,
                                      channel_names=names.get(kind), colorspace=labels[kind])
            files.append((tmp, final))
    except BaseException:
        for tmp, _final in files:
            frame_io.discard(tmp)
        raise
    return Written(keyed.ref, tuple(files))


def commit_written(written: Written) -> None:
    """Move a frame's temporary files onto their final names."""
    for tmp, final in written.files:
        frame_io.commit(tmp, final)


def discard_written(written: Written) -> None:
    for tmp, _final in written.files:
        frame_io.discard(tmp)


# --------------------------------------------------------------------------- running a clip


@dataclass(frozen=True)
class Worker:
    """A model on a device (one per ``--device`` entry)."""

    model: torch.nn.Module
    device: torch.device


def resolve_gamma(choice: str, clip: Clip, colour: Optional[OcioConversion] = None) -> int:
    """``auto`` -> linear for EXR plates, sRGB otherwise (with an OCIO config always sRGB: OCIO hands the
    network sRGB, the gizmo's default); ``srgb`` / ``linear`` as given."""
    choices = [c.lower() for c in KNOBS_BY_NAME["gamma_input"].choices]
    if choice == "auto":
        if colour is not None:
            return frame.GAMMA_SRGB
        return frame.GAMMA_LINEAR if clip.is_linear else frame.GAMMA_SRGB
    return choices.index(choice.lower())


def key_clip(clip: Clip, refs: Sequence[FrameRef], workers: Sequence[Worker], img_size: int, s: KeySettings,
             out: OutputSettings, io_threads: int = 2,
             on_frame: Callable[[Written], None] = lambda w: None) -> int:
    """Key ``refs`` of ``clip``: read/preprocess -> infer (one thread per worker) -> postprocess/write.

    Frames are committed in order; returns how many were written. Raises
    :class:`corridorkey_model.pipeline.runner.StageError` naming the frame on any failure;
    every frame before the failed one is committed first, so a rerun resumes there.
    """
    stages = [
        Stage.threads("reading", lambda t: preprocess_frame(read_frame(t), img_size, s), io_threads),
        Stage("inference", tuple((lambda p, w=w: infer(w.model, w.device, p, s)) for w in workers)),
        Stage.threads("writing", lambda i: write_frame(postprocess_frame(i, s, out.write_hints), clip.output_dir, out),
                      io_threads),
    ]
    count = 0
    try:
        for written in run_ordered(iter_tasks(clip, refs), stages, label=lambda t: t.ref.label,
                                   commit=commit_written, discard=discard_written):
            count += 1
            on_frame(written)
    except Exception:  # a StageError naming the frame
        log.info("clip %s: %d frame(s) before the failed one were written; fix it and run the same command "
                 "again to resume from there", clip.name, count)
        raise
    return count


def key_clip_sequential(clip: Clip, refs: Sequence[FrameRef], worker: Worker, img_size: int, s: KeySettings,
                        out: OutputSettings) -> int:
    """The same stages in a plain loop (the benchmark's baseline)."""
    count = 0
    for task in iter_tasks(clip, refs):
        written = write_frame(postprocess_frame(infer(worker.model, worker.device, preprocess_frame(
            read_frame(task), img_size, s), s), s, out.write_hints), clip.output_dir, out)
        commit_written(written)
        count += 1
    return count


#: ``--screen auto`` (upstream's rule): background pixels are those whose hint is below this.
SCREEN_BACKGROUND_HINT = 0.3
#: ... and must cover at least this fraction of the frame,
SCREEN_MIN_BACKGROUND = 0.01
#: ... and mean blue and mean green over them must differ by at least this, else green is assumed.
SCREEN_MIN_DIFFERENCE = 0.05


@dataclass(frozen=True)
class ScreenDecision:
    """``--screen auto``'s verdict for one clip, and why (logged)."""

    screen: str  # "green" or "blue"
    reason: str
    fallback: bool  # True: green assumed because the frame could not tell


def detect_screen(plate_rgb: np.ndarray, hint: np.ndarray) -> ScreenDecision:
    """Green or blue screen, from one frame (``H x W x 3`` plate, ``H x W`` hint in [0, 1]).

    Compares mean G and mean B over the background pixels (hint < 0.3). Falls back to
    green when the background covers under 1% of the frame or the two means differ by
    under 0.05.
    """
    background = np.asarray(hint) < SCREEN_BACKGROUND_HINT
    share = float(background.mean()) if background.size else 0.0
    if share < SCREEN_MIN_BACKGROUND:
        return ScreenDecision("green", f"background (hint < {SCREEN_BACKGROUND_HINT}) covers {share:.2%} of the "
                              f"frame, under {SCREEN_MIN_BACKGROUND:.0%}: assuming green", True)
    rgb = np.asarray(plate_rgb, dtype=np.float64)[background]
    finite = np.isfinite(rgb).all(axis=1)
    green, blue = (float(rgb[finite, 1].mean()), float(rgb[finite, 2].mean())) if finite.any() else (0.0, 0.0)
    means = f"mean G {green:.3f}, mean B {blue:.3f} over {share:.0%} of the frame"
    if abs(green - blue) < SCREEN_MIN_DIFFERENCE:
        return ScreenDecision("green", f"{means}: closer than {SCREEN_MIN_DIFFERENCE}, assuming green", True)
    return ScreenDecision("blue" if blue > green else "green", means, False)


def decide_screen(clip: Clip, screen: str) -> ScreenDecision:
    """``screen`` ("green", "blue" or "auto") for ``clip``; ``auto`` reads the clip's first frame and hint.

    Without a hint (``--hint auto``) the whole first frame counts as background: the screen
    covers most of a keyed frame, so its mean G and mean B still tell the screen.
    """
    if screen != "auto":
        return ScreenDecision(screen, "chosen with --screen", False)
    first = read_frame(next(iter_tasks(clip, clip.frames[:1])))  # the hint read into the plate's frame (0 without)
    decision = detect_screen(first.plate[..., 0:3], first.plate[..., 3])
    if clip.hint is None:
        return dataclasses.replace(decision, reason=decision.reason + " (no hint: the whole first frame)")
    return decision


def settings_for(clip: Clip, gamma: str, base: KeySettings) -> KeySettings:
    """``base`` with ``gamma_input`` resolved for ``clip``."""
    return dataclasses.replace(base, gamma_input=resolve_gamma(gamma, clip, base.colour))
