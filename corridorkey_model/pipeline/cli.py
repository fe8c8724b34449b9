"""``corridorkey``: key clip folders from the shell with the reference pipeline (same math as the .pt)."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import click
import torch

from corridorkey_model import atomic
from corridorkey_model.cli_support import FiniteFloatRange, silence_torchscript_deprecation, stop_signals_interrupt
from corridorkey_model.devices import PRECISIONS, parse_device, resolve_precision
from corridorkey_model.keying import temporal as temporal_filter
from corridorkey_model.keying.hint import HINT_AUTOMATIC, HINT_FROM_INPUT, HINT_GARBAGE_MATTE
from corridorkey_model.keying.knobs import KNOBS_BY_NAME, SCREENS_BY_NAME
from corridorkey_model.network.greenformer import DEFAULT_IMG_SIZE, check_img_size
from corridorkey_model.pipeline import clips as clip_layout
from corridorkey_model.pipeline import colour_management, farm, frame_io, outputs, settings_record, stages, video_out
from corridorkey_model.pipeline.lock import OutputClaim, OutputLocked
from corridorkey_model.pipeline.runner import StageError
from corridorkey_model.testing import RANDOM_INIT_WARNING

log = logging.getLogger("corridorkey_model.pipeline.cli")

_DESPILL = KNOBS_BY_NAME["despill_strength"]
_GAMMA = KNOBS_BY_NAME["gamma_input"]
_REFINER = KNOBS_BY_NAME["refiner_strength"]
_DESPECKLE = KNOBS_BY_NAME["despeckle_size"]
# ---- quality (issue #27) ----
_QUALITY = KNOBS_BY_NAME["quality"]
#: ``--quality`` values, the knob's choices lower-cased (index = the .pt's knob value).
QUALITY_CHOICES = tuple(c.lower() for c in _QUALITY.choices or ())
#: ``--preview-size`` default: half the released model resolution (the export's example pairing 2048 / 1024).
DEFAULT_PREVIEW_SIZE = DEFAULT_IMG_SIZE // 2


def key_size(img_size: int, quality: str, preview_size: int) -> int:
    """The model resolution ``corridorkey run`` keys at: ``preview_size`` for ``--quality preview``, else S."""
    return preview_size if quality == QUALITY_CHOICES[1] else img_size
# ---- end quality ----
GAMMA_CHOICES = ("auto",) + tuple(c.lower() for c in _GAMMA.choices or ())
#: ``--hint auto``: make the hint from each plate (knob ``auto_hint`` = 1) instead of reading one.
AUTO_HINT = "auto"


class HintSource(click.Path):
    """``--hint``: an existing hint video or folder, or the word ``auto``.

    ``keywords`` tells ``farm-job`` which words are not paths (they become a STRING job parameter).
    """

    name = "hint"
    keywords = (AUTO_HINT,)

    def __init__(self) -> None:
        super().__init__(exists=True, path_type=Path)

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        if isinstance(value, str) and value == AUTO_HINT:
            return AUTO_HINT
        return super().convert(value, param, ctx)


class OcioConfigSource(click.Path):
    """``--ocio-config``: an existing config file (made absolute), an ``ocio://`` built-in, or ``none``.

    ``is_keyword`` tells ``farm-job`` which values are not paths (a STRING job parameter); a file
    becomes a PATH parameter, as the checkpoint does, so a relative path works on the farm too.
    """

    name = "config"

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False, resolve_path=True)

    @staticmethod
    def is_keyword(value: Any) -> bool:
        return isinstance(value, str) and (value.strip().lower() == colour_management.NO_CONFIG
                                           or colour_management.is_builtin(value))

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        if self.is_keyword(value):
            return value.strip()
        return os.fspath(super().convert(value, param, ctx))


def load_colour(ocio_config: Optional[str], working_space: str = colour_management.DEFAULT_WORKING_SPACE,
                network_space: str = colour_management.DEFAULT_NETWORK_SPACE) -> Optional[colour_management.OcioConversion]:
    """The colour conversions of ``run`` (and ``farm-job``'s check of them): ``--ocio-config``, else ``$OCIO``.

    A bad ``--ocio-config`` or space is a usage error (exit 2); a bad ``$OCIO`` an error (exit 1) that
    names ``$OCIO`` as the source. ``--working-space`` / ``--network-space`` other than their defaults
    without any config are refused: they would be ignored.
    """
    from_env = ocio_config is None
    config = colour_management.config_from_environment() if from_env else ocio_config
    try:
        colour = colour_management.load_conversion(config, working_space, network_space)
    except colour_management.ColourError as exc:
        if from_env:
            raise click.ClickException(f"the OCIO config comes from the environment variable $OCIO={config!r}: "
                                       f"{exc}. Fix or unset $OCIO, or choose one with --ocio-config "
                                       f"(none: the project's own sRGB maths)") from None
        raise click.UsageError(str(exc)) from None
    if colour is None:
        given = [f"{flag} {value}" for flag, value, default in (
            ("--working-space", working_space, colour_management.DEFAULT_WORKING_SPACE),
            ("--network-space", network_space, colour_management.DEFAULT_NETWORK_SPACE)) if value != default]
        if given:
            why = "--ocio-config none" if config is not None else "no --ocio-config and no $OCIO"
            raise click.UsageError(f"{' and '.join(given)}: colour spaces apply only with an OCIO config, and there "
                                   f"is none ({why}), so the project's own sRGB maths would key without them. Give "
                                   f"--ocio-config CONFIG (or set $OCIO), or leave the colour space options out")
    return colour


#: How the run's summary line names each ``auto_hint`` value.
_HINT_SOURCES = {HINT_FROM_INPUT: "hint from files", HINT_AUTOMATIC: "automatic hint",
                 HINT_GARBAGE_MATTE: "automatic hint x garbage matte"}


def hint_choice(value: Any, garbage_matte: Optional[Path] = None) -> Tuple[Optional[Path], int]:
    """``--hint`` (and ``--garbage-matte``) -> (what is read into the hint channel, or None; knob ``auto_hint``).

    ``--hint auto``: nothing read, 1 (automatic); with ``--garbage-matte PATH``: PATH, 2 (the automatic
    hint times the matte); ``--hint PATH``: PATH, 0. :func:`check_run_values` refused a garbage matte
    without ``--hint auto``.
    """
    if value == AUTO_HINT:
        return (None, HINT_AUTOMATIC) if garbage_matte is None else (garbage_matte, HINT_GARBAGE_MATTE)
    return value, HINT_FROM_INPUT


def _parse_frames(_ctx: click.Context, _param: click.Parameter, value: Optional[str]) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    try:
        return outputs.parse_frame_range(value)
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
    silence_torchscript_deprecation()
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("timm").setLevel(logging.WARNING)


def _farm_devices(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """``--device`` for farm-job: checked as text only; the farm node's own ``run`` finds its devices."""
    if value == "auto":
        return value
    for part in value.split(","):
        try:
            device = torch.device(part.strip())
        except (RuntimeError, ValueError):
            raise click.BadParameter(f"{part.strip()!r} is not a torch device; use auto, cpu, cuda or cuda:N") from None
        if device.type not in ("cpu", "cuda"):
            raise click.BadParameter(f"{part.strip()!r}: only cpu and cuda devices are supported")
    return value


def _img_size(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
    """``--img-size``: a usage error (exit 2) before anything is read or loaded (farm-job: before submitting)."""
    try:
        return check_img_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class RunOption:
    """One option of ``corridorkey run``, declared once for ``run`` and ``farm-job``.

    ``decls`` and ``kwargs`` are ``click.option``'s arguments. In ``farm-job`` the
    option's value becomes a job parameter's default (see :mod:`corridorkey_model.pipeline.farm`),
    and each task hands it back to ``corridorkey run``. There:

    * ``farm_decls`` spell it differently where ``farm-job`` uses the name for itself
      (``--output`` is the job file there); the Python name stays the same.
    * ``farm_callback`` replaces the callback: checks that need the farm node (CUDA
      devices) are left to the node's own ``run``, cheap ones are done before submitting.
    * ``per_task``: set by each task (``--frames``), not a job parameter.
    * ``data_flow``: for paths, ``IN`` (read) or ``OUT`` (written), for Deadline Cloud's
      job attachments; ``per_clip``: for a folder of clips each clip's task gets ``VALUE/CLIP``.

    A flag must be an on/off pair (``--x/--no-x``): a task passes one of the two
    spellings, as a template cannot leave an argument out.
    """

    decls: Tuple[str, ...]
    kwargs: Dict[str, Any] = field(default_factory=dict)
    farm_decls: Optional[Tuple[str, ...]] = None
    farm_callback: Optional[Callable[..., Any]] = None
    per_task: bool = False
    data_flow: str = "IN"
    per_clip: bool = False

    @property
    def name(self) -> str:
        """The Python name click gives the value (``--img-size`` -> ``img_size``)."""
        return click.Option(list(self.decls), **self.kwargs).name

    def decorator(self, farm: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        kwargs = dict(self.kwargs)
        decls = self.decls
        if farm:
            decls = (self.farm_decls + (self.name,)) if self.farm_decls else decls
            if self.farm_callback is not None:
                kwargs["callback"] = self.farm_callback
        return click.option(*decls, **kwargs)


#: ``corridorkey run``'s options, in help order. Add an option here and both ``run`` and
#: ``farm-job`` (as a job parameter, passed to every task) get it.
RUN_OPTIONS: Tuple[RunOption, ...] = (
    RunOption(("--checkpoint",), dict(
        type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        help="Checkpoint (.pth/.safetensors) of the model --screen names: the green-screen weights, or with "
             "--screen blue the blue-screen weights (with --screen auto, the green ones). Default: the released "
             "file from the Hugging Face cache, fetched if absent.")),
    RunOption(("--random-init/--no-random-init",), dict(
        default=False,
        help="Use a random-weight network instead of a checkpoint (smoke tests only: NOT a keyer).")),
    RunOption(("--img-size",), dict(
        type=int, default=DEFAULT_IMG_SIZE, callback=_img_size,
        help="Model resolution S (multiple of 32, >= 64); every frame is resized to S x S for the network.")),
    RunOption(("--quality",), dict(  # issue #27
        type=click.Choice(QUALITY_CHOICES), default=QUALITY_CHOICES[_QUALITY.typed_default],
        help=_QUALITY.tooltip + " Here: final keys at --img-size, preview at --preview-size (the network "
             "built at that size from the same weights, its position embedding resized from the checkpoint's: "
             "what a .pt exported with --img-size S --preview-size P runs at quality 1).")),
    RunOption(("--preview-size",), dict(  # issue #27
        type=int, default=DEFAULT_PREVIEW_SIZE, callback=_img_size,
        help="Model resolution of --quality preview (multiple of 32, >= 64, below --img-size).")),
    RunOption(("--despill",), dict(
        type=FiniteFloatRange(_DESPILL.minimum, _DESPILL.maximum), default=_DESPILL.typed_default,
        help=_DESPILL.tooltip)),
    RunOption(("--gamma",), dict(
        type=click.Choice(GAMMA_CHOICES), default="auto",
        help=_GAMMA.tooltip + " auto: linear for EXR plates, sRGB for everything else; with an OCIO config sRGB "
             "(OCIO converts the plate, as the node does).")),
    RunOption(("--refiner",), dict(
        type=FiniteFloatRange(_REFINER.minimum, _REFINER.maximum), default=_REFINER.typed_default,
        help=_REFINER.tooltip)),
    RunOption(("--despeckle/--no-despeckle",), dict(
        default=False,
        help="Remove alpha islands smaller than --despeckle-size pixels (the Nuke node's Despeckle knob, "
             "despeckle_size: the same function).")),
    RunOption(("--despeckle-size",), dict(
        type=click.IntRange(_DESPECKLE.minimum, _DESPECKLE.maximum), default=stages.RUN_DESPECKLE_SIZE,
        help="Smallest solid alpha island (8-connected pixels) that --despeckle keeps (upstream's default).")),
    RunOption(("--temporal",), dict(
        type=FiniteFloatRange(temporal_filter.STRENGTH_MIN, temporal_filter.STRENGTH_MAX),
        default=temporal_filter.STRENGTH_DEFAULT, metavar="STRENGTH",
        help=temporal_filter.TOOLTIP + " The Nuke node's Temporal knob: the same formula on the same outputs. With "
             "--frames (a farm task) or a resume the frames just outside the range are keyed too, not written, so "
             "chunks join exactly. 0: off, every output as without it.")),
    RunOption(("--screen",), dict(
        type=click.Choice(("green", "blue", "auto")), default="green",
        help="Screen colour, which picks the model (green: CorridorKey_v1.0, blue: CorridorKeyBlue_1.0) and the "
             "despill channel. auto: per clip, from its first frame and hint (mean G vs mean B where the hint "
             "is below 0.3, or over the whole frame with --hint auto; green, with a warning, when that cannot tell).")),
    RunOption(("--blue-checkpoint",), dict(
        type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        help="Blue-screen checkpoint (.safetensors/.pth) for the blue clips of --screen auto (with --screen blue "
             "the same as --checkpoint; refused with --screen green). Default: CorridorKeyBlue_1.0.safetensors "
             "from the Hugging Face cache, fetched if absent.")),
    RunOption(("--device", "devices"), dict(
        default="auto", callback=_parse_devices,
        help="Torch device(s), comma separated (e.g. cuda:0,cuda:1: one model per device). "
             "auto: cuda:0 if available, else cpu."),
        farm_callback=_farm_devices),
    # --precision (issue #29) begin
    RunOption(("--precision",), dict(
        type=click.Choice(PRECISIONS), default="fp32", show_default=True,
        help="What the network computes in. bf16: bfloat16 (torch.autocast), faster on a CPU with bfloat16 "
             "units (AVX512-BF16 or AMX: Intel Sapphire Rapids and later, AMD Zen 4 and later) and on recent "
             "GPUs; alpha within a few 1e-2 of fp32 (docs/benchmarks.md). Where the device has no "
             "bfloat16 support it runs in fp32, with one warning. Pre- and post-processing stay fp32.")),
    # --precision end
    RunOption(("--frames", "frame_range"), dict(
        default=None, callback=_parse_frames, metavar="FIRST-LAST",
        help="Key only these frame numbers (from the file names; videos count from 1), e.g. 1001-1050 "
             "for one render-farm task."),
        per_task=True),
    RunOption(("--overwrite/--no-overwrite",), dict(
        default=False,
        help="Re-key frames whose outputs exist (--no-overwrite skips them: a rerun resumes).")),
    RunOption(("--output",), dict(
        type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Output folder instead of CLIP/Output (VIDEO_Output for a video; OUTPUT/CLIP for a folder of clips)."),
        farm_decls=("--output-dir",), data_flow="OUT", per_clip=True),
    RunOption(("--hint",), dict(
        type=HintSource(), default=None, metavar="PATH|auto",
        help="Alpha hint video or folder of frames for a single video PATH (or instead of a clip's AlphaHint/). "
             "auto: make a rough hint from each plate instead (the Nuke node's automatic hint, knob auto_hint: a "
             "screen-difference key, eroded inside the subject); no hint files are read, AlphaHint/ included. "
             "Where the screen does not fill the frame (set walls, light stands, the studio), add --garbage-matte.")),
    RunOption(("--garbage-matte",), dict(
        type=click.Path(exists=True, path_type=Path), default=None, metavar="PATH",
        help="With --hint auto, for a single clip or video: a garbage matte (1 where the subject may be, 0 never "
             "subject: outside the screen, light stands, the studio). The automatic hint is multiplied by it, "
             "clamped to [0, 1] (the Nuke node's auto_hint 'Automatic x garbage matte', its GarbageMatte input). "
             "A video, a folder with one frame per plate frame (read like AlphaHint/), or one still image used "
             "for every frame; the plate's size.")),
    RunOption(("--write-hints/--no-write-hints",), dict(
        default=False,
        help="Also write Output/Hint/: the hint each frame was keyed with (whatever its source), one channel, "
             "named like the other outputs, in Matte's file type. A frame counts as done only with it.")),
    RunOption(("--layer",), dict(
        default=None, metavar="NAME",
        help="EXR part or layer of the plates to key (a part's name, or a channel prefix: beauty for beauty.R/G/B). "
             "Default: the R, G, B (A) of the first part that has them; a file without them names its layers.")),
    RunOption(("--ocio-config",), dict(
        type=OcioConfigSource(), default=None, metavar="CONFIG",
        help="OpenColorIO config for the Nuke node's colour conversions: a .ocio file or a built-in such as "
             "ocio://cg-config-latest. The plate goes from --working-space to --network-space before the network, "
             "the foreground back (the alpha is never converted), and FG/ and Processed/ are in the working "
             "space. Default: $OCIO; none (or no $OCIO): the project's own sRGB maths.")),
    RunOption(("--working-space",), dict(
        default=colour_management.DEFAULT_WORKING_SPACE, metavar="SPACE",
        help="With an OCIO config: the plate's colour space and the outputs' (the node's Working Space); a "
             "colour space or role.")),
    RunOption(("--network-space",), dict(
        default=colour_management.DEFAULT_NETWORK_SPACE, metavar="SPACE",
        help="With an OCIO config: the sRGB-encoded Rec.709 space the network sees (the node's Network "
             "Colorspace); a colour space or role.")),
    RunOption(("--format", "image_format"), dict(
        type=click.Choice(outputs.IMAGE_FORMATS), default="exr",
        help="File type of Matte/ and FG/ (png: 16-bit). Processed/ is always EXR, Comp/ 8-bit PNG.")),
    RunOption(("--exr-type",), dict(
        type=click.Choice(tuple(frame_io.EXR_TYPES)), default="half", help="EXR pixel type.")),
    RunOption(("--exr-compression",), dict(
        type=click.Choice(tuple(frame_io.EXR_COMPRESSIONS) + tuple(frame_io.EXR_COMPRESSION_ALIASES)),
        default=frame_io.DEFAULT_EXR_COMPRESSION,
        help="EXR compression (every OpenEXR 3.5 one; dwaa/dwab lossy at level 45, b44/b44a/pxr24 lossy; "
             "htj2k*/zstd need an OpenEXR 3.4/3.5 reader; no is the earlier name of none).")),
    RunOption(("--layered-exr/--no-layered-exr",), dict(
        default=False,
        help="Write one multi-layer EXR per frame to Layered/ (premultiplied RGBA, layers fg and matte) "
             "instead of Matte/, FG/ and Processed/. Comp/ is written either way.")),
    RunOption(("--video-out",), dict(
        type=click.Choice(("none",) + tuple(frame_io.VIDEO_CODECS)), default="none",
        help="Also encode the preview comp and the matte as videos beside the frames (CLIP.comp and "
             "CLIP.matte, with CLIP.video.json holding the source's metadata), once every frame of the clip "
             "is written. h264: MP4, plays everywhere; prores: ProRes 4444 10-bit MOV.")),
    RunOption(("--io-threads",), dict(
        type=click.IntRange(min=1), default=2,
        help="Threads for reading/preprocessing and for postprocessing/writing (each).")),
)


def check_run_values(values: Dict[str, Any]) -> Dict[str, Optional[Path]]:
    """The checks of ``corridorkey run``'s options together, for ``run`` and ``farm-job`` alike (one set of rules).

    ``values`` are the options by Python name. Returns the checkpoint per screen (None: the
    released file). Each option's own type and callback checked it alone already (ranges,
    finite numbers, --img-size, an existing checkpoint file); this checks how they combine,
    and that a given checkpoint can be one (size, Git LFS pointer). Raises
    ``click.UsageError`` (exit 2) or ``click.ClickException`` (exit 1, a bad file).
    """
    from corridorkey_model.network.checkpoint import CheckpointError, check_file

    checkpoint, blue, screen = values.get("checkpoint"), values.get("blue_checkpoint"), values.get("screen", "green")
    if values.get("garbage_matte") is not None and values.get("hint") != AUTO_HINT:
        raise click.UsageError(f"--garbage-matte {values['garbage_matte']} multiplies the automatic hint: add "
                               f"--hint auto (a hint given as files can have the garbage matte applied to it "
                               f"before the run)")
    if values.get("quality") == QUALITY_CHOICES[1] and not values["preview_size"] < values["img_size"]:
        raise click.UsageError(f"--quality preview keys at --preview-size {values['preview_size']}, which must be "
                               f"smaller than --img-size {values['img_size']}: lower --preview-size (e.g. "
                               f"{max(64, values['img_size'] // 64 * 32)}) or key with --quality final")
    if values.get("random_init") and (checkpoint is not None or blue is not None):
        raise click.UsageError("give --checkpoint / --blue-checkpoint or --random-init, not both")
    if screen == "green" and blue is not None:
        raise click.UsageError("--blue-checkpoint is the blue-screen model, but --screen green keys every clip "
                               "with the green one: give the green weights with --checkpoint, or use --screen "
                               "blue or auto")
    if screen == "blue" and checkpoint is not None and blue is not None \
            and Path(checkpoint).resolve() != Path(blue).resolve():
        raise click.UsageError(f"with --screen blue, --checkpoint and --blue-checkpoint both name the blue-screen "
                               f"weights, but they differ ({checkpoint}, {blue}): give one")
    if "ocio_config" in values:  # the colour options: what run loads, loaded here once to check them
        load_colour(values["ocio_config"], values.get("working_space", colour_management.DEFAULT_WORKING_SPACE),
                    values.get("network_space", colour_management.DEFAULT_NETWORK_SPACE))
    weights = {"green": checkpoint, "blue": blue}
    if screen == "blue":
        weights = {"green": None, "blue": checkpoint if checkpoint is not None else blue}
    for path in (p for p in weights.values() if p is not None):
        try:
            check_file(Path(path))
        except CheckpointError as exc:
            raise click.ClickException(str(exc)) from None
    return weights


def run_options(farm: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: every option of :data:`RUN_OPTIONS` (``farm``: as ``farm-job`` declares them)."""
    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for spec in reversed(RUN_OPTIONS):
            f = spec.decorator(farm)(f)
        return f
    return apply


@main.command("run")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@run_options()
def run(path: Path, checkpoint: Optional[Path], random_init: bool, img_size: int, quality: str, preview_size: int,
        despill: float, gamma: str, refiner: float, despeckle: bool, despeckle_size: int, temporal: float, screen: str,
        blue_checkpoint: Optional[Path], devices: List[torch.device], precision: str,
        frame_range: Optional[Tuple[int, int]], overwrite: bool, output: Optional[Path], hint: Any,
        garbage_matte: Optional[Path], write_hints: bool, layer: Optional[str], ocio_config: Optional[str], working_space: str,
        network_space: str, image_format: str, exr_type: str, exr_compression: str, layered_exr: bool,
        video_out: str, io_threads: int) -> None:
    """Key PATH: a clip folder (Input/ + AlphaHint/), a folder of clip folders, or a video file.

    Writes CLIP/Output/Matte (alpha), FG (straight sRGB fg), Processed (linear premultiplied RGBA EXR)
    and Comp (checkerboard preview PNG), one file per input frame, named after it (and Hint with
    --write-hints). A clip without AlphaHint/ needs --hint auto: the hint is then made from each plate.
    Writes are atomic and frames already written are skipped, so a killed or retried run resumes. The
    frames being keyed are locked (Output/.corridorkey-locks/): a second run on them fails at once,
    naming the first one's host and pid. Output/corridorkey_settings.json records the settings; a resume
    with others is refused without --overwrite. Exit status: 0 on success, 1 on any error (the message
    names the frame or file), 2 on a bad option (before anything is read), 130 on Ctrl-C or SIGTERM (a
    farm cancelling the task).
    """
    weights = check_run_values(dict(checkpoint=checkpoint, blue_checkpoint=blue_checkpoint,
                                    random_init=random_init, screen=screen, hint=hint, garbage_matte=garbage_matte,
                                    img_size=img_size, quality=quality, preview_size=preview_size))
    size = key_size(img_size, quality, preview_size)  # issue #27: the model resolution keyed at
    hint_path, auto_hint = hint_choice(hint, garbage_matte)
    if auto_hint == HINT_AUTOMATIC:
        log.info("--hint auto: the hint is made from each plate; where the screen does not fill the frame (set walls, "
                 "light stands, the studio are not screen-coloured and would count as subject), add --garbage-matte "
                 "PATH (1 where the subject may be, 0 elsewhere)")
    colour = load_colour(ocio_config, working_space, network_space)
    if colour is not None:
        log.info("colour: OCIO config %s (%s), working space %r, network space %r; FG/ and Processed/ are in the "
                 "working space (--ocio-config none: the project's own sRGB maths)", colour.config_name,
                 "--ocio-config" if ocio_config is not None else "$OCIO", colour.working, colour.network)
    base = stages.KeySettings(despill_strength=despill, refiner_strength=refiner, despeckle=despeckle,
                                despeckle_size=despeckle_size, colour=colour, auto_hint=int(auto_hint),
                                temporal=temporal)
    out = outputs.OutputSettings(image_format, frame_io.ExrOptions(exr_type, exr_compression), overwrite,
                                layered=layered_exr, write_hints=write_hints)
    matte_note = outputs.matte_compression_note(out)
    if matte_note:
        log.info("%s: mattes are always lossless", matte_note)
    try:
        clips = clip_layout.load_clips(clip_layout.scan(path, hint=hint_path, output=output,
                                                        garbage_matte=auto_hint == HINT_GARBAGE_MATTE), layer,
                                       auto_hint == HINT_AUTOMATIC, garbage_matte=auto_hint == HINT_GARBAGE_MATTE)
        plans = [(clip, outputs.select_frames(clip, frame_range, out)) for clip in clips]
        for clip, sel in plans:
            if sel.todo:
                outputs.check_output(clip, out)  # creates nothing: a failed run leaves no empty folders
    except (clip_layout.ClipError, frame_io.FrameReadError, frame_io.FrameWriteError) as exc:
        raise click.ClickException(str(exc)) from None

    total = sum(len(sel.todo) for _clip, sel in plans)
    skipped = sum(len(sel.done) for _clip, sel in plans)
    if total == 0:
        click.echo(f"nothing to do: all {skipped} frame(s) already written (use --overwrite to re-key)")
        _write_videos(clips, out, video_out)
        return
    try:
        screens = {clip.name: stages.decide_screen(clip, screen, garbage_matte is not None)
                   for clip, sel in plans if sel.todo}
    except frame_io.FrameReadError as exc:
        raise click.ClickException(str(exc)) from None
    for name, decision in screens.items():
        (log.warning if decision.fallback else log.info)("clip %s: %s screen (%s)", name, decision.screen,
                                                          decision.reason)
    from tqdm import tqdm

    claims: Dict[str, OutputClaim] = {}
    failed = True
    try:
        with stop_signals_interrupt():
            for clip, sel in plans:  # first the locks: a second run on these frames stops here, at once
                if sel.todo:
                    claims[clip.name] = _claim(clip, sel, out)
            # Every model a clip needs is loaded before any frame is keyed: a bad checkpoint stops here.
            loaded = {name: _load_workers(weights[name], random_init, img_size, devices, name, size, precision)
                      for name in sorted({d.screen for d in screens.values()})}
            settings = {name: dataclasses.replace(stages.settings_for(clip, gamma, base),
                                                  screen_channel=SCREENS_BY_NAME[screens[name].screen].channel)
                        for name, clip in ((c.name, c) for c, sel in plans if sel.todo)}
            for clip, sel in plans:  # then the settings records: a resume must not mix two keys
                if sel.todo:
                    decision = screens[clip.name]
                    record = _recorded_settings(settings[clip.name], decision.screen, loaded[decision.screen][1],
                                                img_size, out, clip.layer, garbage_matte, quality, preview_size)
                    if any(w.autocast_dtype is not None for w in loaded[decision.screen][0]):  # --precision
                        record["precision"] = "bf16"  # bf16 changes the pixels; no entry: fp32 (older records)
                    _record(clip, claims[clip.name], record, out.overwrite, frame_range is not None)
            t0 = time.perf_counter()
            lines = []
            with tqdm(total=total, unit="frame", dynamic_ncols=True, disable=None) as bar:
                for clip, sel in plans:
                    if not sel.todo:
                        lines.append(f"{clip.name}: all {len(sel.done)} frame(s) already written")
                        continue
                    bar.set_description(clip.name)
                    decision, s = screens[clip.name], settings[clip.name]
                    t_clip = time.perf_counter()
                    try:
                        n = stages.key_clip(clip, sel.todo, loaded[decision.screen][0], size, s, out,
                                              io_threads, on_frame=lambda _w: bar.update(1))
                    except StageError as exc:
                        bar.close()
                        raise click.ClickException(f"clip {clip.name}: {exc}") from None
                    dt = time.perf_counter() - t_clip
                    lines.append(f"{clip.name}: {n} frame(s) keyed ({n / dt:.2f} fps, {decision.screen} screen, "
                                 f"gamma {_GAMMA.choices[s.gamma_input]}, "
                                 f"{_HINT_SOURCES[auto_hint]}), {len(sel.done)} "
                                 f"already written -> {clip.output_dir}")
        failed = False
    except KeyboardInterrupt:
        click.echo("\ninterrupted: frames written so far are complete; run the same command again to resume",
                   err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        for claim in claims.values():
            claim.release(failed=failed)
    for line in lines:
        click.echo(line)
    click.echo(f"done: {total} frame(s) keyed, {skipped} skipped, {time.perf_counter() - t0:.1f} s")
    _write_videos(clips, out, video_out)


def _write_videos(clips: List[clip_layout.Clip], out: outputs.OutputSettings, codec: str) -> None:
    """``--video-out``: each clip's review videos, once all its frames are written."""
    if codec == "none":
        return
    for clip in clips:
        try:
            written = video_out.write_clip_videos(clip, out, codec)
        except (frame_io.FrameReadError, frame_io.FrameWriteError) as exc:
            raise click.ClickException(f"clip {clip.name}: --video-out: {exc}") from None
        for p in written:
            click.echo(f"{clip.name}: wrote {p}")


def _recorded_settings(s: stages.KeySettings, screen: str, weights: str, img_size: int,
                       out: outputs.OutputSettings, layer: Optional[str] = None,
                       garbage_matte: Optional[Path] = None, quality: str = QUALITY_CHOICES[0],
                       preview_size: int = DEFAULT_PREVIEW_SIZE) -> Dict[str, Any]:
    """What :mod:`corridorkey_model.pipeline.settings_record` records for a clip: what changes its pixels.

    ``--quality preview`` adds ``quality`` and ``preview_size``; a final key records neither, as
    before issue #27, so its outputs resume as they are."""
    preview = {"quality": quality, "preview_size": preview_size} if quality != QUALITY_CHOICES[0] else {}
    colour = ({"ocio_config": s.colour.config_source, "ocio_config_identity": s.colour.config_identity,
               "working_space": s.colour.working, "network_space": s.colour.network}
              if s.colour is not None else {"ocio_config": None})
    return {"screen": screen, "weights": weights, "img_size": img_size, "gamma_input": s.gamma_input,
            "despill_strength": s.despill_strength, "refiner_strength": s.refiner_strength,
            "despeckle_size": s.despeckle_size if s.despeckle else 0, "auto_hint": s.auto_hint,
            "image_format": out.image_format,
            "exr_type": out.exr.pixel_type, "exr_compression": out.exr.compression, "layer": layer,
            "layered_exr": out.layered, **colour, **preview,
            # recorded only when on, so that an output keyed before --temporal existed resumes without it
            **({"temporal": s.temporal} if s.temporal > 0 else {}),
            **settings_record.garbage_matte_entry(garbage_matte)}


def _claim(clip: clip_layout.Clip, sel: outputs.Selection, out: outputs.OutputSettings) -> OutputClaim:
    """Lock ``sel.todo`` of the clip's output (folders made, stale temporaries swept); ClickException if refused."""
    try:
        return outputs.claim_output(clip, sel.todo, out)
    except (OutputLocked, frame_io.FrameWriteError) as exc:
        raise click.ClickException(str(exc)) from None


def _record(clip: clip_layout.Clip, claim: OutputClaim, record: Dict[str, Any], overwrite: bool, partial: bool) -> None:
    """Check the clip output's settings record against ``record`` and write it; ClickException on a mismatch."""
    path = settings_record.record_path(clip.output_dir)
    try:
        rewrite = settings_record.check(clip.output_dir, record, overwrite, clip.name)
    except settings_record.SettingsMismatch as exc:
        raise click.ClickException(str(exc)) from None
    if not rewrite:
        return
    existed = path.exists()
    if existed and partial:
        log.warning("clip %s: --overwrite with --frames: frames outside the range keep the settings they were keyed "
                    "with, but %s now records the new ones", clip.name, path)
    try:
        settings_record.write(clip.output_dir, record)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {atomic.why_write_failed(path, exc)}") from None
    if not existed:
        claim.add_new_file(path)


@main.command("farm-job")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--output", "job_path", type=click.Path(path_type=Path), required=True,
              help="Where to write the job: a .yaml/.yml/.json file is the job template alone; any other path is "
                   "a Deadline Cloud job bundle folder (template.yaml + parameter_values.yaml).")
@click.option("--chunk", type=click.IntRange(min=1), default=10,
              help="Frames per task. Each task loads the model once, so small chunks waste that time and large "
                   "ones spread badly over the farm's nodes (at S = 2048 a frame takes ~1 s on a GPU, ~1.5 min "
                   "on a CPU node).")
@click.option("--chunking", type=click.Choice(farm.CHUNKING_MODES), default="auto",
              help="How tasks are split. extension: one CHUNK[INT] task parameter (OpenJD extension "
                   "TASK_CHUNKING; the chunk size stays a job parameter); explicit: each task's FIRST-LAST listed "
                   "in the template (for schedulers without the extension); auto: extension if the installed "
                   "openjd-model knows it.")
@click.option("--command", "program", default="corridorkey",
              help="The program each task runs, as the farm node finds it (its PATH, or a full path).")
@run_options(farm=True)
@click.pass_context
def farm_job(ctx: click.Context, path: Path, job_path: Path, chunk: int, chunking: str, program: str,
             **values: Any) -> None:
    """Write an Open Job Description job that keys PATH on a render farm, in chunks of frames.

    PATH is what `corridorkey run` takes: a clip folder, a folder of clip folders (one step per clip)
    or a video file. Each task runs `corridorkey run CLIP --frames FIRST-LAST` with the job's
    parameters: every `run` option below, defaulting to the value given here (the run's output
    folder is spelled --output-dir here; --frames limits the frames the job covers). Frame numbers
    are read from the clip's files now, as --frames reads them; a retried or killed task resumes.

    The template passes `openjd check`. Run it here with `openjd run` (the command is printed), or
    submit a bundle folder to AWS Deadline Cloud with `deadline bundle submit FOLDER`. Exit status:
    0 written, 1 a clip or the job is unusable (nothing written), 2 a bad option.
    """
    check_run_values(values)  # what run refuses, refused here before any task is written
    chunked = _use_task_chunking(chunking)
    path = Path(os.path.abspath(path))
    try:
        if values["output"] is None and path.is_file():  # a video's outputs go beside it: name that folder
            values["output"] = clip_layout.scan(path)[0].output_dir
        hint_path, auto_hint = hint_choice(values["hint"], values["garbage_matte"])
        folder, clips = farm.clip_frames(path, hint_path, values["output"], values["frame_range"], auto_hint,
                                         values["layer"])
        params = [p for p in (farm.job_parameter(a) for a in _run_arguments(ctx, values)) if p is not None]
        job = farm.build_job(path, folder, clips, params, chunk=chunk, chunked=chunked, program=program)
        farm.check_job(job, farm.job_files(job_path)[0].parent.absolute())
        template_path, values_path = farm.write_job(job, job_path)
    except (clip_layout.ClipError, frame_io.FrameReadError, farm.FarmJobError) as exc:
        raise click.ClickException(str(exc)) from None

    if values["random_init"]:
        click.secho("warning: --random-init: the job keys with RANDOM WEIGHTS (a smoke test, not a keyer)",
                    fg="red", err=True)
    elif values["checkpoint"] is None:
        click.secho("warning: no --checkpoint: every farm node takes CorridorKey_v1.0.pth from its own Hugging "
                    "Face cache, fetching it (about 400 MB) if absent; give --checkpoint PATH to use one file",
                    fg="yellow", err=True)
    frames = sum(len(c.frames) for c in clips)
    how = "CHUNK[INT], extension TASK_CHUNKING" if job.chunked else "explicit frame ranges"
    click.echo(f"wrote {template_path}: {len(clips)} clip(s), {frames} frame(s), {job.tasks} task(s) of up to "
               f"{chunk} frame(s) ({how})")
    if values_path is not None:
        click.echo(f"wrote {values_path} (the path parameters); submit: deadline bundle submit {job_path}")
    click.echo(f"run here: {farm.local_command(job, template_path)}")


def _use_task_chunking(chunking: str) -> bool:
    """``--chunking`` -> whether the job uses CHUNK[INT] (extension TASK_CHUNKING)."""
    if chunking == "auto":
        return farm.supports_task_chunking()
    if chunking == "extension" and not farm.supports_task_chunking():
        raise click.UsageError("--chunking extension: the installed openjd-model does not know TASK_CHUNKING "
                               "(pip install -U openjd-model), or use --chunking explicit")
    return chunking == "extension"


def _run_arguments(ctx: click.Context, values: Dict[str, Any]) -> List[farm.RunArgument]:
    """farm-job's values of the run options, each with the option as ``run`` spells it."""
    run_params = {p.name: p for p in run.params}
    farm_params = {p.name: p for p in ctx.command.params}
    return [farm.RunArgument(option=run_params[spec.name], value=values[spec.name],
                             param_name=farm.param_name_for(farm_params[spec.name].opts[0]),
                             data_flow=spec.data_flow, per_clip=spec.per_clip)
            for spec in RUN_OPTIONS if not spec.per_task]


def _load_workers(checkpoint: Optional[Path], random_init: bool, img_size: int,
                  devices: List[torch.device], screen: str = "green",
                  size: Optional[int] = None, precision: str = "fp32") -> Tuple[List[stages.Worker], str]:
    """The ``screen``'s model, one per device (loaded once, copied to the others), and what the weights are
    (their SHA-256, or ``random-init``). The loader logs the file, its hash and whether it is released.

    ``size``: the model resolution to key at when not ``img_size`` (``--quality preview``): a
    checkpoint is loaded at it (its position embedding resized from the checkpoint's), the
    random network is built at ``img_size`` and moved to it as the export's preview path is
    (:func:`corridorkey_model.network.checkpoint.model_at_size`). ``precision``: ``--precision``,
    resolved per device (a device without bfloat16 support runs fp32, logged)."""
    from corridorkey_model.network.checkpoint import CheckpointError, load_model, model_at_size
    from corridorkey_model.testing import make_random_model

    size = img_size if size is None else size
    try:
        if random_init:
            click.secho(RANDOM_INIT_WARNING, fg="red", bold=True, err=True)
            log.warning("--random-init: random weights, not a keyer")
            model, weights = make_random_model(img_size), "random-init"
            if size != img_size:
                model = model_at_size(model, size)
        else:
            model, info = load_model(checkpoint, img_size=size, device="cpu", screen=screen)
            weights = info.sha256
    except (CheckpointError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    workers = []
    for i, dev in enumerate(devices):
        m = model if i == len(devices) - 1 else copy.deepcopy(model)
        resolved = _resolve_precision(precision, dev)
        workers.append(stages.Worker(m.to(dev).eval(), dev, resolved.autocast_dtype))
    return workers, weights


_precision_notes: set = set()


def _resolve_precision(precision: str, device: torch.device):
    """``--precision`` on ``device`` (:func:`corridorkey_model.devices.resolve_precision`); a fallback to fp32
    is logged once per device and reason."""
    resolved = resolve_precision(precision, device)
    if resolved.note and (str(device), resolved.note) not in _precision_notes:
        _precision_notes.add((str(device), resolved.note))
        log.warning("%s: %s", device, resolved.note)
    elif resolved.name == "bf16":
        log.info("%s: the network runs in bfloat16 (--precision bf16)", device)
    return resolved


def _compare_default_tolerance() -> float:
    from corridorkey_model.pipeline.compare import DEFAULT_TOLERANCE

    return DEFAULT_TOLERANCE


def _parse_channel_letters(_ctx: click.Context, _param: click.Parameter, value: Optional[str]) -> Optional[Tuple[int, ...]]:
    from corridorkey_model.pipeline.compare import parse_channels

    if value is None:
        return None
    try:
        return parse_channels(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command("compare")
@click.argument("folder_a", metavar="A", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("folder_b", metavar="B", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tolerance", type=FiniteFloatRange(min=0), default=_compare_default_tolerance(),
              help="Max abs error allowed per channel and frame; the default is the CPU fp32 parity tolerance "
                   "(docs/parity.md, Tolerances). Use 5e-3 for GPU renders, 1e-2 with Optimize for Speed and "
                   "Memory.")
@click.option("--channels", callback=_parse_channel_letters, default=None,
              help="Channels to compare, as letters in RGBA order (rgba, rgb, a). Default: every channel; "
                   "both frames must then hold as many.")
def compare(folder_a: Path, folder_b: Path, tolerance: float, channels: Optional[Tuple[int, ...]]) -> None:
    """Compare two folders of frames, matched by frame number: a production parity test.

    For example A = the CorridorKey node's EXR renders of a shot (written raw, 32-bit float) and
    B = `corridorkey run`'s output for the same clip and knobs. Frames are matched by the number at
    the end of their file names (shot.1001.exr is frame 1001). Prints each frame's max abs error per
    channel. Both folders must hold the same frame numbers and each pair the same format (display
    window; frames are compared over it, whatever their data windows): anything else is an error,
    never a partial comparison. A NaN or infinity in either frame fails, even where both hold it.

    \b
    Example:
      corridorkey compare renders/sh010 sh010/Output/Processed --channels rgba

    Exit status: 0 every frame within the tolerance, 1 a frame above it (the worst one is named) or
    the folders cannot be compared, 2 bad usage.
    """
    from corridorkey_model.pipeline.compare import CHANNEL_LETTERS, NAN_RULE, CompareError, compare_folders, worst

    tol = tolerance
    try:
        results = compare_folders(folder_a, folder_b, channels)
    except CompareError as exc:
        raise click.ClickException(str(exc)) from None
    names = [CHANNEL_LETTERS[c].upper() for c in channels] if channels else None
    over = [r for r in results if not r.max_error <= tol]
    for r in results:
        cols = names or [CHANNEL_LETTERS[i].upper() if i < 4 else str(i) for i in range(len(r.max_abs))]
        cells = "  ".join(f"{c} {e:.3e}" for c, e in zip(cols, r.max_abs))
        click.echo(f"frame {r.number:>6}  {cells}  {'ok' if r.max_error <= tol else 'OVER'}")
    bad = worst(results)
    if over:
        nan = (f" (a NaN or infinity: {NAN_RULE})" if bad.max_error == float("inf") else "")
        raise click.ClickException(
            f"{len(over)} of {len(results)} frame(s) above the tolerance {tol:g}; worst: frame {bad.number} "
            f"({bad.a.name} against {bad.b.name}), max abs error {bad.max_error:.3g}{nan}")
    click.echo(f"{len(results)} frame(s) compared: all within {tol:g} (max abs error {bad.max_error:.3g}, "
               f"frame {bad.number})")


if __name__ == "__main__":  # pragma: no cover
    main()
