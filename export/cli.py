"""``export-torchscript``: CorridorKey checkpoint -> ``CorridorKey.pt`` for Nuke's Inference node.

Forms::

    export-torchscript [--checkpoint PATH | --random-init] [--output CorridorKey.pt] [--validate] ...
    export-torchscript validate CorridorKey.pt [--checkpoint PATH] ...
    export-torchscript parity-kit CorridorKey.pt --output KIT
    export-torchscript parity-check KIT [RENDERS] --mode cpu|gpu|gpu-fp16|cpu-bf16

The first exports (and with ``--validate`` proves parity before writing); the
second checks a .pt someone else exported against the eager reference; the
parity commands write a kit a TD renders in their own Nuke and judge those
renders (:mod:`corridorkey_export.parity`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Optional

import click
import torch

from corridorkey_export.nuke_contract import SCREENS, SCREENS_BY_NAME
from corridorkey_export.targets import DEFAULT_TARGET, TARGETS
from corridorkey_export.validate import (
    FP16_CPU_AUTO_MAX_SIZE,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    SWEEP_VALUES,
    SWEEPS,
    cat_file_settings,
    default_plates,
    format_report,
)
from corridorkey_model.cli_support import FiniteFloatRange, silence_torchscript_deprecation, stop_signals_interrupt
from corridorkey_model.devices import parse_device
from corridorkey_model.keying.knobs import KNOBS
from corridorkey_model.network.greenformer import DEFAULT_IMG_SIZE
from corridorkey_model.testing import RANDOM_INIT_WARNING

log = logging.getLogger("corridorkey_export.cli")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _setup_logging(verbose: int) -> None:
    silence_torchscript_deprecation()
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)


def _device(value: str) -> torch.device:
    try:
        return parse_device(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None


def _load(checkpoint: Optional[str], random_init: bool, seed: int, img_size: int, device: torch.device,
          screen: str = "green"):
    """(model, CheckpointInfo or None); ClickException with the loader's message on failure."""
    from corridorkey_model.network.checkpoint import CheckpointError, load_model
    from corridorkey_model.testing import make_random_model

    t = time.perf_counter()
    try:
        if random_init:
            click.secho(RANDOM_INIT_WARNING, fg="red", bold=True, err=True)
            log.info("load     random-weight GreenFormer at S=%d (seed %d)", img_size, seed)
            model, info = make_random_model(img_size, seed=seed), None
        else:
            log.info("load     %s at S=%d for the %s screen", checkpoint or f"the released {screen}-screen weights",
                     img_size, screen)
            model, info = load_model(checkpoint, img_size=img_size, device="cpu", screen=screen)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:  # e.g. an unsupported --img-size
        raise click.UsageError(str(exc)) from None
    log.info("load     done in %.1f s", time.perf_counter() - t)
    return model, info


def _load_preview(model, info, preview_size: int, screen: str = "green"):
    """The eager network at ``preview_size`` sharing ``model``'s weights (issue #27: the preview path).

    Its position embedding is resized from the checkpoint's, as a plain export at that size
    does: from ``model``'s when ``model`` runs at the checkpoint's resolution (the released
    2048 checkpoint at --img-size 2048), else from the checkpoint file, loaded once more.
    """
    from corridorkey_export.export import ExportError, make_preview_model, share_weights
    from corridorkey_model.network.checkpoint import POS_EMBED_KEY, CheckpointError, load_model

    t = time.perf_counter()
    try:
        if info is None or not info.pos_embed_resized:
            preview = make_preview_model(model, preview_size)
        else:
            preview, _ = load_model(info.path, img_size=preview_size, device="cpu", screen=screen)
            apart = share_weights(preview, model)
            if apart != [POS_EMBED_KEY]:
                raise ExportError(f"{info.path} at {preview_size} px differs from it at {model.img_size} px in "
                                  f"{', '.join(apart[:5])}, not only in {POS_EMBED_KEY}")
    except ValueError as exc:  # an unsupported --preview-size
        raise click.UsageError(str(exc)) from None
    except (CheckpointError, ExportError) as exc:
        raise click.ClickException(str(exc)) from None
    log.info("load     the preview network at S=%d (weights shared) in %.1f s", preview_size,
             time.perf_counter() - t)
    return preview


def _validation_kwargs(sweep: str, fp16: str, tolerance: float, fp16_tolerance: float, progress: bool) -> dict:
    return {"sweep": sweep, "fp16": fp16, "tolerance": tolerance, "fp16_tolerance": fp16_tolerance,
            "progress": progress}


def _sweep_note(sweep: str, img_size: int, preview_size: int = 0) -> str:
    from corridorkey_export.validate import plan_validation

    return plan_validation(img_size, sweep=sweep).describe(img_size, preview_size)


_fp16_help = (f"Check fp16 (module and input .half(), Nuke's 'Optimize for Speed and Memory') against the fp32 "
              f"reference. auto: on CUDA always, on CPU only up to S={FP16_CPU_AUTO_MAX_SIZE} (CPU half "
              f"convolutions are ~100x slower).")


def _sweep_help() -> str:
    """The --sweep help, from the sweep's values (one entry per knob of the spec)."""
    settings = math.prod(len(v) for v in SWEEP_VALUES.values())
    forwards = settings * len(default_plates(DEFAULT_IMG_SIZE))
    values = " x ".join(f"{name} {'/'.join(f'{x:g}' for x in v)}" for name, v in SWEEP_VALUES.items())
    return (f"Knob sweep ({values}). pairwise: the file's pre/post-processing checked for every pair of knob "
            "values on cached network outputs, plus 2 end-to-end calls (minutes at S=2048 on a CPU); full: all "
            f"{settings} settings, each also end to end on every plate ({forwards} full forwards: "
            "hours on a CPU at S=2048).")


def _main_help() -> str:
    """The command's help; the knob list comes from the knob spec."""
    names = [k.name for k in KNOBS]
    return f"""Export CorridorKey to a TorchScript file for Nuke's Inference node.

    Writes OUTPUT (default CorridorKey.pt) with the {len(names)} knobs {', '.join(names[:-1])} and {names[-1]}
    live at render time, and OUTPUT's manifest (checkpoint SHA-256, S, versions, knob spec,
    validation figures). Steps: load, trace, script, save, check, [validate]. The file appears
    only when every step succeeded.

    \b
    Examples:
      export-torchscript --checkpoint CorridorKey_v1.0.pth --validate
      export-torchscript --random-init --img-size 256 --validate -o /tmp/ck/CorridorKey.pt
      export-torchscript validate CorridorKey.pt --checkpoint CorridorKey_v1.0.pth

    Exit status: 0 success, 1 export or validation failure, 2 usage error, 130 interrupted
    (Ctrl-C or SIGTERM: nothing is written, no temporary file is left).
    At S=2048 on a 2-core CPU the default --validate adds a few minutes (2 full forwards of the
    .pt, 1 eager); --sweep full takes hours there: prefer --device cuda for it.
    """


def validation_options(f):
    """Options shared by the export's --validate and the validate command."""
    f = click.option("--fp16-tolerance", type=FiniteFloatRange(min=0.0), default=FP16_TOLERANCE, show_default=True,
                     help="Max abs error allowed for fp16 against the fp32 reference.")(f)
    f = click.option("--tolerance", type=FiniteFloatRange(min=0.0), default=FP32_TOLERANCE, show_default=True,
                     help="Max abs error allowed per output channel, fp32 on the same device.")(f)
    f = click.option("--fp16", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
                     help=_fp16_help)(f)
    f = click.option("--sweep", type=click.Choice(SWEEPS), default="pairwise", show_default=True,
                     help=_sweep_help())(f)
    return f


def _verbosity(f):
    f = click.option("-q", "--quiet", count=True, help="Less logging.")(f)
    f = click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")(f)
    return f


@click.group(context_settings=CONTEXT, invoke_without_command=True, no_args_is_help=False, help=_main_help())
@click.option("--checkpoint", type=click.Path(dir_okay=True, path_type=str), default=None,
              help="CorridorKey checkpoint (.pth / .pt / .safetensors). Default: the released "
                   "CorridorKey_v1.0.pth from the Hugging Face cache, fetched if absent.")
@click.option("--random-init", is_flag=True,
              help="Export a RANDOM-WEIGHT network instead of a checkpoint (smoke tests only; NOT a keyer).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random-init.")
@click.option("--screen", type=click.Choice([s.name for s in SCREENS]), default="green", show_default=True,
              help="Which released model: green (CorridorKey_v1.0) or blue (CorridorKeyBlue_1.0, a separate "
                   "checkpoint). The screen is baked into the file (despill channel, Model Id) and recorded in "
                   "the manifest: the weights themselves cannot tell green from blue.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="TorchScript file to write; the manifest goes beside it as <name>.manifest.json. "
                   "[default: CorridorKey.pt, or CorridorKeyBlue.pt with --screen blue]")
@click.option("--img-size", type=int, default=DEFAULT_IMG_SIZE, show_default=True,
              help="Model resolution S (multiple of 32, >= 64); plates are resized to S x S and back.")
@click.option("--preview-size", type=int, default=None,
              help="Also trace the network at this smaller resolution (multiple of 32, >= 64, below --img-size) "
                   "into the same file: its knob quality = 1 (Preview) keys at it, 0 (Final, the default) at "
                   "--img-size. The weights are stored once; only the position embedding of each size is its "
                   "own. Example: --img-size 2048 --preview-size 1024. Without it the file has no preview path "
                   "and ignores the knob.  [default: none]")
@click.option("--cpu-bf16/--no-cpu-bf16", default=True, show_default=True,
              help="Also trace a CPU bfloat16 copy of the network into the file (weights stored once, under "
                   "1 MB more): its attribute cpu_bf16 = 1 (the gizmo's CPU Precision: bfloat16, on a machine "
                   "with bfloat16 units) runs it for fp32 input on a CPU, about 2x faster than fp32 there "
                   "(docs/benchmarks.md). --validate checks it end to end against fp32 where this CPU has "
                   "bfloat16 units. Costs one more trace and one bfloat16 forward at export.")
@click.option("--device", default="cpu", show_default=True,
              help="Device for tracing and validation (cpu, cuda, cuda:N). The file is saved for CPU; Nuke "
                   "moves it to the GPU itself.")
@click.option("--target-nuke", type=click.Choice(list(TARGETS)), default=DEFAULT_TARGET, show_default=True,
              help="Nuke version the file is for (chooses e.g. the attention kernel traced; recorded in the "
                   "manifest).")
@click.option("--validate", is_flag=True,
              help="Before writing, reload the file and prove it matches the Python reference on synthetic "
                   "plates over a knob sweep; exit 1 (and write nothing) above tolerance.")
@validation_options
@_verbosity
@click.pass_context
def main(ctx: click.Context, checkpoint: Optional[str], random_init: bool, seed: int, screen: str,
         output: Optional[Path], img_size: int, preview_size: Optional[int], cpu_bf16: bool,
         device: str, target_nuke: str, validate: bool, sweep: str, fp16: str, tolerance: float,
         fp16_tolerance: float, verbose: int, quiet: int) -> None:
    """The export (help text: :func:`_main_help`, generated from the knob spec)."""
    if ctx.invoked_subcommand is not None:
        given = [p for p in ctx.params if ctx.get_parameter_source(p) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"options {', '.join('--' + p.replace('_', '-') for p in given)} belong to the "
                                   f"export; put the validate command's options after 'validate'")
        return
    _setup_logging(verbose - quiet)
    from corridorkey_export.export import ExportError, ValidationFailed, check_output_writable, export_torchscript

    if random_init and checkpoint:
        raise click.UsageError("--random-init and --checkpoint exclude each other: pick one")
    screen_spec = SCREENS_BY_NAME[screen]
    if output is None:
        output = Path(screen_spec.pt_filename)
    dev = _device(device)
    try:
        output = check_output_writable(output)  # before any expensive work
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    started = time.perf_counter()
    try:
        with stop_signals_interrupt():
            model, info = _load(checkpoint, random_init, seed, img_size, dev, screen)
            preview = None if preview_size is None else _load_preview(model, info, preview_size, screen)
            if validate:
                log.info("validation will make %s", _sweep_note(sweep, img_size, preview_size or 0))
            result = export_torchscript(
                model, output, device=dev, target_nuke=target_nuke, checkpoint_info=info,
                random_init_seed=seed if random_init else None, validate=validate, screen=screen_spec,
                validate_kwargs=_validation_kwargs(sweep, fp16, tolerance, fp16_tolerance, progress=True),
                preview_model=preview, cpu_bf16=cpu_bf16)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {output} was not written (no temporary file left)", err=True)
        raise click.exceptions.Exit(130) from None
    except ValidationFailed as exc:
        click.echo(format_report(exc.report))
        raise click.ClickException(str(exc)) from None
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    if result.validation is not None:
        click.echo(format_report(result.validation))
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    preview_note = f", preview at {result.preview_size} (knob quality = 1)" if result.preview_size else ""
    click.echo(f"\nWrote {result.output} ({screen}-screen model, S={result.img_size}{preview_note}, Nuke "
               f"{result.target_nuke} target) and "
               f"{result.manifest_path.name} in {time.perf_counter() - started:.1f} s ({steps}).")
    if random_init:
        click.secho(RANDOM_INIT_WARNING, fg="red", bold=True, err=True)
    click.echo("")
    click.echo(cat_file_settings(screen_spec))


@main.command("validate", context_settings=CONTEXT)
@click.argument("pt_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--checkpoint", type=click.Path(dir_okay=True, path_type=str), default=None,
              help="Checkpoint the file was exported from. Default: the one its manifest names when that file "
                   "exists, else the released CorridorKey_v1.0.pth (Hugging Face cache).")
@click.option("--random-init", is_flag=True,
              help="The file was exported with --random-init: rebuild that random network (seed from the "
                   "manifest, else --seed).")
@click.option("--seed", type=int, default=None, help="Seed of --random-init (default: the manifest's, else 0).")
@click.option("--device", default="cpu", show_default=True, help="Device to run both on (cpu, cuda, cuda:N).")
@validation_options
@_verbosity
def validate_command(pt_file: Path, checkpoint: Optional[str], random_init: bool, seed: Optional[int], device: str,
                     sweep: str, fp16: str, tolerance: float, fp16_tolerance: float, verbose: int,
                     quiet: int) -> None:
    """Check an exported CorridorKey .pt against the Python reference.

    For TDs who receive a .pt they did not export. Reads PT_FILE's manifest
    (<name>.manifest.json) when present: the model resolution, the checkpoint it
    names (warning when its SHA-256 differs from the one used now) and the attention
    kernel it was traced with. Exits 1 on any mismatch above tolerance.

    \b
    Example:
      export-torchscript validate CorridorKey.pt --checkpoint CorridorKey_v1.0.pth
    """
    _setup_logging(verbose - quiet)
    from corridorkey_export.export import returning_freed_memory
    from corridorkey_export.validate import validate_torchscript

    dev = _device(device)
    module, model, manifest, preview = _reference_model(pt_file, checkpoint, random_init, seed, dev)
    fused = (manifest.get("nuke_target") or {}).get("fused_attn_used")
    with returning_freed_memory():
        report = validate_torchscript(module, model, device=dev, fused_attn=fused, preview_model=preview,
                                      **_validation_kwargs(sweep, fp16, tolerance, fp16_tolerance, progress=True))
    click.echo(format_report(report))
    if not report.passed:
        raise click.ClickException(f"{pt_file} does not match the reference: {report.problems[0]}")


def _reference_model(pt_file: Path, checkpoint: Optional[str], random_init: bool, seed: Optional[int],
                     dev: torch.device):
    """(loaded .pt, eager reference model, manifest, eager preview model or None) for ``validate`` and the
    parity commands.

    Reads PT_FILE's manifest when present (it must be the file's: ``file_sha256``): the
    checkpoint and seed it names, never silently switching to other weights; checks the
    loaded file (model resolution, screen) against it.
    """
    from corridorkey_export.export import ExportError, check_loaded, read_manifest

    try:
        manifest = read_manifest(pt_file) or {}
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    if not manifest:
        log.warning("no manifest beside %s: checking against %s", pt_file,
                    checkpoint or ("a random network" if random_init else "the released checkpoint"))
    else:
        _check_manifest_is_the_files(pt_file, manifest)
    recorded = manifest.get("checkpoint") or {}
    if recorded.get("random_init") and not (random_init or checkpoint):
        random_init = True
        log.info("the manifest says the file was exported with --random-init; rebuilding that network")
    chosen_by_user = checkpoint is not None
    if checkpoint is None and not random_init and recorded.get("path"):
        checkpoint = _manifest_checkpoint(pt_file, recorded)
    if seed is None:
        seed = int(recorded.get("seed") or 0)

    t = time.perf_counter()
    try:
        module = torch.jit.load(str(pt_file), map_location=dev)
    except Exception as exc:  # torch raises RuntimeError / ValueError of many kinds for a bad file
        raise click.ClickException(f"{pt_file} is not a loadable TorchScript file ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''}); re-export it") from None
    img_size = getattr(module, "img_size", None)
    if not isinstance(img_size, int):
        raise click.ClickException(f"{pt_file} is not a CorridorKey export: it has no img_size attribute")
    channel = int(getattr(module, "screen_channel", 1))
    screen = next((s for s in SCREENS if s.channel == channel), None)
    if screen is None:
        raise click.ClickException(f"{pt_file} despills channel {channel}, which is neither screen; re-export it")
    from corridorkey_export.validate import manifest_problems

    problems = manifest_problems(manifest, img_size, screen.name)
    if problems:  # the manifest's img_size and screen must be the file's
        raise click.ClickException(f"{pt_file}: {'; '.join(problems)}: the manifest does not describe this file; "
                                   f"put the file's own manifest beside it, or re-export it")
    preview_size = int(getattr(module, "preview_size", 0))  # a file from before issue #27 has none
    try:
        check_loaded(module, img_size, screen, preview_size)
    except ExportError as exc:
        raise click.ClickException(f"{pt_file}: {exc}") from None
    log.info("load     %s (%s-screen model, S=%d) in %.1f s", pt_file, screen.name, img_size, time.perf_counter() - t)
    model, info = _load(checkpoint, random_init, seed, img_size, dev, screen.name)
    if info is not None and recorded.get("sha256") and recorded["sha256"] != info.sha256:
        if not chosen_by_user:  # never a silent switch to other weights
            raise click.ClickException(
                f"the manifest says {pt_file.name} was exported from weights with SHA-256 {recorded['sha256']}, but "
                f"the checkpoint found here ({info.path}) has {info.sha256}: comparing them would only report a "
                f"mismatch. Give the checkpoint it was exported from with --checkpoint PATH.")
        log.warning("the manifest says %s was exported from a checkpoint with SHA-256 %s, but %s has %s: "
                    "expect a mismatch", pt_file.name, recorded["sha256"], info.path, info.sha256)
    preview = _load_preview(model, info, preview_size, screen.name) if preview_size else None
    return module, model, manifest, preview


def _clip_frames(clip: Path, hint: Optional[Path], frames: str):
    """([(frame number, H x W x 4 plate + hint)], {gamma_input}) of the frames ``frames`` of one clip."""
    from corridorkey_model.pipeline import clips, frame_io, outputs, stages

    try:
        first, last = outputs.parse_frame_range(frames)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--frames") from None
    try:
        sources = clips.scan(clip, hint=hint)
        if len(sources) != 1:
            raise click.UsageError(f"--clip {clip} holds {len(sources)} clips; give one clip folder or video")
        loaded = clips.load_clip(sources[0])
        refs = [r for r in loaded.frames if first <= r.number <= last]
        if not refs:
            nums = [r.number for r in loaded.frames]
            raise click.UsageError(f"--frames {frames}: clip {loaded.name} has frames {min(nums)}-{max(nums)}")
        if len(refs) > 10:
            log.warning("%d clip frames: each is a full network forward here and in Nuke", len(refs))
        out = [(task.ref.number, stages.read_frame(task).plate) for task in stages.iter_tasks(loaded, refs)]
    except (clips.ClipError, frame_io.FrameReadError) as exc:
        raise click.ClickException(str(exc)) from None
    return out, {"gamma_input": stages.resolve_gamma("auto", loaded)}


@main.command("parity-kit", context_settings=CONTEXT)
@click.argument("pt_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Folder to write the kit to (must not exist, unless --force).")
@click.option("--checkpoint", type=click.Path(dir_okay=True, path_type=str), default=None,
              help="Checkpoint the file was exported from (the eager reference every case is checked against). "
                   "Default: the one its manifest names, else the released CorridorKey_v1.0.pth.")
@click.option("--random-init", is_flag=True,
              help="The file was exported with --random-init (seed from the manifest, else --seed).")
@click.option("--seed", type=int, default=None, help="Seed of --random-init (default: the manifest's, else 0).")
@click.option("--device", default="cpu", show_default=True, help="Device to compute the references on.")
@click.option("--cat", "cat", default=None,
              help="Path of the .cat the script's Inference nodes load, written into the script as it is. "
                   "Default: the screen's .cat found on Nuke's plugin path, as the CorridorKey node finds it.")
@click.option("--renders", default=None,
              help="Folder the script's Write nodes write to (fp16: the same name + '-fp16'). Default: "
                   "renders/ and renders-fp16/ inside the kit.")
@click.option("--clip", type=click.Path(exists=True, path_type=Path), default=None,
              help="Add frames of your own clip: a clip folder (Input/ + AlphaHint/) or a video with --hint, "
                   "as `corridorkey run` reads it. Keyed at the knobs' defaults, Input Gamma as `corridorkey run "
                   "--gamma auto` picks it (Linear for EXR plates). Needs --frames.")
@click.option("--hint", "clip_hint", type=click.Path(exists=True, path_type=Path), default=None,
              help="With --clip: the hint folder or video (default: the clip's AlphaHint/).")
@click.option("--frames", "clip_frames", default=None,
              help="With --clip: the frame numbers to add, FIRST-LAST (e.g. 1001-1003). Each is a full forward "
                   "here and in Nuke: a few frames are enough.")
@click.option("--force", is_flag=True, help="Replace an existing kit folder (only once the new kit is complete).")
@_verbosity
def parity_kit_command(pt_file: Path, output: Path, checkpoint: Optional[str], random_init: bool,
                       seed: Optional[int], device: str, cat: Optional[str], renders: Optional[str],
                       clip: Optional[Path], clip_hint: Optional[Path], clip_frames: Optional[str], force: bool,
                       verbose: int, quiet: int) -> None:
    """Write a parity kit: plates, references and a Nuke script a TD renders on their own Nuke.

    The cases are the validation's pairwise knob sweep on small plates (soft edges and spill,
    superwhite and negative values, an odd size, a tiny one; blue-screen plates for a blue .pt),
    and optionally frames of your own clip (--clip PATH --frames A-B).
    Each reference is the .pt's output computed here, checked against the eager reference before
    anything is written. The kit holds parity.nk (fp32), parity_fp16.nk and, for a .pt with
    the CPU bfloat16 copy (the default export), parity_bf16.nk; the inputs and references as
    float EXR, kit.json (every case: input, knobs, render paths) and a README. The folder
    appears only when complete. Then, on the Nuke machine:

    \b
      nuke -x -F 1-N parity.nk            (add --gpu for the GPU; parity_fp16.nk for fp16;
                                           parity_bf16.nk: the CPU in bfloat16)
      export-torchscript parity-check KIT --mode cpu

    Exit status: 0 written, 1 the .pt does not match the reference or a write failed, 2 usage error.
    """
    _setup_logging(verbose - quiet)
    from corridorkey_export.exr import ExrError
    from corridorkey_export.parity import build_kit

    if output.exists() and not force:
        raise click.UsageError(f"--output {output} exists; choose another folder or pass --force")
    if (clip is None) != (clip_frames is None) or (clip_hint is not None and clip is None):
        raise click.UsageError("--clip needs --frames (and --frames and --hint need --clip)")
    frames, clip_knobs = _clip_frames(clip, clip_hint, clip_frames) if clip is not None else ([], None)
    dev = _device(device)
    module, model, _manifest, preview = _reference_model(pt_file, checkpoint, random_init, seed, dev)
    try:
        result = build_kit(pt_file, model, output, device=str(dev), renders=renders, cat=cat, force=force,
                           module=module, clip_frames=frames, clip_knobs=clip_knobs, preview_model=preview)
    except ExrError as exc:  # KitError included
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: no kit was written", err=True)
        raise click.exceptions.Exit(130) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write the kit to {output} ({exc.strerror or exc}); choose another "
                                   "--output") from None
    click.echo(f"Wrote the parity kit {result.path}: {result.cases} cases (frames 1-{result.cases}), references "
               f"within {result.max_eager_error:.3g} of the eager reference, {result.seconds:.1f} s.")
    click.echo(f"Next: copy it to the Nuke machine and follow {result.path / 'README.md'}")


@main.command("parity-check", context_settings=CONTEXT)
@click.argument("kit", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("renders", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--mode", type=click.Choice(["cpu", "gpu", "gpu-fp16", "cpu-bf16"]), default="cpu",
              show_default=True,
              help="How the renders were made: Nuke's CPU (fp32), the GPU (nuke --gpu, fp32), the GPU with "
                   "Optimize for Speed and Memory (parity_fp16.nk), or the CPU in bfloat16 (parity_bf16.nk, the "
                   "node's CPU Precision). Chooses the tolerance (docs/parity.md) and the default RENDERS.")
@click.option("--variant", type=click.Choice(["both", "inference", "gizmo"]), default="both", show_default=True,
              help="Judge the bare Inference node's renders, the CorridorKey node's, or both.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where report.md and the heat maps go. [default: RENDERS/parity-report]")
@_verbosity
def parity_check_command(kit: Path, renders: Optional[Path], mode: str, variant: str, report_dir: Optional[Path],
                         verbose: int, quiet: int) -> None:
    """Judge a parity kit's Nuke renders against its references.

    RENDERS is the folder the kit's Nuke script wrote to; default: the kit's renders/ (or
    renders-fp16/ with --mode gpu-fp16, renders-bf16/ with --mode cpu-bf16). Prints per case
    and channel the max and mean abs error and the share of pixels over the mode's tolerance;
    writes RENDERS/parity-report/report.md and a heat-map PNG per failing render. A missing or
    misnamed render is an error.

    \b
    Example:
      export-torchscript parity-check ck-kit --mode gpu

    Exit status: 0 every render passes, 1 any fails (the worst case is named) or a render is
    missing, 2 usage error.
    """
    _setup_logging(verbose - quiet)
    from corridorkey_export.exr import ExrError
    from corridorkey_export.parity import VARIANTS, check_renders, format_table

    variants = VARIANTS if variant == "both" else (variant,)
    try:
        report = check_renders(kit, renders, mode, variants, report_dir)
    except ExrError as exc:  # KitError included: a missing, misnamed or unreadable render
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the report folder cannot be written
        raise click.ClickException(f"cannot write the report ({exc.strerror or exc}: {exc.filename}); give a "
                                   "writable --report-dir") from None
    click.echo(format_table(report))
    click.echo(f"Report: {report.report_path}" + (f" ({len(report.heat_maps)} heat map(s) beside it)"
                                                   if report.heat_maps else ""))
    if not report.passed:
        w = report.worst
        raise click.ClickException(f"parity failed in {mode} mode: worst case {w.case} ({w.variant}), max abs error "
                                   f"{w.max_error:.3g} (tolerance {report.mode.tolerance:g})")


def _check_manifest_is_the_files(pt_file: Path, manifest: dict) -> None:
    """ClickException when the manifest's ``file_sha256`` is not ``pt_file``'s: its records (the checkpoint, the
    seed, the attention kernel) would then describe another file."""
    from corridorkey_model.network.checkpoint import sha256_of

    recorded = manifest.get("file_sha256")
    if not recorded:
        log.warning("the manifest beside %s records no file_sha256; trusting that it belongs to the file", pt_file)
        return
    actual = sha256_of(pt_file)
    if actual != recorded:
        raise click.ClickException(
            f"the manifest beside {pt_file} records SHA-256 {recorded}, but the file has {actual}: the manifest "
            f"belongs to another export (the .pt was replaced or re-exported). Put the file's own manifest beside "
            f"it, or move the manifest away and name the weights with --checkpoint PATH.")
    log.info("manifest: file SHA-256 matches (%s)", actual)


def _manifest_checkpoint(pt_file: Path, recorded: dict) -> Optional[str]:
    """The checkpoint the manifest names, as a path that exists here, or None for the released file from the
    Hugging Face cache. A relative path (older manifests) is taken from the manifest's folder. ClickException
    when a file given by the user at export time is not there: no silent switch to other weights."""
    path = Path(recorded["path"]).expanduser()
    if not path.is_absolute():
        path = pt_file.absolute().parent / path
    if path.is_file():
        log.info("using the checkpoint named in the manifest: %s", path)
        return str(path)
    if recorded.get("source") in ("huggingface cache", "downloaded"):
        log.info("the manifest's checkpoint %s (the released file) is not here: using this machine's Hugging Face "
                 "cache; its SHA-256 must be the manifest's", path)
        return None
    raise click.ClickException(
        f"the manifest says {pt_file.name} was exported from {recorded['path']} (SHA-256 {recorded.get('sha256')}), "
        f"which is not at {path}. Give that checkpoint with --checkpoint PATH.")


__all__ = ["main"]
