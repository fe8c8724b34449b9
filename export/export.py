"""Export: eager GreenFormer -> ``CorridorKey.pt`` (TorchScript) + ``CorridorKey.manifest.json``.

Two steps (docs/DESIGN.md, "The Nuke contract"): ``torch.jit.trace`` the inner
network at ``[1, 4, S, S]`` (timm cannot be scripted), then ``torch.jit.script``
the :class:`~corridorkey_export.wrapper.CorridorKeyNuke` wrapper that holds
every knob branch. The file and its manifest are written atomically
(:mod:`corridorkey_model.atomic`), with the Verify button's test plate and
reference values beside them (:mod:`corridorkey_export.verify_data`).

Python API (used by the CLI, the benchmarks and the compatibility tests)::

    from corridorkey_model.network.checkpoint import load_model
    from corridorkey_export.export import export_torchscript

    model, info = load_model("CorridorKey_v1.0.pth", img_size=2048)
    result = export_torchscript(model, "CorridorKey.pt", checkpoint_info=info, validate=True)
    result.timings   # {"trace": s, "script": s, "save": s, "check": s, "verify": s, "validate": s}
    result.validation.passed
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
from torch import nn

from corridorkey_export.attention import fused_attention
from corridorkey_export.exr import write_exr
from corridorkey_export.graphcheck import find_constant_devices
from corridorkey_export.nuke_contract import CHANNELS_IN, CHANNELS_OUT, GREEN, OUTPUT_SCALE, NukeModel
from corridorkey_export.targets import DEFAULT_TARGET, TARGETS
from corridorkey_export.validate import (
    VERIFY_PLATE_NAME,
    ValidationReport,
    trace_example,
    trace_examples,
    validate_torchscript,
)
from corridorkey_export.verify_data import make_verify_data, verify_paths
from corridorkey_export.wrapper import CorridorKeyNuke
from corridorkey_model import atomic
from corridorkey_model.keying.knobs import KNOBS
from corridorkey_model.network.checkpoint import CheckpointInfo, model_at_size, sha256_of, share_weights
from corridorkey_model.network.greenformer import check_img_size

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
PathLike = Union[str, os.PathLike]


class ExportError(Exception):
    """The export could not be done; the message says what was wrong and what to do."""


class ValidationFailed(ExportError):
    """``validate=True`` and the file does not match the reference; ``report`` holds the figures."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_torchscript` wrote, with per-step wall times in seconds."""

    output: Path
    manifest_path: Path
    img_size: int
    target_nuke: str
    fused_attn: bool
    timings: Dict[str, float]
    manifest: Dict[str, Any]
    validation: Optional[ValidationReport] = None
    #: Peak resident set size of the process (MiB) at the end of each step, where the OS reports it.
    peak_rss_mb: Dict[str, float] = field(default_factory=dict)
    #: The preview path's resolution (knob quality = 1), 0 when the file has none.
    preview_size: int = 0


def manifest_path_for(output: PathLike) -> Path:
    """``CorridorKey.pt`` -> ``CorridorKey.manifest.json`` (beside the file)."""
    return Path(output).with_suffix(".manifest.json")


def read_manifest(output: PathLike) -> Optional[Dict[str, Any]]:
    """The manifest beside ``output``, or ``None`` if there is none."""
    path = manifest_path_for(output)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} is not a readable manifest ({exc}); delete it or re-export") from exc


def check_output_writable(output: PathLike) -> Path:
    """Resolve ``output`` and make sure a file can be written there (before any expensive work)."""
    output = Path(output).expanduser()
    if output.is_dir():
        raise ExportError(f"--output {output} is a directory; give the file name, e.g. {output / 'CorridorKey.pt'}")
    if output.suffix != ".pt":
        raise ExportError(f"--output {output} must end in .pt (Nuke's CatFileCreator expects a .pt TorchScript file)")
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{output.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ExportError(f"cannot write to {parent} ({atomic.why_write_failed(output, exc)}); choose another "
                          f"--output if that cannot be fixed") from exc
    return output


#: glibc ``mallopt`` parameter number of ``M_MMAP_THRESHOLD``.
_M_MMAP_THRESHOLD = -3
#: Where glibc's dynamic mmap threshold settles once large blocks have been freed (its maximum).
_GLIBC_MMAP_THRESHOLD_MAX = 32 << 20


def _glibc():
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_returning_depth = 0


@contextlib.contextmanager
def returning_freed_memory(threshold: int = 1 << 20) -> Iterator[None]:
    """Within the block, glibc serves allocations of ``threshold`` bytes or more with ``mmap``.

    At S = 2048 the network allocates and frees many 1-32 MB buffers between
    small ones; from glibc's heap they fragment it and freed memory is not
    returned to the OS (measured: 10.2 GiB peak RSS for the trace, 5.6 GiB in
    this block; the validation after it 8.6 GiB without). Buffers above 32 MB
    are mmapped anyway, so at S = 2048 this costs little time; at S = 512 the
    page faults make a forward ~20 % slower, which is why inference does not use
    it. On exit of the outermost block the threshold is set to 32 MiB (where
    glibc's own dynamic threshold settles) and the freed heap is handed back
    (``malloc_trim``). No effect off glibc. Blocks nest.
    """
    global _returning_depth
    libc = _glibc()
    if libc is None:
        yield
        return
    if _returning_depth == 0:
        libc.mallopt(_M_MMAP_THRESHOLD, int(threshold))
    _returning_depth += 1
    try:
        yield
    finally:
        _returning_depth -= 1
        if _returning_depth == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_THRESHOLD_MAX)
            libc.malloc_trim(0)


def trace_network(model: nn.Module, img_size: int, device: Union[str, torch.device] = "cpu",
                  fused_attn: Optional[bool] = None, example: Optional[torch.Tensor] = None,
                  outputs: Optional[List[Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]]] = None
                  ) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` the GreenFormer at ``[1, 4, S, S]``.

    ``example``: the network input to trace on (default: the first end-to-end input of the
    default validation, :func:`~corridorkey_export.validate.trace_example`). Tracing runs the
    eager network once on it; with ``outputs`` (a list), ``(example, eager outputs)`` is
    appended to it, so the validation can use that forward as its reference instead of
    running it again. Traced without autograd, and with glibc returning freed buffers at once
    (:func:`returning_freed_memory`).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    example = (trace_example(img_size) if example is None else example).to(device)
    seen: List[Tuple[torch.Tensor, ...]] = []
    hook = model.register_forward_hook(lambda _m, _i, out: seen.append(tuple(t.detach() for t in out)))
    try:
        with torch.no_grad(), fused_attention(model, fused_attn), returning_freed_memory():
            traced = torch.jit.trace(model, example, check_trace=False)
    finally:
        hook.remove()
    if outputs is not None and len(seen) == 1:
        outputs.append((example, seen[0]))
    return traced


# CPU bfloat16 copy (issue #29) begin
def trace_network_bf16(model: nn.Module, img_size: int, fused_attn: Optional[bool] = None,
                       example: Optional[torch.Tensor] = None) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` the GreenFormer on the CPU under ``torch.autocast("cpu", torch.bfloat16)``.

    The trace records autocast's casts as ``aten::to`` nodes: matmuls, convolutions and the
    attention run in bfloat16, the norms and softmax-sensitive ops in fp32, as autocast
    chooses, and the outputs are bfloat16. The parameters stay fp32 and are the model's own,
    so a file holding both traces stores the weights once. Always traced on the CPU (CPU
    autocast records nothing for CUDA tensors): a model on another device is moved there.
    """
    model = model.cpu().eval()
    example = (trace_example(img_size) if example is None else example).cpu()
    with torch.no_grad(), fused_attention(model, fused_attn), returning_freed_memory(), \
            torch.autocast("cpu", dtype=torch.bfloat16):
        return torch.jit.trace(model, example, check_trace=False)
# CPU bfloat16 copy end


def script_wrapper(traced: nn.Module, img_size: int, screen_channel: int = 1,
                   preview_traced: Optional[nn.Module] = None, preview_size: int = 0,
                   traced_bf16: Optional[nn.Module] = None) -> torch.jit.ScriptModule:
    """``torch.jit.script`` the knob wrapper around the traced network (screen channel baked in), with the
    network traced at ``preview_size`` as its preview path if given, and ``traced_bf16``, the CPU bfloat16
    trace (:func:`trace_network_bf16`), run when ``cpu_bf16`` = 1."""
    return torch.jit.script(CorridorKeyNuke(traced, img_size, screen_channel, preview_traced, preview_size,
                                            traced_bf16))


# ---- quality (issue #27): the preview network ----

def check_preview_size(preview_size: int, img_size: int) -> int:
    """``preview_size`` if it can be the preview resolution of a file at ``img_size``, else ``ValueError``."""
    check_img_size(preview_size)
    if not preview_size < img_size:
        raise ValueError(f"the preview size {preview_size} must be smaller than the model resolution {img_size} "
                         f"(e.g. {max(64, img_size // 2 // 32 * 32)}); a file without a preview path needs no "
                         f"--preview-size")
    return preview_size


def make_preview_model(final: nn.Module, preview_size: int, pos_embed: Optional[torch.Tensor] = None) -> nn.Module:
    """The GreenFormer at ``preview_size`` with ``final``'s weights, shared
    (:func:`corridorkey_model.network.checkpoint.model_at_size`); ExportError if more than the
    position embedding would differ."""
    preview_size = check_preview_size(preview_size, int(final.img_size))
    try:
        return model_at_size(final, preview_size, pos_embed)
    except ValueError as exc:
        raise ExportError(str(exc)) from None

# ---- end quality ----


def check_loaded(module: nn.Module, img_size: int, screen: NukeModel = GREEN, preview_size: int = 0) -> None:
    """Structural checks of a loaded file: S, preview size, screen channel, knob attributes with their types,
    no constant device."""
    if int(getattr(module, "img_size", -1)) != img_size:
        raise ExportError(f"the saved file runs at S={getattr(module, 'img_size', None)}, expected {img_size}")
    if not hasattr(module, "preview_size"):
        raise ExportError("the saved file has no preview_size attribute: it was exported before the quality knob "
                          "(issue #27) and lacks that knob; re-export it with this version")
    if int(getattr(module, "preview_size", -1)) != preview_size:
        raise ExportError(f"the saved file's preview size is {getattr(module, 'preview_size', None)}, expected "
                          f"{preview_size} (0: no preview path)")
    if int(getattr(module, "screen_channel", -1)) != screen.channel:
        raise ExportError(f"the saved file despills channel {getattr(module, 'screen_channel', None)}, expected "
                          f"{screen.channel} for the {screen.name} screen")
    for k in KNOBS:
        value = getattr(module, k.name, None)
        if type(value) is not k.python_type:
            raise ExportError(f"the saved file's knob {k.name} is {value!r}, expected a {k.kind}")
    devices = find_constant_devices(module)
    if devices:
        raise ExportError("the saved graph holds constant device(s), so it would not follow Nuke's GPU / CPU "
                          "choice: " + "; ".join(devices[:5]))


def _check_space_for(module: nn.Module, output: Path) -> None:
    """ExportError when the disk holding ``output`` has less free space than the module's tensors need.

    ``torch.jit.save`` cannot report a full disk: its archive writer throws from a destructor
    and the process aborts (SIGABRT, the temporary file left behind). So the space is checked
    first: the tensors' bytes plus 5 % and 1 MiB for the archive's code and headers. (A disk
    that other writers fill during the save can still abort it.)
    """
    # by storage, as the file stores them: the CPU bfloat16 copy holds the very same parameters
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in module.state_dict().values()}
    needed = int(sum(storages.values()) * 1.05) + (1 << 20)
    free = atomic.free_bytes(output.parent)
    if free is not None and free < needed:
        raise ExportError(f"cannot write {output}: the disk holding {output.parent} is full ({free} bytes free, "
                          f"the file needs about {needed}); free some space or choose another --output")


def _peak_rss_mb() -> Optional[float]:
    """Peak RSS of this process in MiB (Linux: ru_maxrss is in KiB), or None where unavailable."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _versions() -> Dict[str, str]:
    import timm

    return {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version()}


def build_manifest(output: Path, img_size: int, target_nuke: str, fused_attn: bool, file_sha256: str,
                   checkpoint_info: Optional[CheckpointInfo], random_init_seed: Optional[int],
                   timings: Dict[str, float], validation: Optional[ValidationReport],
                   screen: NukeModel = GREEN, preview_size: int = 0) -> Dict[str, Any]:
    """The JSON manifest written beside the .pt."""
    if checkpoint_info is not None:
        checkpoint: Dict[str, Any] = {"random_init": False, **dataclasses.asdict(checkpoint_info)}
    else:
        checkpoint = {"random_init": True, "seed": random_init_seed,
                      "note": "random weights (corridorkey_model.testing.make_random_model): NOT a keyer"}
    target = TARGETS[target_nuke]
    return {
        "format": MANIFEST_FORMAT,
        "file": output.name,
        "file_sha256": file_sha256,
        "model_id": screen.model_id,
        # The weights cannot tell a green checkpoint from a blue one: which file was used for which screen.
        "screen": {"name": screen.name, "channel": screen.channel, "cat_file": screen.cat_filename},
        "img_size": img_size,
        # issue #27: the resolution the quality knob's Preview keys at; 0 = no preview path (quality ignored)
        "preview_size": preview_size,
        "checkpoint": checkpoint,
        "versions": _versions(),
        "nuke_target": {"name": target_nuke, **dataclasses.asdict(target), "fused_attn_used": fused_attn},
        "channels_in": list(CHANNELS_IN),
        "channels_out": list(CHANNELS_OUT),
        "output_scale": OUTPUT_SCALE,
        "knobs": [k.to_dict() for k in KNOBS],
        "export_seconds": {k: round(v, 3) for k, v in timings.items()},
        "validation": None if validation is None else validation.to_dict(),
    }


def export_torchscript(model: nn.Module, output: PathLike = "CorridorKey.pt", *,
                       device: Union[str, torch.device] = "cpu", target_nuke: str = DEFAULT_TARGET,
                       checkpoint_info: Optional[CheckpointInfo] = None, random_init_seed: Optional[int] = None,
                       validate: bool = False, validate_kwargs: Optional[Dict[str, Any]] = None,
                       screen: NukeModel = GREEN, preview_model: Optional[nn.Module] = None,
                       cpu_bf16: bool = False) -> ExportResult:
    """Export ``model`` (an eager GreenFormer at its ``img_size``) to ``output`` and the manifest beside it.

    Steps, each logged with its wall time (``ExportResult.timings``): trace the
    network on ``device`` with the Nuke target's attention kernel, script the
    knob wrapper, save (on CPU, to a temp file in the output directory), check
    the reloaded file (S, knob attributes, no constant device) and, with
    ``validate``, compare it with the eager reference
    (:func:`~corridorkey_export.validate.validate_torchscript`, extra arguments
    in ``validate_kwargs``). ``cpu_bf16``: also trace the network's CPU bfloat16 copy
    (:func:`trace_network_bf16`; the file's ``cpu_bf16`` attribute runs it). Only then are the .pt and the manifest moved into
    place; any failure or interrupt leaves neither temp file nor partial output.
    Raises :class:`ExportError` (:class:`ValidationFailed` for a parity failure).

    ``preview_model``: the same network at a smaller S (:func:`make_preview_model`, weights
    shared), traced too and run by the file when its ``quality`` knob is 1.

    The Verify reference is the validation's end-to-end call on the Verify plate at the
    defaults; without ``validate`` (or with custom plates) it costs one more forward of the file.
    """
    if target_nuke not in TARGETS:
        raise ExportError(f"unknown Nuke target {target_nuke!r}; choose from {', '.join(TARGETS)}")
    output = check_output_writable(output)
    manifest_path = manifest_path_for(output)
    img_size = int(model.img_size)
    preview_size = 0 if preview_model is None else int(preview_model.img_size)
    if preview_model is not None:
        try:
            check_preview_size(preview_size, img_size)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
    fused = TARGETS[target_nuke].fused_attn
    timings: Dict[str, float] = {}
    temps: List[Path] = []

    peak_rss: Dict[str, float] = {}

    def step(name: str, started: float) -> None:
        timings[name] = time.perf_counter() - started
        rss = _peak_rss_mb()
        if rss is not None:
            peak_rss[name] = rss
        log.info("%-8s done in %.1f s (peak RSS so far %s)", name, timings[name],
                 f"{rss / 1024:.1f} GiB" if rss is not None else "n/a")

    try:
        t = time.perf_counter()
        log.info("trace    GreenFormer at [1, 4, %d, %d] on %s (Nuke %s target: fused attention %s)",
                 img_size, img_size, device, target_nuke, "on" if fused else "off")
        traced_run: List[Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]] = []
        examples = trace_examples(img_size, preview_size, screen.channel)
        traced = trace_network(model, img_size, device, fused, example=examples[img_size],
                               outputs=traced_run if validate else None)
        step("trace", t)
        preview_traced = None
        if preview_model is not None:
            t = time.perf_counter()
            log.info("trace    the preview GreenFormer at [1, 4, %d, %d] (weights shared)", preview_size, preview_size)
            preview_traced = trace_network(preview_model, preview_size, device, fused, example=examples[preview_size],
                                           outputs=traced_run if validate else None)
            step("trace_preview", t)

        traced_bf16 = None
        if cpu_bf16:  # issue #29
            t = time.perf_counter()
            log.info("trace16  the CPU bfloat16 copy (attribute cpu_bf16), under CPU autocast, same weights")
            traced_bf16 = trace_network_bf16(model, img_size, fused)
            model.to(device)
            step("trace16", t)

        t = time.perf_counter()
        log.info("script   knob wrapper (%s)", ", ".join(k.name for k in KNOBS))
        scripted = script_wrapper(traced, img_size, screen.channel, preview_traced, preview_size, traced_bf16).cpu()
        traced_bf16_included = traced_bf16 is not None
        step("script", t)

        t = time.perf_counter()
        tmp_pt = atomic.temp_path_for(output)
        temps.append(tmp_pt)
        log.info("save     %s", output)
        _check_space_for(scripted, output)
        try:
            torch.jit.save(scripted, str(tmp_pt))
        except (RuntimeError, OSError) as exc:  # torch reports a failed write as RuntimeError, without errno
            raise ExportError(f"cannot write {output}: "
                              f"{atomic.why_write_failed(output, exc if isinstance(exc, OSError) else None)}"
                              f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        del scripted, traced, preview_traced, traced_bf16
        step("save", t)

        t = time.perf_counter()
        log.info("check    reloading the file: S, preview size, knob attributes, no constant device")
        loaded = torch.jit.load(str(tmp_pt), map_location="cpu")
        check_loaded(loaded, img_size, screen, preview_size)
        file_sha = sha256_of(tmp_pt)
        step("check", t)

        report = None
        verify_output: List[torch.Tensor] = []
        defaults = {k.name: k.typed_default for k in KNOBS}

        def keep_verify(plate, knobs, out) -> None:  # the Verify reference: the Verify plate at the defaults
            if plate.name == VERIFY_PLATE_NAME and knobs == defaults and not verify_output:
                verify_output.append(out.detach().float().cpu())

        if validate:
            t = time.perf_counter()
            log.info("validate against the eager reference")
            kwargs = dict(validate_kwargs or {})
            kwargs.setdefault("fused_attn", fused)
            kwargs.setdefault("reference_outputs", traced_run)  # the traces' eager forwards, reused
            kwargs.setdefault("preview_model", preview_model)
            on_cpu = torch.device(device).type == "cpu"
            if on_cpu:  # the Verify reference is the file's CPU fp32 output
                kwargs.setdefault("on_forward", keep_verify)
            with returning_freed_memory():
                report = validate_torchscript(loaded if on_cpu else tmp_pt, model, device=device, **kwargs)
            del traced_run
            step("validate", t)
            if not report.passed:
                raise ValidationFailed(f"validation failed: {report.problems[0]} (and {len(report.problems) - 1} "
                                       f"more); {output} was not written", report)

        t = time.perf_counter()
        if verify_output:
            log.info("verify   the Verify button's test plate and reference values (the validation's output on it)")
        else:
            log.info("verify   the Verify button's test plate and reference values (1 forward of the file)")
        with returning_freed_memory():
            verify_plate, verify_json = make_verify_data(loaded, screen, file_sha,
                                                         verify_output[0] if verify_output else None,
                                                         plate_name=verify_paths(output)[0].name)
        del loaded
        step("verify", t)

        manifest = build_manifest(output, img_size, target_nuke, fused, file_sha, checkpoint_info,
                                  random_init_seed, timings, report, screen, preview_size)
        manifest["cpu_bf16"] = {  # issue #29: the network's CPU bfloat16 copy, run when cpu_bf16 = 1
            "included": traced_bf16_included, "attribute": "cpu_bf16",
            "max_abs_vs_fp32": None if report is None else report.max_abs_bf16,
            "validated": None if report is None else (report.bf16_skipped or "checked end to end")}
        verify_exr, verify_path = verify_paths(output)
        manifest["verify"] = {"plate": verify_exr.name, "reference": verify_path.name,
                              "samples": len(verify_json["samples"])}
        try:
            tmp_json = atomic.temp_path_for(manifest_path)
            temps.append(tmp_json)
            tmp_json.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
            tmp_verify_exr, tmp_verify = atomic.temp_path_for(verify_exr), atomic.temp_path_for(verify_path)
            temps += [tmp_verify_exr, tmp_verify]
            write_exr(tmp_verify_exr, verify_plate)
            tmp_verify.write_text(json.dumps(verify_json, indent=2) + "\n")
            atomic.commit(tmp_verify_exr, verify_exr)
            atomic.commit(tmp_verify, verify_path)
            atomic.commit(tmp_pt, output)
            atomic.commit(tmp_json, manifest_path)
        except OSError as exc:
            raise ExportError(f"cannot write {manifest_path} and the Verify files beside it: "
                              f"{atomic.why_write_failed(manifest_path, exc)}") from exc
        log.info("wrote %s (%.0f MB), %s, and the Verify button's %s and %s", output, output.stat().st_size / 2**20,
                 manifest_path.name, verify_path.name, verify_exr.name)
    finally:
        for tmp in temps:
            atomic.discard(tmp)
    return ExportResult(output, manifest_path, img_size, target_nuke, fused, dict(timings), manifest, report,
                        peak_rss, preview_size)


__all__ = [
    "ExportError", "ValidationFailed", "ExportResult", "export_torchscript", "trace_network", "trace_network_bf16",
    "script_wrapper", "check_preview_size", "share_weights", "make_preview_model",
    "check_loaded", "check_output_writable", "build_manifest", "manifest_path_for", "read_manifest",
    "returning_freed_memory",
]
