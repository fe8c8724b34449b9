"""``corridorkey``: key clip folders from the shell with the reference pipeline (same math as the .pt)."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import List, Optional, Tuple

import click
import torch

from corridorkey_model import frames_io, pipeline
from corridorkey_model.devices import parse_device
from corridorkey_model.greenformer import DEFAULT_IMG_SIZE
from corridorkey_model.synthetic import RANDOM_INIT_WARNING
from corridorkey_model.knobs import KNOBS_BY_NAME
from corridorkey_model.matte import DESPECKLE_SIZE
from corridorkey_model.runner import StageError

log = logging.getLogger("corridorkey_model.cli")

_DESPILL = KNOBS_BY_NAME["despill_strength"]
_GAMMA = KNOBS_BY_NAME["gamma_input"]
_REFINER = KNOBS_BY_NAME["refiner_strength"]
GAMMA_CHOICES = ("auto",) + tuple(c.lower() for c in _GAMMA.choices or ())

def _parse_frames(_ctx: click.Context, _param: click.Parameter, value: Optional[str]) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    try:
        return pipeline.parse_frame_range(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_devices(_ctx: click.Context, _param: click.Parameter, value: str) -> List[torch.device]:
    if value == "auto":
        return [torch.device("cuda:0" if torch.cuda.is_available() else "cpu")]
    try:
        return [parse_device(part) for part in value.split(",")]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """CorridorKey reference pipeline: key clips with the same math as the exported CorridorKey.pt."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("timm").setLevel(logging.WARNING)


@main.command("run")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CorridorKey checkpoint (.pth/.safetensors). Default: CorridorKey_v1.0.pth from the "
                   "Hugging Face cache, fetched if absent.")
@click.option("--random-init", is_flag=True,
              help="Use a random-weight network instead of a checkpoint (smoke tests only: NOT a keyer).")
@click.option("--img-size", type=int, default=DEFAULT_IMG_SIZE,
              help="Model resolution S (multiple of 32, >= 64); every frame is resized to S x S for the network.")
@click.option("--despill", type=click.FloatRange(_DESPILL.minimum, _DESPILL.maximum), default=_DESPILL.typed_default,
              help=_DESPILL.tooltip)
@click.option("--gamma", type=click.Choice(GAMMA_CHOICES), default="auto",
              help=_GAMMA.tooltip + " auto: linear for EXR plates, sRGB for everything else.")
@click.option("--refiner", type=click.FloatRange(_REFINER.minimum, _REFINER.maximum),
              default=_REFINER.typed_default, help=_REFINER.tooltip)
@click.option("--despeckle/--no-despeckle", default=False,
              help="Remove alpha islands smaller than --despeckle-size pixels (not done by the Nuke node).")
@click.option("--despeckle-size", type=click.IntRange(min=0), default=DESPECKLE_SIZE,
              help="Smallest solid alpha island (8-connected pixels) that --despeckle keeps.")
@click.option("--device", "devices", default="auto", callback=_parse_devices,
              help="Torch device(s), comma separated (e.g. cuda:0,cuda:1: one model per device). "
                   "auto: cuda:0 if available, else cpu.")
@click.option("--frames", "frame_range", default=None, callback=_parse_frames, metavar="FIRST-LAST",
              help="Key only these frame numbers (from the file names; videos count from 1), e.g. 1001-1050 "
                   "for one render-farm task.")
@click.option("--overwrite", is_flag=True, help="Re-key frames whose outputs exist (default: skip them, i.e. resume).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder instead of CLIP/Output (VIDEO_Output for a video; OUTPUT/CLIP for a folder of clips).")
@click.option("--hint", type=click.Path(exists=True, path_type=Path), default=None,
              help="Alpha hint video or folder of frames for a single video PATH (or instead of a clip's AlphaHint/).")
@click.option("--format", "image_format", type=click.Choice(pipeline.IMAGE_FORMATS), default="exr",
              help="File type of Matte/ and FG/ (png: 16-bit). Processed/ is always EXR, Comp/ 8-bit PNG.")
@click.option("--exr-type", type=click.Choice(tuple(frames_io.EXR_TYPES)), default="half", help="EXR pixel type.")
@click.option("--exr-compression", type=click.Choice(tuple(frames_io.EXR_COMPRESSIONS)),
              default=frames_io.DEFAULT_EXR_COMPRESSION, help="EXR compression (OpenCV's IMWRITE_EXR_COMPRESSION_*).")
@click.option("--io-threads", type=click.IntRange(min=1), default=2,
              help="Threads for reading/preprocessing and for postprocessing/writing (each).")
def run(path: Path, checkpoint: Optional[Path], random_init: bool, img_size: int, despill: float, gamma: str,
        refiner: float, despeckle: bool, despeckle_size: int, devices: List[torch.device],
        frame_range: Optional[Tuple[int, int]], overwrite: bool, output: Optional[Path], hint: Optional[Path],
        image_format: str, exr_type: str, exr_compression: str, io_threads: int) -> None:
    """Key PATH: a clip folder (Input/ + AlphaHint/), a folder of clip folders, or a video file.

    Writes CLIP/Output/Matte (alpha), FG (straight sRGB fg), Processed (linear premultiplied RGBA EXR)
    and Comp (checkerboard preview PNG), one file per input frame, named after it. Writes are atomic and
    frames already written are skipped, so a killed or retried run resumes. Exit status: 0 on success,
    1 on any error (the message names the frame), 130 on Ctrl-C.
    """
    if random_init and checkpoint is not None:
        raise click.UsageError("give --checkpoint or --random-init, not both")
    base = pipeline.KeySettings(despill_strength=despill, refiner_strength=refiner, despeckle=despeckle,
                                despeckle_size=despeckle_size)
    out = pipeline.OutputSettings(image_format, frames_io.ExrOptions(exr_type, exr_compression), overwrite)
    try:
        clips = pipeline.load_clips(pipeline.scan(path, hint=hint, output=output))
        plans = []
        for clip in clips:
            sel = pipeline.select_frames(clip, frame_range, out)
            if sel.todo:
                pipeline.prepare_output(clip, out)
            plans.append((clip, sel))
    except (pipeline.ClipError, frames_io.FrameReadError, frames_io.FrameWriteError) as exc:
        raise click.ClickException(str(exc)) from None

    total = sum(len(sel.todo) for _clip, sel in plans)
    skipped = sum(len(sel.done) for _clip, sel in plans)
    if total == 0:
        click.echo(f"nothing to do: all {skipped} frame(s) already written (use --overwrite to re-key)")
        return
    workers = _load_workers(checkpoint, random_init, img_size, devices)

    from tqdm import tqdm

    t0 = time.perf_counter()
    lines = []
    with tqdm(total=total, unit="frame", dynamic_ncols=True, disable=None) as bar:
        for clip, sel in plans:
            if not sel.todo:
                lines.append(f"{clip.name}: all {len(sel.done)} frame(s) already written")
                continue
            bar.set_description(clip.name)
            s = pipeline.settings_for(clip, gamma, base)
            t_clip = time.perf_counter()
            try:
                n = pipeline.key_clip(clip, sel.todo, workers, img_size, s, out, io_threads,
                                      on_frame=lambda _w: bar.update(1))
            except StageError as exc:
                bar.close()
                raise click.ClickException(f"clip {clip.name}: {exc}") from None
            except KeyboardInterrupt:
                bar.close()
                click.echo("\ninterrupted: frames written so far are complete; run the same command again "
                           "to resume", err=True)
                raise click.exceptions.Exit(130) from None
            dt = time.perf_counter() - t_clip
            lines.append(f"{clip.name}: {n} frame(s) keyed ({n / dt:.2f} fps, gamma "
                         f"{_GAMMA.choices[s.gamma_input]}), {len(sel.done)} already written -> {clip.output_dir}")
    for line in lines:
        click.echo(line)
    click.echo(f"done: {total} frame(s) keyed, {skipped} skipped, {time.perf_counter() - t0:.1f} s")


def _load_workers(checkpoint: Optional[Path], random_init: bool, img_size: int,
                  devices: List[torch.device]) -> List[pipeline.Worker]:
    """One model per device (loaded once, copied to the others)."""
    from corridorkey_model.checkpoint import CheckpointError, load_model
    from corridorkey_model.synthetic import make_random_model

    try:
        if random_init:
            click.secho(RANDOM_INIT_WARNING, fg="red", bold=True, err=True)
            log.warning("--random-init: random weights, not a keyer")
            model = make_random_model(img_size)
        else:
            model, info = load_model(checkpoint, img_size=img_size, device="cpu")
            log.info("checkpoint %s (%s)", info.path, "released" if info.is_released_file else "not the released file")
    except (CheckpointError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    workers = []
    for i, dev in enumerate(devices):
        m = model if i == len(devices) - 1 else copy.deepcopy(model)
        workers.append(pipeline.Worker(m.to(dev).eval(), dev))
    return workers


if __name__ == "__main__":  # pragma: no cover
    main()
