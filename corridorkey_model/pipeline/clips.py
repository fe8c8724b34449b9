"""Clips on disk: finding them, listing their frames and checking that plates and hints pair up.

    scan(path)          -> [ClipSource]  a folder of clips, one clip folder, or a video file
    load_clip(source)   -> Clip          frames listed, hint present, counts match, hints fit their plates

Clip layout (as upstream CorridorKey)::

    Shot_010/
        Input/      plate frames (PNG/TIFF/JPEG/EXR) or one video file
    AlphaHint/  one rough matte per plate frame, same count and order (or one video);
                not needed with --hint auto (the hint is made from each plate)
    Output/     written by the pipeline (see outputs.py)
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.frame_io import FrameReadError

log = logging.getLogger(__name__)

INPUT_DIR = "Input"
HINT_DIR = "AlphaHint"
OUTPUT_DIR = "Output"


class ClipError(Exception):
    """A clip cannot be keyed as laid out on disk; the message says what to fix."""



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


def scan(path: Path, hint: Optional[Path] = None, output: Optional[Path] = None,
         garbage_matte: bool = False) -> List[ClipSource]:
    """Find the clips at ``path``: a video file, a clip folder (with ``Input/``) or a folder of clip folders.

    ``hint`` gives a single clip its hint source (``garbage_matte``: it is ``--garbage-matte``, not
    ``--hint``, which the error for a folder of several clips names); ``output`` replaces the
    default ``Output/`` folder (for a folder of clips, each clip goes to ``output/<clip>``).
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
        option = "--garbage-matte" if garbage_matte else "--hint"
        raise ClipError(f"{option} applies to a single clip or video, but {path} holds {len(clips)} clips "
                        f"({', '.join(c.name for c in clips[:3])}{', ...' if len(clips) > 3 else ''}): key each "
                        f"clip folder on its own")
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
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    broken = [p for p in entries if p.is_symlink() and not p.exists()]
    if broken:
        raise ClipError(f"{what} folder {path} holds {len(broken)} broken symbolic link(s): "
                        f"{', '.join(f'{p.name} -> {os.readlink(p)}' for p in broken[:5])}"
                        f"{' ...' if len(broken) > 5 else ''}; every frame must be readable. Fix the link(s) or "
                        f"remove them")
    files = [p for p in entries if p.is_file()]
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


def load_clip(source: ClipSource, layer: Optional[str] = None, auto_hint: bool = False,
              garbage_matte: bool = False) -> Clip:
    """List and check a clip: a hint source exists, frame counts match, every hint can be fitted to its plate's
    format (the same size, or the same aspect: fitted by nearest-neighbour sampling, logged once per clip).

    ``layer`` (``--layer``) picks the plates' EXR part or layer; it is checked on the first plate here.
    ``auto_hint``: the hint is made from each plate (``--hint auto``); no hint files are
    looked at, an ``AlphaHint/`` folder included. ``garbage_matte``: the hint source is
    ``--garbage-matte`` (``--hint auto``, knob ``auto_hint`` 2), read like a hint; one still image
    is also taken, for every frame.
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
    hint = _still_for_every_frame(source.hint_path, inp.count) if garbage_matte else None
    hint = hint or list_media(source.hint_path, "garbage matte" if garbage_matte else "hint")
    if inp.count != hint.count:
        raise ClipError(
            f"clip {source.name}: {inp.count} input frame(s) in {source.input_path} but {hint.count} hint "
            f"frame(s) in {source.hint_path}; there must be one hint per frame"
        )
    try:
        plate0, hint0 = _format_of(inp, layer), _format_of(hint)
    except FrameReadError as exc:
        raise ClipError(f"clip {source.name}: {exc}") from exc
    refs = _frame_refs(inp, hint)
    fitted = _check_every_hint_size(source.name, refs, (plate0.width, plate0.height), (hint0.width, hint0.height))
    if fitted:
        log.info("clip %s: %d hint(s) of another size than their plate's format (e.g. %s) are fitted to it by "
                 "nearest-neighbour sampling, as the Nuke node's Reformat (filter impulse) does", source.name,
                 len(fitted), fitted[0])
    return Clip(source.name, inp, hint, source.output_dir, refs, layer)


def _still_for_every_frame(path: Path, count: int) -> Optional[Media]:
    """A single image file as the hint source of each of ``count`` frames (a still garbage matte); else None."""
    if path.is_file() and frame_io.is_image(path):
        return Media("images", (path,) * count, count)
    return None


def _check_every_hint_size(clip: str, refs: Sequence[FrameRef], plate0: Tuple[int, int],
                           hint0: Tuple[int, int]) -> List[str]:
    """Every frame's hint can be fitted to its plate's format (width, height), read from the image headers
    (:func:`frame_io.image_size`: the display window): the same size, or the same aspect
    (:func:`frame_io.same_aspect`). Returns the frames whose hint is fitted ("plate WxH, hint wxh").

    A video's frames all have the size of its first frame. A file whose header cannot be
    read here is left to its frame's read, which stops the run there.
    """
    bad, fitted = [], []
    for r in refs:
        plate = plate0 if r.plate_is_video or r.position == 0 else frame_io.image_size(r.plate)
        hint = hint0 if r.hint_is_video or r.position == 0 else frame_io.image_size(r.hint)
        if plate is None or hint is None or plate == hint:
            continue
        if frame_io.same_aspect(hint, plate):
            fitted.append(f"{r.label} is {plate[0]}x{plate[1]}, its hint {r.hint.name} {hint[0]}x{hint[1]}")
        else:
            bad.append(f"{r.label} is {plate[0]}x{plate[1]} but its hint {r.hint.name} is {hint[0]}x{hint[1]}")
        if r.plate_is_video and r.hint_is_video:
            break  # every frame of the two videos has these sizes
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ClipError(f"clip {clip}: {len(bad)} hint(s) have another aspect ratio than their plate's format: "
                        f"{'; '.join(bad[:3])}{more}. A hint of another size is fitted to the plate's format "
                        f"only when the aspect ratios agree (within {frame_io.HINT_FIT_TOLERANCE_PX:g} pixel); "
                        f"make the hints at the plate's format or a scale of it")
    return fitted


def load_clips(sources: Sequence[ClipSource], layer: Optional[str] = None, auto_hint: bool = False,
               garbage_matte: bool = False) -> List[Clip]:
    """:func:`load_clip` for each source; every problem is reported together in one :class:`ClipError`."""
    clips, problems = [], []
    for s in sources:
        try:
            clips.append(load_clip(s, layer, auto_hint, garbage_matte))
        except ClipError as exc:
            problems.append(str(exc))
    if problems:
        head = f"{len(problems)} of {len(sources)} clip(s) cannot be keyed:\n" if len(sources) > 1 else ""
        raise ClipError(head + "\n".join(f"  - {p}" if head else p for p in problems))
    return clips


