"""``corridorkey farm-job``: Open Job Description templates, run for real with openjd-cli.

Fast tests write templates for tiny clips (no model) and run them with ``openjd run`` and a
stand-in program that records its command line, which ``corridorkey run``'s own parser then
reads back. Slow tests key a clip through ``openjd run`` (random weights, S = 64, NOT a keyer)
and compare every output with a plain ``corridorkey run``, and kill a task mid-chunk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from corridorkey_model.pipeline import clips, farm, frame_io
from corridorkey_model.pipeline import outputs as output_layout
from corridorkey_model.pipeline.cli import RUN_OPTIONS, main, run
from corridorkey_model.testing import green_screen_plate

pytest.importorskip("openjd.model", reason="openjd-model is not installed (pip install -e '.[test]')")
pytest.importorskip("openjd.cli", reason="openjd-cli is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(os.name == "nt", reason="the stand-in programs here are POSIX scripts")

S = 64
FOLDERS = ("Matte", "FG", "Processed", "Comp")


# --------------------------------------------------------------------------- helpers


def make_clip(root: Path, numbers, h: int = 64, w: int = 96, names=None) -> Path:
    """A clip folder: Input/shot.NNNN.png plates and AlphaHint/ hints (8-bit)."""
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    for i, n in enumerate(numbers):
        p = green_screen_plate(h, w, seed=i)
        name = names[i] if names else f"shot.{n:04d}"
        cv2.imwrite(str(root / "Input" / f"{name}.png"), frame_io.to_uint8(p[..., 2::-1]))
        cv2.imwrite(str(root / "AlphaHint" / f"hint_{i:03d}.png"), frame_io.to_uint8(p[..., 3]))
    return root


def farm_job(*args):
    result = CliRunner().invoke(main, ["farm-job", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def task_values(template: dict, step: int = 0):
    """The task parameter values openjd-model gives a step's tasks, at the template's defaults."""
    from openjd.model import StepParameterSpaceIterator, create_job, decode_job_template, preprocess_job_parameters

    decoded = decode_job_template(template=template, supported_extensions=template.get("extensions", []))
    paths = {d["name"]: "/x" for d in template["parameterDefinitions"] if d["type"] == "PATH"}
    values = preprocess_job_parameters(job_template=decoded, job_parameter_values=paths,
                                       job_template_dir=Path("/"), current_working_dir=Path("/"))
    job = create_job(job_template=decoded, job_parameter_values=values)
    space = job.steps[step].parameterSpace
    return [t[farm.FRAMES_PARAM].value for t in StepParameterSpaceIterator(space=space)]


def openjd(*args, env=None, timeout=600):
    """``openjd ARGS --output json``: (exit status, parsed result)."""
    proc = subprocess.run([sys.executable, "-m", "openjd", *map(str, args), "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=timeout)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError:
        return proc.returncode, {"status": "unparsed", "message": proc.stdout + proc.stderr}


def recorder(tmp_path: Path) -> Path:
    """A stand-in for ``corridorkey``: appends its arguments, as JSON, to $CK_RECORD."""
    prog = tmp_path / "record_args"
    prog.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "with open(os.environ['CK_RECORD'], 'a') as f:\n"
                    "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    prog.chmod(0o755)
    return prog


def recorded_commands(tmp_path: Path, template: Path, *params, extra=()):
    """Run the job with ``openjd run`` (its program must be :func:`recorder`); the argument lists, in order."""
    record = tmp_path / f"record-{time.monotonic_ns()}.jsonl"
    env = {**os.environ, "CK_RECORD": str(record)}
    p_args = [a for p in params for a in ("-p", p)]
    status, result = openjd("run", template, *p_args, *extra, env=env)
    assert status == 0 and result["status"] == "success", result
    return [json.loads(line) for line in record.read_text().splitlines()]


def parsed_run(argv) -> dict:
    """``corridorkey run``'s parameters for the command line a task ran (``argv[0] == 'run'``)."""
    assert argv[0] == "run"
    return run.make_context("run", list(argv[1:])).params


def corridorkey_program(tmp_path: Path) -> Path:
    """The installed ``corridorkey`` script beside this Python, or a wrapper calling the same ``main``."""
    installed = Path(sys.executable).parent / "corridorkey"
    if installed.exists():
        return installed
    prog = tmp_path / "corridorkey"
    prog.write_text(f"#!{sys.executable}\nfrom corridorkey_model.pipeline.cli import main\nmain()\n")
    prog.chmod(0o755)
    return prog


def outputs(out_dir: Path) -> dict:
    """Every visible output file below ``out_dir`` (not the hidden temporary ones): relative path -> pixels."""
    return {str(p.relative_to(out_dir)): cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            for folder in FOLDERS for p in sorted((out_dir / folder).glob("*")) if not p.name.startswith(".")}


def expected_names(numbers, image_ext=".exr"):
    return sorted(f"{folder}/shot.{n:04d}{ {'Processed': '.exr', 'Comp': '.png'}.get(folder, image_ext)}"
                  for folder in FOLDERS for n in numbers)


# --------------------------------------------------------------------------- the template


def test_template_passes_openjd_check_and_chunks_cover_the_clip(tmp_path):
    clip = make_clip(tmp_path / "Shot_010", range(1001, 1006))
    job = tmp_path / "job.yaml"
    result, text = farm_job(clip, "--chunk", 2, "--output", job, "--random-init", "--img-size", S)
    assert result.exit_code == 0, text
    assert "5 frame(s), 3 task(s)" in text and f"-p ClipPath={clip}" in text

    status, checked = openjd("check", job)
    assert status == 0 and checked["status"] == "success", checked
    template = load(job)
    assert template["specificationVersion"] == "jobtemplate-2023-09"
    assert template["extensions"] == ["TASK_CHUNKING"]
    (task_param,) = template["steps"][0]["parameterSpace"]["taskParameterDefinitions"]
    assert task_param["type"] == "CHUNK[INT]" and task_param["range"] == "1001-1005"
    assert task_values(template) == ["1001-1002", "1003-1004", "1005-1005"]
    # PATH parameters carry no default (openjd and Deadline Cloud refuse absolute ones)
    clip_param = next(d for d in template["parameterDefinitions"] if d["name"] == "ClipPath")
    assert "default" not in clip_param and clip_param["dataFlow"] == "INOUT"


def test_every_run_option_is_a_job_parameter_and_reaches_run_unchanged(tmp_path):
    clip = make_clip(tmp_path / "Shot_020", range(1, 4))
    ckpt = tmp_path / "weights.pth"
    with open(ckpt, "wb") as f:  # only its size and first bytes are checked (as run does before loading)
        f.truncate(2 << 20)
    out_dir = tmp_path / "keyed"
    given = {"--checkpoint": ckpt, "--img-size": 96, "--despill": 2.5, "--gamma": "linear", "--refiner": 0.25,
             "--despeckle-size": 7, "--temporal": 0.5, "--device": "cpu", "--output-dir": out_dir, "--format": "png",
             "--exr-type": "float", "--exr-compression": "piz", "--io-threads": 3, "--hint": clip / "AlphaHint"}
    args = [a for kv in given.items() for a in kv] + ["--despeckle", "--overwrite"]
    job = tmp_path / "job.yaml"
    result, text = farm_job(clip, "--chunk", 2, "--output", job, "--command", recorder(tmp_path), *args)
    assert result.exit_code == 0, text

    template = load(job)
    names = {d["name"] for d in template["parameterDefinitions"]}
    # one parameter per run option (the chunk's --frames comes from the task), named after its flag;
    # an option without a default (the paths here) only when given
    def flag(spec):
        return (spec.farm_decls or spec.decls)[0].split("/")[0]

    expected = {farm.param_name_for(flag(s)) for s in RUN_OPTIONS
                if not s.per_task and (s.kwargs.get("default") is not None or flag(s) in given)}
    assert names == expected | {"ClipPath", "ChunkSize"}
    assert "RandomInit" in names and "OutputDir" in names and "Frames" not in names

    paths = [f"ClipPath={clip}", f"Checkpoint={ckpt}", f"OutputDir={out_dir}", f"Hint={clip / 'AlphaHint'}"]
    commands = recorded_commands(tmp_path, job, *paths)
    assert len(commands) == 2
    params = [parsed_run(argv) for argv in commands]
    assert [p["frame_range"] for p in params] == [(1, 2), (3, 3)]
    p = params[0]
    assert p["path"] == clip and p["checkpoint"] == ckpt and p["output"] == out_dir and p["hint"] == clip / "AlphaHint"
    assert (p["img_size"], p["despill"], p["gamma"], p["refiner"], p["despeckle_size"]) == (96, 2.5, "linear", 0.25, 7)
    assert p["temporal"] == 0.5  # --temporal reaches every task: chunks then key their neighbours too
    assert p["devices"] == [torch.device("cpu")]
    assert (p["despeckle"], p["overwrite"], p["random_init"]) == (True, True, False)
    assert (p["image_format"], p["exr_type"], p["exr_compression"], p["io_threads"]) == ("png", "float", "piz", 3)

    # a job parameter set at submission reaches run; a value outside the option's range is refused
    commands = recorded_commands(tmp_path, job, *paths, "Despill=7", "Despeckle=--no-despeckle", "ChunkSize=3")
    assert len(commands) == 1 and parsed_run(commands[0])["despill"] == 7.0
    assert parsed_run(commands[0])["despeckle"] is False and parsed_run(commands[0])["frame_range"] == (1, 3)
    status, result = openjd("run", job, *[a for p in paths for a in ("-p", p)], "-p", "Despill=11")
    assert status != 0 and "Despill" in result["message"]


def test_defaults_are_runs_defaults(tmp_path):
    clip = make_clip(tmp_path / "Shot_030", [1])
    job = tmp_path / "job.yaml"
    result, text = farm_job(clip, "--output", job, "--command", recorder(tmp_path))
    assert result.exit_code == 0, text
    assert "no --checkpoint" in text  # each node would fetch the weights
    (argv,) = recorded_commands(tmp_path, job, f"ClipPath={clip}")
    from_task = parsed_run(argv)
    plain = run.make_context("run", [str(clip), "--frames", "1-1"]).params
    assert from_task == plain


def test_option_types_map_to_parameter_types():
    import click

    def param(decls, value, **kw):
        return farm.job_parameter(farm.RunArgument(click.Option(decls, **kw), value, "P"))

    choice = param(["--screen"], "blue", type=click.Choice(["green", "blue", "auto"]), default="green")
    assert choice.definition["type"] == "STRING" and choice.definition["allowedValues"] == ["green", "blue", "auto"]
    assert choice.definition["default"] == "blue" and choice.args() == ["--screen={{Param.P}}"]
    flag = param(["--despeckle/--no-despeckle"], True, default=False)
    assert flag.definition["allowedValues"] == ["--despeckle", "--no-despeckle"]
    assert flag.definition["default"] == "--despeckle" and flag.args() == ["{{Param.P}}"]
    ranged = param(["--size"], 9, type=click.IntRange(min=0, max=100, max_open=True), default=3)
    assert (ranged.definition["type"], ranged.definition["minValue"], ranged.definition["maxValue"]) == ("INT", 0, 99)
    unbounded = param(["--gain"], 0.5, type=float, default=1.0)
    assert unbounded.definition["type"] == "FLOAT" and "minValue" not in unbounded.definition
    path = farm.job_parameter(farm.RunArgument(click.Option(["--out"], type=click.Path(file_okay=False)), "rel",
                                               "Out", data_flow="OUT", per_clip=True))
    assert path.definition["objectType"] == "DIRECTORY" and path.value == os.path.abspath("rel")
    assert path.args("Shot_1") == ["--out={{Param.Out}}/Shot_1"] and "default" not in path.definition
    assert param(["--hint"], None, type=click.Path()) is None  # not given: left out of the job
    assert param(["--gain"], None, type=float) is None
    with pytest.raises(farm.FarmJobError, match="--fast/--no-fast"):
        param(["--fast"], False, is_flag=True)


def test_explicit_chunking_and_gaps_in_frame_numbers(tmp_path):
    clip = make_clip(tmp_path / "Shot_040", [1001, 1002, 1003, 1010, 1011])
    jobs = {}
    for mode in ("extension", "explicit"):
        jobs[mode] = tmp_path / f"{mode}.yaml"
        result, text = farm_job(clip, "--chunk", 2, "--chunking", mode, "--output", jobs[mode],
                                "--command", recorder(tmp_path))
        assert result.exit_code == 0, text
        status, checked = openjd("check", jobs[mode])
        assert status == 0, checked
    # CHUNK[INT], CONTIGUOUS: chunks stop at the gap; explicit: two existing frames per task across it
    assert task_values(load(jobs["extension"])) == ["1001-1002", "1003-1003", "1010-1011"]
    explicit = load(jobs["explicit"])
    assert "extensions" not in explicit and "ChunkSize" not in {d["name"] for d in explicit["parameterDefinitions"]}
    assert task_values(explicit) == ["1001-1002", "1003-1010", "1011-1011"]
    # each explicit task keys exactly its frames: --frames picks them from the clip by number
    commands = recorded_commands(tmp_path, jobs["explicit"], f"ClipPath={clip}")
    loaded = clips.load_clip(clips.scan(clip)[0])
    everything = output_layout.OutputSettings(overwrite=True)
    picked = [[r.number for r in output_layout.select_frames(loaded, parsed_run(a)["frame_range"], everything).todo]
              for a in commands]
    assert picked == [[1001, 1002], [1003, 1010], [1011]]


def test_folder_of_clips_one_step_per_clip(tmp_path):
    shots = tmp_path / "shots"
    make_clip(shots / "Shot_A", [1001, 1002, 1003])
    make_clip(shots / "Shot_B", [1, 2], names=["left", "right"])  # no numbers in the names: 1, 2 by position
    (shots / "notes").mkdir()  # no Input/: not a clip
    out = tmp_path / "keyed"
    bundle = tmp_path / "bundle"
    result, text = farm_job(shots, "--chunk", 2, "--output", bundle, "--output-dir", out, "--command",
                            recorder(tmp_path))
    assert result.exit_code == 0, text
    assert f"deadline bundle submit {bundle}" in text
    template = load(bundle / "template.yaml")
    assert [s["name"] for s in template["steps"]] == ["Shot_A", "Shot_B"]
    values = {v["name"]: v["value"] for v in load(bundle / "parameter_values.yaml")["parameterValues"]}
    assert values == {"ClipPath": str(shots), "OutputDir": str(out)}
    params = {d["name"]: d for d in template["parameterDefinitions"]}
    assert params["ClipPath"]["dataFlow"] == "IN" and params["OutputDir"]["dataFlow"] == "OUT"

    commands = recorded_commands(tmp_path, bundle / "template.yaml", *(f"{k}={v}" for k, v in values.items()))
    tasks = [(p["path"], p["output"], p["frame_range"]) for p in map(parsed_run, commands)]
    # each task keys one clip where `corridorkey run shots --output keyed` would put it
    by_name = {s.name: s for s in clips.scan(shots, output=out)}
    assert tasks == [(shots / "Shot_A", by_name["Shot_A"].output_dir, (1001, 1002)),
                     (shots / "Shot_A", by_name["Shot_A"].output_dir, (1003, 1003)),
                     (shots / "Shot_B", by_name["Shot_B"].output_dir, (1, 2))]
    for path, output, _frames in tasks:
        (source,) = clips.scan(path, output=output)
        assert source.output_dir == by_name[path.name].output_dir


def test_video_clip_names_its_output_folder(tmp_path):
    video = tmp_path / "take3.mp4"
    frame_io.write_video(video, [green_screen_plate(64, 96, seed=i)[..., :3] for i in range(3)])
    hint = make_clip(tmp_path / "hintclip", [1, 2, 3]) / "AlphaHint"
    job = tmp_path / "job.json"
    result, text = farm_job(video, "--hint", hint, "--output", job, "--chunk", 5)
    assert result.exit_code == 0, text
    template = json.loads(job.read_text())
    params = {d["name"]: d for d in template["parameterDefinitions"]}
    assert params["ClipPath"]["objectType"] == "FILE" and params["ClipPath"]["dataFlow"] == "IN"
    assert params["OutputDir"]["dataFlow"] == "OUT" and params["Hint"]["dataFlow"] == "IN"
    assert f"OutputDir={tmp_path / 'take3_Output'}" in text and task_values(template) == ["1-3"]


def test_bad_chunk_empty_range_and_other_errors_write_nothing(tmp_path):
    clip = make_clip(tmp_path / "Shot_050", range(1001, 1004))
    job = tmp_path / "job.yaml"
    empty = tmp_path / "no_hints"
    empty.mkdir()
    (tmp_path / "w.pth").write_bytes(b"")  # given paths must exist, as run checks them
    for args, code, needle in [
        (["--chunk", 0], 2, "--chunk"),
        (["--frames", "2000-2010"], 1, "no frames in 2000-2010; it has frames 1001-1003"),
        (["--frames", "1003-1001"], 2, "before the first"),
        (["--img-size", 100], 2, "multiple of 32"),
        (["--device", "gpu:0"], 2, "gpu:0"),
        (["--despill", 12], 2, "12"),
        (["--random-init", "--checkpoint", tmp_path / "w.pth"], 2, "not both"),
        (["--hint", empty], 1, f"hint folder {empty} holds no frames"),
    ]:
        result, text = farm_job(clip, "--output", job, *args)
        assert result.exit_code == code, (args, text)
        assert needle in text, (args, text)
        assert not job.exists() and not list(tmp_path.glob(".job.yaml*")), args
    result, text = farm_job(clip / "Input" / "shot.1001.png", "--output", job)
    assert result.exit_code == 1 and "not a video" in text
    with pytest.raises(farm.FarmJobError, match="at least 1 frame"):
        farm.build_job(clip, False, [farm.ClipFrames("x", None, (1,))], [], chunk=0, chunked=True)
    with pytest.raises(farm.FarmJobError, match="--chunk 2 or more"):
        farm.build_job(clip, False, [farm.ClipFrames("x", None, tuple(range(1025)))], [], chunk=1, chunked=False)


def test_auto_chunking_follows_openjd_model_and_farm_job_needs_it(tmp_path, monkeypatch):
    clip = make_clip(tmp_path / "Shot_055", [1, 2, 3])
    monkeypatch.setattr(farm, "supports_task_chunking", lambda: False)  # an openjd-model without the extension
    result, text = farm_job(clip, "--chunk", 2, "--output", tmp_path / "old.yaml")
    assert result.exit_code == 0, text
    assert "explicit frame ranges" in text and task_values(load(tmp_path / "old.yaml")) == ["1-2", "3-3"]
    result, text = farm_job(clip, "--chunking", "extension", "--output", tmp_path / "x.yaml")
    assert result.exit_code == 2 and "--chunking explicit" in text

    monkeypatch.setitem(sys.modules, "openjd.model", None)  # not installed
    result, text = farm_job(clip, "--output", tmp_path / "job.yaml")
    assert result.exit_code == 1 and "pip install 'corridorkey-nuke[farm]'" in text
    assert not (tmp_path / "job.yaml").exists()


def test_range_helpers():
    assert farm.range_expression([5, 1, 2, 3, 9]) == "1-3,5,9"
    assert farm.contiguous_chunks([1, 10, 11, 12] + list(range(18, 51)), 10) == \
        ["1-1", "10-12", "18-27", "28-37", "38-47", "48-50"]  # RFC 0001's example
    assert farm.explicit_chunks([7, 1, 3, 5], 3) == ["1-5", "7-7"]


# --------------------------------------------------------------------------- keying through openjd run


def _wait_for(predicate, proc, what, timeout=300.0):
    t0 = time.monotonic()
    while not predicate():
        assert proc.poll() is None, f"the task exited ({proc.returncode}) before {what}"
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.mark.slow
def test_openjd_run_keys_like_corridorkey_run_and_a_task_killed_mid_chunk_resumes(tmp_path):
    """One clip, two tasks of 8 frames. The first task's command is killed (SIGKILL, a crashed node)
    and cancelled (SIGTERM, the farm) mid-chunk; then ``openjd run`` runs the whole job. Every frame's
    four outputs must equal a plain ``corridorkey run``'s, each written once, none partial.
    (One scenario, as each task is a process that imports torch and builds the network.)"""
    numbers = list(range(1, 17))
    chunk = 8
    clip = make_clip(tmp_path / "Shot_060", numbers, h=128, w=192)
    opts = ["--random-init", "--img-size", S, "--despill", 4, "--device", "cpu", "--io-threads", 1]
    plain = CliRunner().invoke(main, ["run", str(clip), "--output", str(tmp_path / "plain"), *map(str, opts)])
    assert plain.exit_code == 0, plain.output
    reference = outputs(tmp_path / "plain")
    assert sorted(reference) == expected_names(numbers)

    recorded, job = tmp_path / "recorded.yaml", tmp_path / "job.yaml"
    for path, program in ((recorded, recorder(tmp_path)), (job, corridorkey_program(tmp_path))):
        result, text = farm_job(clip, "--chunk", chunk, "--output", path, "--command", program, *opts)
        assert result.exit_code == 0, text
    first, second = recorded_commands(tmp_path, recorded, f"ClipPath={clip}")
    assert parsed_run(first)["frame_range"] == (1, 8) and parsed_run(second)["frame_range"] == (9, 16)
    task = [str(corridorkey_program(tmp_path)), *first]  # the first task's command, as the farm runs it
    out_dir = clip / "Output"

    def done():  # Comp/ is each frame's last output to be renamed into place
        comp = out_dir / "Comp"
        return len([p for p in comp.glob("*.png") if not p.name.startswith(".")]) if comp.is_dir() else 0

    def hidden():
        return set(out_dir.rglob(".*"))

    # 1. SIGKILL after the first frame: final names hold complete files only (temporary ones are hidden)
    proc = subprocess.Popen(task, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: done() >= 1, proc, "the first frame")
    proc.kill()
    proc.wait()
    killed_at = done()
    assert 1 <= killed_at < chunk, "the task finished its chunk before it could be killed"
    for name, pixels in outputs(out_dir).items():
        assert pixels is not None and np.array_equal(pixels, reference[name]), name
    left_by_kill = hidden()
    assert Path(out_dir / ".corridorkey-locks") in left_by_kill, "SIGKILL leaves its lock (a dead pid: stale)"

    # 2. SIGTERM one frame later: run stops as on Ctrl-C (exit 130) and leaves no temporary file
    proc = subprocess.Popen(task, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: done() > killed_at, proc, "another frame")
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    # the rerun took over the dead task's stale lock, swept the temporary files it left for these
    # frames, and left none of its own (its lock released)
    assert hidden() == set(), hidden()
    cancelled_at = done()
    assert cancelled_at < chunk, "the task finished its chunk before it could be cancelled"

    # 3. the whole job through openjd run: the first task keys only what is missing, the second its chunk
    status, result = openjd("run", job, "-p", f"ClipPath={clip}")
    assert status == 0 and result["status"] == "success" and result["chunks_run"] == 2, result
    log = "\n".join(str(entry.get("message", entry)) for entry in result.get("logs", []))
    assert f"{chunk - cancelled_at} frame(s) keyed" in log and f"{cancelled_at} already written" in log, log
    final = outputs(out_dir)
    assert sorted(final) == expected_names(numbers)
    for name, pixels in final.items():
        assert np.array_equal(pixels, reference[name]), name


def test_farm_job_keys_the_layer_it_is_given(tmp_path):
    """Issue #31 defect 9: farm.clip_frames never passed --layer on, so a layered-EXR clip made no job."""
    from media_files import write_oiio

    root = tmp_path / "Shot_layers"
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    p = green_screen_plate(32, 48, seed=1)
    for n in (1001, 1002):
        write_oiio(root / "Input" / f"plate.{n}.exr", p[..., :3], names=["beauty.R", "beauty.G", "beauty.B"])
        frame_io.write_image(root / "AlphaHint" / f"h.{n}.png", p[..., 3])
    job = tmp_path / "job.yaml"
    result, text = farm_job(root, "--output", job, "--random-init")
    assert result.exit_code == 1 and "--layer" in text and not job.exists(), text
    result, text = farm_job(root, "--output", job, "--random-init", "--layer", "beauty")
    assert result.exit_code == 0, text
    params = {d["name"]: d for d in load(job)["parameterDefinitions"]}
    assert params["Layer"]["default"] == "beauty" and task_values(load(job)) == ["1001-1002"]


def test_farm_job_makes_the_colour_checks_of_run_and_carries_the_config_as_a_path(tmp_path, monkeypatch):
    """Issue #31 defect 10: a bad --working-space or a missing or relative --ocio-config made a job that could
    not run."""
    clip = make_clip(tmp_path / "Shot", range(1001, 1003))
    job = tmp_path / "job.yaml"
    for args, needle in [(["--ocio-config", "ocio://cg-config-latest", "--working-space", "Nope"], "Nope"),
                         (["--ocio-config", tmp_path / "nonexistent.ocio"], "nonexistent.ocio"),
                         (["--working-space", "ACEScg"], "only with an OCIO config")]:
        result, text = farm_job(clip, "--output", job, "--random-init", *args)
        assert result.exit_code == 2 and needle in text and not job.exists(), (args, text)
    import PyOpenColorIO as ocio

    (tmp_path / "cg.ocio").write_text(ocio.Config.CreateFromFile("ocio://cg-config-latest").serialize())
    monkeypatch.chdir(tmp_path)
    bundle = tmp_path / "bundle"
    result, text = farm_job(clip, "--output", bundle, "--random-init", "--ocio-config", "cg.ocio")
    assert result.exit_code == 0, text
    params = {d["name"]: d for d in load(bundle / "template.yaml")["parameterDefinitions"]}
    assert params["OcioConfig"]["type"] == "PATH" and params["OcioConfig"]["objectType"] == "FILE"
    values = {v["name"]: v["value"] for v in load(bundle / "parameter_values.yaml")["parameterValues"]}
    assert values["OcioConfig"] == str(tmp_path / "cg.ocio")  # resolved, as the clip and checkpoint are
    result, text = farm_job(clip, "--output", job, "--random-init", "--ocio-config", "ocio://cg-config-latest")
    assert result.exit_code == 0, text
    params = {d["name"]: d for d in load(job)["parameterDefinitions"]}
    assert params["OcioConfig"]["type"] == "STRING" and params["OcioConfig"]["default"] == "ocio://cg-config-latest"
