"""The reference pipeline: key whole clips with the same math as the exported ``.pt``.

The flow, one plain function per stage, each handing the next a frozen dataclass::

    scan(path)                        -> [ClipSource]  (clips.py) a folder of clips, one clip folder, or a video
    load_clip(source)                 -> Clip          (clips.py) frames listed, hint present, counts and sizes match
    select_frames(clip, range, out)   -> Selection     (outputs.py) the --frames chunk, minus frames already written
    iter_tasks(clip, refs)            -> FrameTask...  (video frames are decoded here, in order)
    read_frame(task)                  -> LoadedFrame   plate RGB + hint as one H x W x 4 float32 array
    preprocess_frame(loaded, s)       -> Prepared      frame.preprocess: resize, gamma, automatic hint, normalise
    infer(model, device, prepared, s) -> Inferred      the network + frame.combine (refiner strength)
    postprocess_frame(inferred, s)    -> Keyed         raw_output (frame.postprocess: resize back, despill,
                                                       despeckle: the .pt's output), then finish_frame
                                                       (premultiplied linear RGBA, checker comp)
    write_frame(keyed, out)           -> Written       temporary files; commit_written() renames them

:func:`key_clip` runs read/preprocess -> infer -> postprocess/write on
:func:`corridorkey_model.pipeline.runner.run_ordered`, which commits frames in order.
With ``--temporal`` (:mod:`corridorkey_model.keying.temporal`) :func:`key_clip_temporal`
smooths each frame's raw output with its neighbours' between ``raw_output`` and ``finish_frame``.
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

import contextlib
import dataclasses
import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from corridorkey_model.keying import frame
from corridorkey_model.keying import temporal as temporal_filter
from corridorkey_model.keying.colour import (
    composite_over_checkerboard_np,
    premultiply_np,
    resize_bilinear_aa,
    srgb_to_linear_np,
)
from corridorkey_model.keying.knobs import KNOBS_BY_NAME
from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.clips import Clip, FrameRef
from corridorkey_model.pipeline.colour_management import OcioConversion
from corridorkey_model.pipeline.frame_io import ImageInfo
from corridorkey_model.pipeline.outputs import (
    HINT_OUTPUT,
    LAYERED_CHANNELS,
    LAYERED_DIR,
    LINEAR_LABEL,
    SRGB_LABEL,
    OutputSettings,
    exr_options_for,
    output_paths,
)
from corridorkey_model.pipeline.runner import Stage, StageError, run_ordered

log = logging.getLogger(__name__)

#: Island size ``--despeckle`` uses unless ``--despeckle-size`` says otherwise (upstream's default);
#: the knob itself (``knobs.DESPECKLE_SIZE``) defaults to 0, off.
RUN_DESPECKLE_SIZE = 400


# --------------------------------------------------------------------------- contracts


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
    temporal: float = temporal_filter.STRENGTH_DEFAULT  # --temporal: 0 off, else keying/temporal.py's strength

    def __post_init__(self) -> None:
        for name in ("gamma_input", "despill_strength", "refiner_strength", "auto_hint"):
            KNOBS_BY_NAME[name].check(getattr(self, name))
        temporal_filter.check_strength(self.temporal)
        if self.despeckle_size < 0:
            raise ValueError(f"despeckle_size must be >= 0, got {self.despeckle_size}")
        if self.screen_channel not in (1, 2):
            raise ValueError(f"screen_channel must be 1 (green) or 2 (blue), got {self.screen_channel}")


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
    plate: np.ndarray  # H x W x 4 float32: plate RGB + hint, over the plate's format (display window)
    info: Optional[ImageInfo] = None  # the plate's geometry and metadata (None: a video frame)


@dataclass(frozen=True)
class Prepared:
    ref: FrameRef
    x: Tensor  # [1, 4, S, S] network input
    height: int
    width: int
    info: Optional[ImageInfo] = None
    net_plate: Optional[np.ndarray] = None  # --temporal only: H x W x 3, the plate as the Inference node gets it


@dataclass(frozen=True)
class Inferred:
    ref: FrameRef
    alpha: Tensor  # [1, 1, S, S], on the CPU
    fg: Tensor  # [1, 3, S, S], on the CPU
    height: int
    width: int
    info: Optional[ImageInfo] = None
    hint: Optional[Tensor] = None  # [1, 1, S, S] the network's hint channel, on the CPU
    net_plate: Optional[np.ndarray] = None  # --temporal only (see Prepared)


@dataclass(frozen=True)
class RawOutput:
    """What the ``.pt`` outputs for a frame (``--temporal`` smooths these before the rest of the postprocess)."""

    ref: FrameRef
    out: np.ndarray  # H x W x 4: straight sRGB fg (despilled), linear alpha (despeckled if asked)
    info: Optional[ImageInfo] = None
    hint: Optional[np.ndarray] = None  # H x W: the hint it was keyed with (only when written)
    net_plate: Optional[np.ndarray] = None  # H x W x 3 (--temporal only)


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
    else:  # an image hint over its own format (display window), wherever its pixels are stored
        hint = frame_io.read_image(ref.hint)
    # The hint lines up with the plate's format whatever either file's window origin; another size of the
    # same aspect is fitted by nearest-neighbour sampling (the gizmo's Reformat, filter impulse).
    hint = frame_io.fit_to_format(hint, (plate.shape[1], plate.shape[0]), f"hint {ref.hint} of {ref.label}")
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
    net_plate = np.ascontiguousarray(plate[..., 0:3]) if s.temporal > 0 else None
    return Prepared(loaded.ref, x, h, w, loaded.info, net_plate)


def infer(model: torch.nn.Module, device: torch.device, prepared: Prepared, s: KeySettings,
          autocast_dtype: Optional[torch.dtype] = None) -> Inferred:
    """The network on ``device``, then :func:`corridorkey_model.keying.frame.combine`; results back on the CPU.

    ``autocast_dtype`` (``--precision bf16``: ``torch.bfloat16``): the network runs under ``torch.autocast``
    in that dtype; its logits are cast back to fp32 before the combination.
    """
    # --precision (issue #29) begin
    amp = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())
    with torch.no_grad():
        with amp:
            logits = model(prepared.x.to(device))
        alpha_logits, fg_logits, delta_logits = (t.float() for t in logits)
    # --precision end
        alpha, fg = frame.combine(alpha_logits, fg_logits, delta_logits, s.refiner_strength)
    return Inferred(prepared.ref, alpha.float().cpu(), fg.float().cpu(), prepared.height, prepared.width,
                    prepared.info, prepared.x[:, 3:4].clone(),  # a copy: the [1, 4, S, S] input need not stay alive
                    prepared.net_plate)


def premultiplied_linear(fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``srgb_to_linear(fg) * alpha`` with alpha as the 4th channel: ``H x W x 4`` linear premultiplied RGBA."""
    rgb = premultiply_np(srgb_to_linear_np(fg), alpha)
    return np.concatenate([rgb, alpha[..., None]], axis=2).astype(np.float32)


def hint_at_plate_size(inferred: Inferred) -> np.ndarray:
    """The network's hint channel resized back to the plate: ``H x W`` float32 (what ``--write-hints`` writes)."""
    with torch.no_grad():
        hint = resize_bilinear_aa(inferred.hint.float(), inferred.height, inferred.width)
    return np.ascontiguousarray(hint[0, 0].numpy())


def raw_output(inferred: Inferred, s: KeySettings, with_hint: bool = False) -> RawOutput:
    """:func:`corridorkey_model.keying.frame.postprocess` (resize back, despill, despeckle): the ``.pt``'s output.

    ``with_hint``: also the hint the frame was keyed with, at plate size (:func:`hint_at_plate_size`).
    """
    with torch.no_grad():
        # The .pt's postprocess: the same despill and despeckle (knob despeckle_size) functions.
        out = frame.postprocess(inferred.alpha, inferred.fg, inferred.height, inferred.width, s.despill_strength,
                                s.despeckle_size if s.despeckle else 0, s.screen_channel)
    out = np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())
    hint = hint_at_plate_size(inferred) if with_hint and inferred.hint is not None else None
    return RawOutput(inferred.ref, out, inferred.info, hint, inferred.net_plate)


def finish_frame(raw: RawOutput, s: KeySettings) -> Keyed:
    """What the gizmo does after the ``.pt``: premultiplied linear RGBA (OCIO back to the working space with a
    config), and the preview comp."""
    fg = np.ascontiguousarray(raw.out[..., 0:3])
    alpha = np.ascontiguousarray(raw.out[..., 3])
    comp = composite_over_checkerboard_np(fg, alpha)
    if s.colour is None:
        return Keyed(raw.ref, fg, alpha, premultiplied_linear(fg, alpha), comp, raw.info, hint=raw.hint)
    # The gizmo's FromNetwork (the alpha is not converted), then its Premult, in the working space.
    fg = s.colour.to_working(fg)
    processed = np.concatenate([premultiply_np(fg, alpha), alpha[..., None]], axis=2).astype(np.float32)
    return Keyed(raw.ref, fg, alpha, processed, comp, raw.info, s.colour.working, s.colour.working, raw.hint)


def postprocess_frame(inferred: Inferred, s: KeySettings, with_hint: bool = False) -> Keyed:
    """:func:`raw_output` then :func:`finish_frame` (a frame on its own: no temporal smoothing)."""
    return finish_frame(raw_output(inferred, s, with_hint), s)


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
            tmp = frame_io.write_temp(final, data[kind], exr_options_for(kind, out), eight_bit=(kind == "Comp"),
                                      info=keyed.info,
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
    autocast_dtype: Optional[torch.dtype] = None  # --precision bf16: torch.bfloat16 (devices.resolve_precision)


def resolve_gamma(choice: str, clip: Clip, colour: Optional[OcioConversion] = None) -> int:
    """``auto`` -> linear for EXR plates, sRGB otherwise (with an OCIO config always sRGB: OCIO hands the
    network sRGB, the gizmo's default); ``srgb`` / ``linear`` as given."""
    choices = [c.lower() for c in KNOBS_BY_NAME["gamma_input"].choices]
    if choice == "auto":
        if colour is not None:
            return frame.GAMMA_SRGB
        return frame.GAMMA_LINEAR if clip.is_linear else frame.GAMMA_SRGB
    return choices.index(choice.lower())


def hint_finds_no_screen(x: Tensor) -> bool:
    """Whether a network input's hint channel (``[1, 4, S, S]``) holds (almost) no screen: under
    :data:`SCREEN_MIN_BACKGROUND` of its pixels below :data:`SCREEN_BACKGROUND_HINT` (``--screen auto``'s
    background rule). The automatic hint of a plate whose screen is not the chosen colour is solid 1."""
    hint = x[0, 3]
    return float((hint < SCREEN_BACKGROUND_HINT).float().mean()) < SCREEN_MIN_BACKGROUND


class NoScreenWarning:
    """``--hint auto``: warn once per clip, at its first frame whose automatic hint finds no screen, and count them."""

    def __init__(self, clip: Clip, s: KeySettings) -> None:
        self.clip, self.screen = clip, "blue" if s.screen_channel == 2 else "green"
        self.count = 0
        self._lock = threading.Lock()

    def check(self, prepared: Prepared) -> Prepared:
        if hint_finds_no_screen(prepared.x):
            with self._lock:
                self.count += 1
                first = self.count == 1
            if first:
                other = "blue" if self.screen == "green" else "green"
                log.warning("clip %s: the automatic hint finds no %s screen in %s (under %.0f%% of it below %s): "
                            "the frame is keyed as all foreground. Is the screen %s? Use --screen auto or "
                            "--screen %s, or give hints", self.clip.name, self.screen, prepared.ref.label,
                            SCREEN_MIN_BACKGROUND * 100, SCREEN_BACKGROUND_HINT, other, other)
        return prepared

    def reading(self, img_size: int, s: KeySettings) -> Callable[[FrameTask], Prepared]:
        """The reading stage: read and preprocess a frame, checking its automatic hint (``--hint auto``)."""
        def prepare(task: FrameTask) -> Prepared:
            prepared = preprocess_frame(read_frame(task), img_size, s)
            return self.check(prepared) if s.auto_hint else prepared
        return prepare

    def summary(self) -> None:
        if self.count > 1:
            log.warning("clip %s: the automatic hint found no %s screen in %d frame(s)", self.clip.name,
                        self.screen, self.count)


def key_clip(clip: Clip, refs: Sequence[FrameRef], workers: Sequence[Worker], img_size: int, s: KeySettings,
             out: OutputSettings, io_threads: int = 2,
             on_frame: Callable[[Written], None] = lambda w: None) -> int:
    """Key ``refs`` of ``clip``: read/preprocess -> infer (one thread per worker) -> postprocess/write.

    Frames are committed in order; returns how many were written. Raises
    :class:`corridorkey_model.pipeline.runner.StageError` naming the frame on any failure;
    every frame before the failed one is committed first, so a rerun resumes there.
    """
    no_screen = NoScreenWarning(clip, s)
    if s.temporal > 0:
        try:
            return key_clip_temporal(clip, refs, workers, img_size, s, out, io_threads, on_frame, no_screen)
        finally:
            no_screen.summary()
    stages = [
        Stage.threads("reading", no_screen.reading(img_size, s), io_threads),
        Stage("inference", tuple((lambda p, w=w: infer(w.model, w.device, p, s, w.autocast_dtype)) for w in workers)),
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
    finally:
        no_screen.summary()
    return count


# --------------------------------------------------------------------------- --temporal: frames with neighbours


def temporal_neighbours(clip: Clip, ref: FrameRef) -> Tuple[Optional[FrameRef], Optional[FrameRef]]:
    """The frames numbered one before and one after ``ref`` in ``clip`` (None: missing, the frame stands in)."""
    by_number = {r.number: r for r in clip.frames}
    return by_number.get(ref.number - 1), by_number.get(ref.number + 1)


def frames_to_infer(clip: Clip, refs: Sequence[FrameRef]) -> Tuple[FrameRef, ...]:
    """``refs`` and their neighbours in ``clip`` (a chunk's or a resume's edges: one more frame each), in clip order."""
    wanted = {r.position: r for r in refs}
    for ref in refs:
        for n in temporal_neighbours(clip, ref):
            if n is not None:
                wanted.setdefault(n.position, n)
    return tuple(wanted[p] for p in sorted(wanted))


def smooth_raw(raw: RawOutput, prev: Optional[RawOutput], nxt: Optional[RawOutput], strength: float) -> RawOutput:
    """:func:`corridorkey_model.keying.temporal.smooth_np` on a frame's raw output and its neighbours'."""
    if raw.net_plate is None:
        raise ValueError(f"{raw.ref.label}: keyed without its plate, so it cannot be smoothed over time")
    out = temporal_filter.smooth_np(raw.out, raw.net_plate,
                                    prev.out if prev is not None else None, prev.net_plate if prev is not None else None,
                                    nxt.out if nxt is not None else None, nxt.net_plate if nxt is not None else None,
                                    strength)
    return dataclasses.replace(raw, out=out, net_plate=None)


def key_clip_temporal(clip: Clip, refs: Sequence[FrameRef], workers: Sequence[Worker], img_size: int,
                      s: KeySettings, out: OutputSettings, io_threads: int = 2,
                      on_frame: Callable[[Written], None] = lambda w: None,
                      no_screen: Optional[NoScreenWarning] = None) -> int:
    """:func:`key_clip` with ``--temporal``: each frame of ``refs`` smoothed with its neighbours, then written.

    The network runs once per frame: read/preprocess -> infer -> the ``.pt``'s postprocess run on
    :func:`~corridorkey_model.pipeline.runner.run_ordered` over ``refs`` and the neighbours they lack
    (:func:`frames_to_infer`: a ``--frames`` chunk or a resume keys one frame more at each end and
    writes nothing for it), and the raw outputs arrive in clip order. As soon as a frame's next
    neighbour has arrived, ``io_threads`` threads smooth, finish and write it, and this thread
    commits the frames in order; the window keeps only the raw outputs still needed. A failure on
    frame k stops the run there: the frames on their way before it are committed first, k-1 is not
    written (it needs k), and the error (a :class:`StageError`) names k.
    """
    to_write = list(refs)
    writing = {r.position for r in to_write}
    window: Dict[int, RawOutput] = {}  # by frame number
    pending: Deque[Tuple[FrameRef, Future]] = deque()  # submitted writes, in frame order
    stages = [
        Stage.threads("reading", (no_screen or NoScreenWarning(clip, s)).reading(img_size, s), io_threads),
        Stage("inference", tuple((lambda p, w=w: infer(w.model, w.device, p, s, w.autocast_dtype)) for w in workers)),
        Stage.threads("postprocessing", lambda i: raw_output(i, s, out.write_hints and i.ref.position in writing),
                      io_threads),
    ]
    count = 0
    next_write = 0

    def ready(ref: FrameRef) -> bool:
        return ref.number in window and all(n is None or n.number in window for n in temporal_neighbours(clip, ref))

    def smooth_and_write(raw: RawOutput, prev: Optional[RawOutput], nxt: Optional[RawOutput]) -> Written:
        return write_frame(finish_frame(smooth_raw(raw, prev, nxt, s.temporal), s), clip.output_dir, out)

    def commit_oldest() -> None:
        nonlocal count
        ref, job = pending[0]
        try:
            written = job.result()  # Ctrl-C while waiting: still pending, discarded below
        except Exception as exc:
            pending.popleft()
            raise StageError(ref.label, "writing", exc) from exc
        pending.popleft()
        try:
            commit_written(written)
        except BaseException as exc:
            discard_written(written)
            if isinstance(exc, Exception):
                raise StageError(ref.label, "writing", exc) from exc
            raise
        count += 1
        on_frame(written)

    results = run_ordered(iter_tasks(clip, frames_to_infer(clip, refs)), stages, label=lambda t: t.ref.label)
    pool = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="corridorkey-temporal")
    try:
        while True:
            try:
                raw = next(results)
            except StopIteration:
                break
            except StageError:  # a frame failed before its write: the frames on their way are complete
                while pending:
                    commit_oldest()
                raise
            window[raw.ref.number] = raw
            while next_write < len(to_write) and ready(to_write[next_write]):
                ref = to_write[next_write]
                prev, nxt = (window.get(n.number) if n is not None else None for n in temporal_neighbours(clip, ref))
                pending.append((ref, pool.submit(smooth_and_write, window[ref.number], prev, nxt)))
                next_write += 1
                for number in [k for k in window if k < ref.number]:  # no later frame needs these
                    del window[number]
                while len(pending) > io_threads:  # bounded: at most io_threads frames wait to be committed
                    commit_oldest()
            while pending and pending[0][1].done():
                commit_oldest()
        while pending:
            commit_oldest()
    except Exception:
        log.info("clip %s: %d frame(s) before the failed one were written; fix it and run the same command again "
                 "to resume from there", clip.name, count)
        raise
    finally:
        results.close()
        for _ref, job in pending:  # after a failure or Ctrl-C: never committed
            job.cancel()
        pool.shutdown(wait=True)
        for _ref, job in pending:
            if job.done() and not job.cancelled() and job.exception() is None:
                discard_written(job.result())
    return count


def key_clip_sequential(clip: Clip, refs: Sequence[FrameRef], worker: Worker, img_size: int, s: KeySettings,
                        out: OutputSettings) -> int:
    """The same stages in a plain loop (the benchmark's baseline)."""
    count = 0
    for task in iter_tasks(clip, refs):
        written = write_frame(postprocess_frame(infer(worker.model, worker.device, preprocess_frame(
            read_frame(task), img_size, s), s, worker.autocast_dtype), s, out.write_hints), clip.output_dir, out)
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


def decide_screen(clip: Clip, screen: str, garbage_matte: bool = False) -> ScreenDecision:
    """``screen`` ("green", "blue" or "auto") for ``clip``; ``auto`` reads the clip's first frame and hint.

    Without a hint (``--hint auto``) the whole first frame counts as background: the screen
    covers most of a keyed frame, so its mean G and mean B still tell the screen. With a
    ``garbage_matte`` (the clip's hint channel) the frame inside it counts (the studio outside does not).
    """
    if screen != "auto":
        return ScreenDecision(screen, "chosen with --screen", False)
    first = read_frame(next(iter_tasks(clip, clip.frames[:1])))  # the hint fitted to the plate's format (0 without)
    hint = first.plate[..., 3]
    decision = detect_screen(first.plate[..., 0:3], 1.0 - np.clip(hint, 0.0, 1.0) if garbage_matte else hint)
    if garbage_matte:
        return dataclasses.replace(decision, reason=decision.reason + " (inside the garbage matte)")
    if clip.hint is None:
        return dataclasses.replace(decision, reason=decision.reason + " (no hint: the whole first frame)")
    return decision


def settings_for(clip: Clip, gamma: str, base: KeySettings) -> KeySettings:
    """``base`` with ``gamma_input`` resolved for ``clip``."""
    return dataclasses.replace(base, gamma_input=resolve_gamma(gamma, clip, base.colour))
