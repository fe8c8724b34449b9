"""The reference pipeline: key whole clips with the same math as the exported ``.pt``.

The flow, one plain function per stage, each handing the next a frozen dataclass::

    scan(path)                        -> [ClipSource]  (clips.py) a folder of clips, one clip folder, or a video
    load_clip(source)                 -> Clip          (clips.py) frames listed, hint present, counts and sizes match
    select_frames(clip, range, out)   -> Selection     (outputs.py) the --frames chunk, minus frames already written
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

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from corridorkey_model.keying import frame
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
from corridorkey_model.pipeline.frame_io import FrameReadError, ImageInfo
from corridorkey_model.pipeline.outputs import (
    HINT_OUTPUT,
    LAYERED_CHANNELS,
    LAYERED_DIR,
    LINEAR_LABEL,
    SRGB_LABEL,
    OutputSettings,
    output_paths,
)
from corridorkey_model.pipeline.runner import Stage, run_ordered

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

    def __post_init__(self) -> None:
        for name in ("gamma_input", "despill_strength", "refiner_strength", "auto_hint"):
            KNOBS_BY_NAME[name].check(getattr(self, name))
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
