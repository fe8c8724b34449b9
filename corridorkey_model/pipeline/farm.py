"""Render-farm jobs: key a clip, or a folder of clips, as an Open Job Description job.

``corridorkey farm-job`` writes an OpenJD job template (``jobtemplate-2023-09``):
one step per clip whose tasks are chunks of frames, each task running
``corridorkey run CLIP --frames A-B`` with the job's parameters. ``run`` already
makes a chunk safe to kill and retry (atomic writes, resume), so the farm needs
nothing else. Deadline Cloud runs the template as a job bundle, ``openjd run``
runs it locally, and any other scheduler can use the same per-task command.

The job parameters are ``corridorkey run``'s own options (see
``corridorkey_model.pipeline.cli.RUN_OPTIONS``), mapped by their click types: an int or
float option becomes an INT/FLOAT parameter with the option's range, a choice a
STRING with allowed values, an on/off flag pair a STRING whose two allowed
values are the flag's spellings, a path a PATH parameter. Their defaults are the
values ``farm-job`` was given (so ``run``'s defaults, unless overridden).

Facts used here, and where they come from:

* Template schema, job/step/parameter fields and the 64-character step name /
  128-character job name limits: the OpenJD 2023-09 template schema
  (github.com/OpenJobDescription/openjd-specifications, wiki "2023-09 Template
  Schemas"), as validated by ``openjd-model``.
* ``CHUNK[INT]`` task parameters (extension ``TASK_CHUNKING``): RFC 0001 of the
  same repository. With ``rangeConstraint: CONTIGUOUS`` a task's value is always
  ``START-END`` (``"5-5"`` for one frame), and a range with gaps is chunked
  within its runs: ``1,10-12,18-50`` in chunks of 10 gives ``1-1``, ``10-12``,
  ``18-27``, ``28-37``, ``38-47``, ``48-50``. ``defaultTaskCount`` may be a
  format string such as ``{{Param.ChunkSize}}``.
* A PATH parameter's default must be a relative path inside the template's
  folder: ``openjd run`` (``openjd.model.preprocess_job_parameters``) and the
  Deadline Cloud client (``deadline.client.job_bundle.parameters``) both refuse
  an absolute one. So the paths get no default; their values go into the job
  bundle's ``parameter_values.yaml``, or ``-p NAME=VALUE`` for ``openjd run``.
* Deadline Cloud job bundle: a folder holding ``template.yaml`` (or ``.json``)
  and optionally ``parameter_values.yaml`` (``parameterValues: [{name, value}]``)
  and ``asset_references.yaml``; submitted with ``deadline bundle submit DIR``;
  PATH parameters with ``dataFlow`` IN / OUT / INOUT are what job attachments
  upload and download (docs.aws.amazon.com/deadline-cloud/latest/developerguide/
  build-job-bundle.html, build-job-bundle-parameters.html,
  build-job-bundle-chunking.html).
* ``openjd check TEMPLATE`` and ``openjd run TEMPLATE -p NAME=VALUE
  [--step NAME] [--task-param NAME=VALUE]``: ``openjd --help`` of openjd-cli 0.8.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from corridorkey_model.pipeline import clips as clip_layout
from corridorkey_model.pipeline import outputs

SPECIFICATION_VERSION = "jobtemplate-2023-09"
TASK_CHUNKING = "TASK_CHUNKING"
#: Job parameter that holds PATH (a clip folder, a folder of clips, or a video).
CLIP_PARAM = "ClipPath"
#: Job parameter that holds the frames per task (chunked form only).
CHUNK_PARAM = "ChunkSize"
#: Task parameter: the frame range of one task, ``FIRST-LAST`` (``run --frames``).
FRAMES_PARAM = "Frames"
#: A STRING task parameter's range may hold at most this many values (2023-09 schema).
MAX_EXPLICIT_CHUNKS = 1024
#: Spec limits without the FEATURE_BUNDLE_1 extension.
MAX_STEP_NAME = 64
MAX_JOB_NAME = 128
#: How long a cancelled task may take to stop after SIGTERM: ``run`` then discards
#: uncommitted frames; its runner waits up to 30 s for a busy inference thread.
NOTIFY_PERIOD_S = 90
CHUNKING_MODES = ("auto", "extension", "explicit")
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")


class FarmJobError(Exception):
    """The job cannot be written as asked; the message says what to change."""


# --------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class RunArgument:
    """One ``corridorkey run`` option and the value ``farm-job`` got for it (``None``: not given, left out)."""

    option: click.Option  # as ``run`` declares it: its spelling goes into the task's command line
    value: Any
    param_name: str  # the job parameter's name
    data_flow: str = "IN"  # PATH parameters: IN, OUT or INOUT (Deadline Cloud job attachments)
    per_clip: bool = False  # folder of clips: each clip's task gets VALUE/CLIP


@dataclass(frozen=True)
class JobParameter:
    """A job parameter and how a task passes it to ``run``."""

    definition: Dict[str, Any]  # the template's parameterDefinitions entry
    flag: Optional[str]  # ``--despill``: passed as ``--despill=VALUE``; None: the value is the argument
    per_clip: bool = False
    value: Optional[str] = None  # PATH parameters: the value (they carry no default in the template)

    @property
    def name(self) -> str:
        return self.definition["name"]

    def args(self, clip_folder: Optional[str] = None) -> List[str]:
        """The task's arguments for this parameter (``clip_folder``: the clip's folder in a folder of clips)."""
        ref = "{{Param.%s}}" % self.name
        if self.per_clip and clip_folder:
            ref += "/" + clip_folder
        return [ref] if self.flag is None else [f"{self.flag}={ref}"]


@dataclass(frozen=True)
class ClipFrames:
    """One clip of the job: its name, its folder below PATH (folder of clips only) and its frame numbers."""

    name: str
    folder: Optional[str]
    frames: Tuple[int, ...]  # sorted, distinct


@dataclass(frozen=True)
class FarmJob:
    """A job template and the values of its PATH parameters."""

    template: Dict[str, Any]
    parameter_values: Dict[str, str]  # name -> absolute path
    chunked: bool  # True: CHUNK[INT] (TASK_CHUNKING); False: explicit FIRST-LAST ranges
    tasks: int  # how many tasks, at the default chunk size


# --------------------------------------------------------------------------- frames and chunks


def range_expression(frames: Sequence[int]) -> str:
    """Sorted distinct frame numbers as an OpenJD integer range expression: ``1,3,5-9``."""
    parts = []
    for first, last in _runs(frames):
        parts.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(parts)


def _runs(frames: Sequence[int]) -> List[Tuple[int, int]]:
    """Runs of consecutive numbers: ``[1, 3, 4, 5]`` -> ``[(1, 1), (3, 5)]``."""
    runs: List[Tuple[int, int]] = []
    for n in sorted(set(frames)):
        if runs and n == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def contiguous_chunks(frames: Sequence[int], size: int) -> List[str]:
    """The tasks of a ``CHUNK[INT]`` ``CONTIGUOUS`` parameter: each run cut into ``size`` frames (RFC 0001)."""
    chunks = []
    for first, last in _runs(frames):
        for start in range(first, last + 1, size):
            chunks.append(f"{start}-{min(start + size - 1, last)}")
    return chunks


def explicit_chunks(frames: Sequence[int], size: int) -> List[str]:
    """``FIRST-LAST`` of each group of ``size`` frames in number order (gaps between numbers fall inside
    a chunk; ``run --frames`` keys the frames that exist in the range)."""
    ordered = sorted(set(frames))
    return [f"{g[0]}-{g[-1]}" for g in (ordered[i:i + size] for i in range(0, len(ordered), size))]


def clip_frames(path: Path, hint: Optional[Path], output: Optional[Path],
                frame_range: Optional[Tuple[int, int]], auto_hint: int = 0,
                layer: Optional[str] = None) -> Tuple[bool, List[ClipFrames]]:
    """The clips at ``path`` and their frame numbers, read as ``corridorkey run`` reads them
    (``auto_hint``, the knob's value: 1 ``--hint auto``, no hint files needed; 2 with ``--garbage-matte``,
    ``hint`` is the garbage matte; ``layer``: ``--layer``).

    Returns ``(folder_of_clips, clips)``. Raises :class:`clip_layout.ClipError` for a bad clip
    layout or a ``frame_range`` that holds no frame of a clip.
    """
    sources = clip_layout.scan(path, hint=hint, output=output,
                               garbage_matte=auto_hint == 2)
    folder = path.is_dir() and all(s.input_path.parent != path for s in sources)
    clips = []
    everything = outputs.OutputSettings(overwrite=True)  # the job covers done frames too: tasks skip them
    for clip, source in zip(clip_layout.load_clips(sources, layer, auto_hint=auto_hint == 1,
                                                   garbage_matte=auto_hint == 2), sources):
        refs = outputs.select_frames(clip, frame_range, everything).todo
        numbers = tuple(sorted({r.number for r in refs}))
        clips.append(ClipFrames(clip.name, source.input_path.parent.name if folder else None, numbers))
    return folder, clips


# --------------------------------------------------------------------------- job parameters


def param_name_for(flag: str) -> str:
    """``--exr-compression`` -> ``ExrCompression`` (an OpenJD identifier)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", flag) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or "-"):
        raise FarmJobError(f"option {flag} gives no usable job parameter name ({name!r})")
    return name


_KEY_ORDER = ("name", "type", "objectType", "dataFlow", "allowedValues", "default", "minValue", "maxValue",
              "description")


def _ordered(definition: Dict[str, Any]) -> Dict[str, Any]:
    """A parameter definition with its keys in reading order (name and type first, description last)."""
    return dict(sorted(definition.items(), key=lambda kv: _KEY_ORDER.index(kv[0]) if kv[0] in _KEY_ORDER
                       else len(_KEY_ORDER)))


def _description(option: click.Option) -> str:
    text = " ".join((option.help or "").split())
    return (f"{text} (corridorkey run {option.opts[0]})" if text else f"corridorkey run {option.opts[0]}")[:2048]


def _range_bounds(option_type: click.ParamType) -> Dict[str, Any]:
    bounds: Dict[str, Any] = {}
    if isinstance(option_type, (click.IntRange, click.FloatRange)):
        if option_type.min is not None:
            bounds["minValue"] = option_type.min
        if option_type.max is not None:
            bounds["maxValue"] = option_type.max
        if isinstance(option_type, click.IntRange):  # an open int bound is the next whole number
            if option_type.min_open and option_type.min is not None:
                bounds["minValue"] = option_type.min + 1
            if option_type.max_open and option_type.max is not None:
                bounds["maxValue"] = option_type.max - 1
        elif option_type.min_open or option_type.max_open:
            raise FarmJobError("an open float range cannot be a job parameter's bounds")
    return bounds


def _is_keyword(option_type: click.ParamType, value: Any) -> bool:
    """Whether a path option's value is one of its words, not a path (the type's ``is_keyword`` or ``keywords``)."""
    test = getattr(option_type, "is_keyword", None)
    return bool(test(value)) if test is not None else value in getattr(option_type, "keywords", ())


def job_parameter(arg: RunArgument) -> Optional[JobParameter]:
    """The job parameter for one ``run`` option, or ``None`` for an optional one (a path) that was not given."""
    opt, value = arg.option, arg.value
    base: Dict[str, Any] = {"name": arg.param_name, "description": _description(opt)}
    if opt.multiple or opt.nargs != 1:
        raise FarmJobError(f"run option {opt.opts[0]} takes several values; a job parameter holds one")
    if opt.is_flag:
        if not (opt.is_bool_flag and opt.secondary_opts):
            raise FarmJobError(f"run option {opt.opts[0]} is a flag without an off spelling; declare it as "
                               f"{opt.opts[0]}/--no-{opt.opts[0].lstrip('-')} so a task can pass either")
        on, off = opt.opts[0], opt.secondary_opts[0]
        return JobParameter({**base, "type": "STRING", "allowedValues": [on, off],
                             "default": on if value else off}, flag=None)
    flag = opt.opts[0]
    if value is None:  # an optional value not given: the task's run keeps its own default
        return None
    if _is_keyword(opt.type, value):  # a path option given one of its words (--hint auto, --ocio-config ocio://...)
        return JobParameter({**base, "type": "STRING", "allowedValues": [str(value)], "default": str(value)}, flag)
    if isinstance(opt.type, click.Path):
        definition = {**base, "type": "PATH", "dataFlow": arg.data_flow}
        if not opt.type.dir_okay:
            definition["objectType"] = "FILE"
        elif not opt.type.file_okay:
            definition["objectType"] = "DIRECTORY"
        return JobParameter(definition, flag, arg.per_clip, os.path.abspath(os.fspath(value)))
    if isinstance(opt.type, click.Choice):
        return JobParameter({**base, "type": "STRING", "allowedValues": [str(c) for c in opt.type.choices],
                             "default": str(value)}, flag)
    if isinstance(opt.type, (click.types.IntParamType, click.IntRange)) and not isinstance(value, bool):
        return JobParameter({**base, "type": "INT", "default": int(value), **_range_bounds(opt.type)}, flag)
    if isinstance(opt.type, (click.types.FloatParamType, click.FloatRange)):
        return JobParameter({**base, "type": "FLOAT", "default": float(value), **_range_bounds(opt.type)}, flag)
    return JobParameter({**base, "type": "STRING", "default": str(value)}, flag)


def clip_parameter(path: Path, folder: bool, outputs_inside: bool) -> JobParameter:
    """``ClipPath``: the clip folder, folder of clips or video. INOUT when the outputs go inside it."""
    what = "folder of clip folders" if folder else ("video file" if path.is_file() else "clip folder")
    definition = {
        "name": CLIP_PARAM, "type": "PATH", "objectType": "FILE" if path.is_file() else "DIRECTORY",
        "dataFlow": "INOUT" if outputs_inside else "IN",
        "description": f"The {what} to key (corridorkey run PATH). The frame ranges of the tasks were read "
                       f"from it when the job was written: write a new job for another clip.",
    }
    return JobParameter(definition, None, per_clip=folder, value=os.path.abspath(os.fspath(path)))


# --------------------------------------------------------------------------- the template


def supports_task_chunking() -> bool:
    """Whether the installed ``openjd-model`` knows the ``TASK_CHUNKING`` extension (``CHUNK[INT]``)."""
    try:
        from openjd.model.v2023_09 import ExtensionName
    except ImportError:
        try:  # openjd-model 0.6-0.8 kept it in the private module
            from openjd.model.v2023_09._model import ExtensionName
        except ImportError:
            return False
    return TASK_CHUNKING in {e.value for e in ExtensionName}


def _step_name(clip: ClipFrames, taken: set) -> str:
    name = clip.name[:MAX_STEP_NAME]
    i = 2
    while name in taken:
        suffix = f" ({i})"
        name = clip.name[:MAX_STEP_NAME - len(suffix)] + suffix
        i += 1
    taken.add(name)
    return name


def _check_literal(text: str) -> str:
    if "{{" in text or "}}" in text:
        raise FarmJobError(f"{text!r} holds '{{{{' or '}}}}', which a job template reads as a format string; "
                           f"rename it")
    return text


def build_job(path: Path, folder: bool, clips: Sequence[ClipFrames], params: Sequence[JobParameter], *,
              chunk: int, chunked: bool, program: str = "corridorkey") -> FarmJob:
    """The job template: ``ClipPath`` and the run options as job parameters, one step per clip.

    ``chunked``: one ``CHUNK[INT]`` task parameter (extension TASK_CHUNKING) with a ``ChunkSize``
    job parameter; else a STRING task parameter listing each task's ``FIRST-LAST``.
    """
    if chunk < 1:
        raise FarmJobError(f"chunk size {chunk}: a task needs at least 1 frame")
    if not clips:
        raise FarmJobError(f"no clips to key in {path}")
    outputs_inside = not any(p.definition["type"] == "PATH" and p.definition.get("dataFlow") == "OUT"
                             for p in params)
    clip_param = clip_parameter(path, folder, outputs_inside)
    all_params = [clip_param, *params]
    names = [p.name for p in all_params] + ([CHUNK_PARAM] if chunked else [])
    if len(set(names)) != len(names):
        raise FarmJobError(f"two job parameters share a name: {names}")

    definitions = [_ordered(p.definition) for p in all_params]
    if chunked:
        definitions.append({"name": CHUNK_PARAM, "type": "INT", "default": chunk, "minValue": 1,
                            "description": "Frames per task. A task starts corridorkey once (loading the model) "
                                           "and keys its frames in order."})
    steps, tasks, taken = [], 0, set()
    for clip in clips:
        folder_name = _check_literal(clip.folder) if clip.folder else None
        if chunked:
            task_param = {"name": FRAMES_PARAM, "type": "CHUNK[INT]", "range": range_expression(clip.frames),
                          "chunks": {"defaultTaskCount": "{{Param.%s}}" % CHUNK_PARAM,
                                     "rangeConstraint": "CONTIGUOUS"}}
            tasks += len(contiguous_chunks(clip.frames, chunk))
        else:
            ranges = explicit_chunks(clip.frames, chunk)
            if len(ranges) > MAX_EXPLICIT_CHUNKS:
                raise FarmJobError(f"clip {clip.name}: {len(ranges)} tasks of {chunk} frame(s); a job template "
                                   f"lists at most {MAX_EXPLICIT_CHUNKS} per step: use --chunk "
                                   f"{-(-len(clip.frames) // MAX_EXPLICIT_CHUNKS)} or more")
            task_param = {"name": FRAMES_PARAM, "type": "STRING", "range": ranges}
            tasks += len(ranges)
        args = ["run", *clip_param.args(folder_name), "--frames={{Task.Param.%s}}" % FRAMES_PARAM]
        for p in params:
            args += p.args(folder_name)
        steps.append({
            "name": _step_name(clip, taken),
            "description": f"Key {clip.name}: frames {range_expression(clip.frames)}",
            "parameterSpace": {"taskParameterDefinitions": [task_param]},
            "script": {"actions": {"onRun": {
                "command": program, "args": args,
                "cancelation": {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": NOTIFY_PERIOD_S},
            }}},
        })
    job_name = _check_literal(f"CorridorKey {path.name}")[:MAX_JOB_NAME]
    template: Dict[str, Any] = {"specificationVersion": SPECIFICATION_VERSION}
    if chunked:
        template["extensions"] = [TASK_CHUNKING]
    template.update({
        "name": job_name,
        "description": (f"Key {len(clips)} clip(s) with corridorkey run, in tasks of up to {chunk} frame(s). "
                        f"Written by corridorkey farm-job."),
        "parameterDefinitions": definitions,
        "steps": steps,
    })
    values = {p.name: p.value for p in all_params if p.value is not None}
    return FarmJob(template, values, chunked, tasks)


def check_job(job: FarmJob, template_dir: Path) -> None:
    """Validate with ``openjd-model`` (as ``openjd check`` does) and instantiate the job with its values."""
    try:
        from openjd.model import DecodeValidationError, create_job, decode_job_template, preprocess_job_parameters
    except ImportError:
        raise FarmJobError("farm-job checks the template with openjd-model, which is not installed: "
                           "pip install 'corridorkey-nuke[farm]' (or pip install openjd-model)") from None
    extensions = job.template.get("extensions", [])
    try:
        template = decode_job_template(template=job.template, supported_extensions=extensions)
        values = preprocess_job_parameters(job_template=template, job_parameter_values=dict(job.parameter_values),
                                           job_template_dir=template_dir, current_working_dir=Path.cwd())
        create_job(job_template=template, job_parameter_values=values)
    except (DecodeValidationError, ValueError, RuntimeError) as exc:
        raise FarmJobError(f"the job template does not validate (openjd-model): {exc}") from exc


# --------------------------------------------------------------------------- writing


def _dump(obj: Dict[str, Any], path: Path, header: str = "") -> str:
    if path.suffix.lower() == ".json":
        return json.dumps(obj, indent=2) + "\n"
    import yaml

    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + text


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise FarmJobError(f"cannot write {path}: {exc.strerror or exc}") from exc


def job_files(out: Path) -> Tuple[Path, Optional[Path]]:
    """``(template, parameter values)`` for ``out``: a ``.yaml``/``.json`` file is the template alone;
    anything else is a Deadline Cloud job bundle folder (``template.yaml`` + ``parameter_values.yaml``)."""
    if out.suffix.lower() in TEMPLATE_SUFFIXES:
        return out, None
    return out / "template.yaml", out / "parameter_values.yaml"


def write_job(job: FarmJob, out: Path) -> Tuple[Path, Optional[Path]]:
    """Write the template (and, for a bundle folder, its parameter values); each file atomically."""
    template_path, values_path = job_files(out)
    try:
        template_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FarmJobError(f"cannot create {template_path.parent}: {exc.strerror or exc}") from exc
    header = ("Open Job Description job template written by corridorkey farm-job.\n"
              "Check: openjd check THIS_FILE. Run here: " + local_command(job, template_path) + "\n"
              "Each task runs `corridorkey run CLIP --frames FIRST-LAST ...`; a killed or retried task resumes.")
    _write_atomic(template_path, _dump(job.template, template_path, header))
    if values_path is not None:
        values = {"parameterValues": [{"name": k, "value": v} for k, v in job.parameter_values.items()]}
        _write_atomic(values_path, _dump(values, values_path, "Deadline Cloud job bundle parameter values "
                                                              "(the PATH parameters, which have no default)."))
    return template_path, values_path


def local_command(job: FarmJob, template_path: Path) -> str:
    """The ``openjd run`` command line that runs the whole job on this machine."""
    words = ["openjd", "run", os.fspath(template_path)]
    for name, value in job.parameter_values.items():
        words += ["-p", f"{name}={value}"]
    return " ".join(shlex.quote(w) for w in words)
