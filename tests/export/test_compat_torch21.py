"""The exported file on Nuke's runtime: load and run ``CorridorKey.pt`` in torch 2.1.2.

Nuke 15.1, 16 and 17 run TorchScript on a PyTorch 2.1-era libtorch. A synthetic
S=256 model is exported with the project's export (for each distinct set of
choices among the 2.1-era targets of :mod:`corridorkey_export.targets`), run on
fixed plates and knob settings here (torch of the main environment), and the
outputs are saved beside the ``.pt``. Then ``tests/compat/run_torchscript.py``
(torch and the standard library only, no project code) loads the file in a
separate cached environment with ``torch==2.1.2`` and compares: max abs error
<= 1e-5 in fp32. The despeckle (``corridorkey_model/keying/despeckle.py``) is checked the
same way in a small scripted module of its own, in fp32 and CPU fp16.

The torch 2.1.2 environment: ``$CORRIDORKEY_TORCH21_PYTHON`` (``.ci/run`` sets
it), else ``.ci/ensure-torch21`` builds or reuses the cached one (~4.5 GB, needs
PyPI on first use). ``CORRIDORKEY_SKIP_TORCH21=1`` skips these tests, explicitly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from typing import Dict, List

import despeckle_oracle
import numpy as np
import pytest
import torch
from repo_paths import REPO

from corridorkey_export.export import export_torchscript, make_preview_model
from corridorkey_export.targets import DEFAULT_TARGET, TARGETS
from corridorkey_model.keying.despeckle import despeckle
from corridorkey_model.keying.hint import rough_hint
from corridorkey_model.keying.knobs import KNOBS_BY_NAME
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor

RUNNER = REPO / "tests" / "compat" / "run_torchscript.py"
ENSURE = REPO / ".ci" / "ensure-torch21"
PYTHON_VAR = "CORRIDORKEY_TORCH21_PYTHON"
SKIP_VAR = "CORRIDORKEY_SKIP_TORCH21"

FP32_TOL = 1e-5
#: fp16 vs fp32 on CPU in the exporting torch; measured max ~3e-3 on these plates (docs/compatibility.md).
FP16_TOL = 1e-2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get(SKIP_VAR, "") not in ("", "0"),
                       reason=f"{SKIP_VAR} is set: the torch 2.1.2 compatibility tests are skipped on request"),
]


def _load_runner():
    spec = importlib.util.spec_from_file_location("corridorkey_compat_runner", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def _targets_21() -> Dict[str, str]:
    """One 2.1-era target name per distinct set of export choices (fused attention on/off)."""
    chosen: Dict[bool, str] = {}
    for name, target in TARGETS.items():
        if target.libtorch == "2.1":
            chosen.setdefault(target.fused_attn, name)
    return {f"nuke{name}-fused{int(fused)}": name for fused, name in chosen.items()}


def _knobs(**values) -> Dict[str, torch.Tensor]:
    """Knob values (spec defaults + overrides) as 0-d tensors, the runner's file format."""
    out = {}
    for name, spec in KNOBS_BY_NAME.items():
        value = spec.check(values.pop(name, spec.default))
        out[name] = torch.tensor(value, dtype=torch.float64 if spec.kind == "float" else torch.int64)
    assert not values, f"unknown knobs {values}"
    return out


def make_cases() -> List[dict]:
    """Fixed plates: square at S, non-square, odd and tiny, superwhites/negatives on a linear plate; knob sweep."""
    def case(name, h, w, knobs, **plate):
        return {"name": name, "input": plate_tensor(green_screen_plate(h, w, **plate)), "knobs": knobs}

    def damaged(c):  # NaN patch and +-inf (CG renders, broken EXRs): they count as 0 in the .pt
        x = c["input"].clone()
        x[..., 10:20, 10:20] = float("nan")
        x[0, 1, 40, 50] = float("inf")
        x[0, 3, 5, 60] = float("-inf")
        return dict(c, input=x)

    return [
        damaged(case("nan_inf_patch", 64, 80, _knobs(gamma_input=1), seed=4, linear=True)),
        case("square_defaults", 256, 256, _knobs(), seed=0),
        case("wide_despill_refiner_half", 72, 160, _knobs(despill_strength=7.5, refiner_strength=0.5), seed=1),
        case("odd_linear_extremes", 97, 61, _knobs(gamma_input=1, despill_strength=10.0, refiner_strength=0.0),
             seed=2, linear=True, extremes=True),
        case("tiny_17x9", 17, 9, _knobs(despill_strength=3.0), seed=3),
        # the despeckle inside the .pt (knob despeckle_size), switched on. The random network's alpha has no
        # solid islands here, so the island search itself is checked on 2.1.2 by the scripted-despeckle test below.
        case("despeckle_on", 96, 128, _knobs(despeckle_size=40, despill_strength=5.0), seed=5),
        # the automatic hint (corridorkey_model/keying/hint.py) inside the .pt: the hint channel ignored
        case("auto_hint", 180, 240, _knobs(auto_hint=1, despill_strength=5.0), seed=6),
        damaged(case("auto_hint_linear_nan_inf", 97, 131, _knobs(auto_hint=1, gamma_input=1), seed=7, linear=True)),
        # auto_hint 2 (issue 30): the automatic hint times the hint channel, a garbage matte
        case("auto_hint_garbage_matte", 120, 160, _knobs(auto_hint=2), seed=8),
        # issue #27: the preview path (the network traced at PREVIEW_SIZE, knob quality = 1)
        case("preview_wide", 72, 160, _knobs(quality=1, despill_strength=7.5, refiner_strength=0.5), seed=1),
        damaged(case("preview_auto_hint_linear_nan_inf", 97, 131, _knobs(quality=1, auto_hint=1, gamma_input=1),
                     seed=7, linear=True)),
    ]


#: fp16 on CPU in the exporting torch runs the refiner's convolutions on a slow reference kernel
#: (~70 s per frame at S=256 on 2 cores), so its check uses its own export at this S.
FP16_SIZE = 64
#: The preview resolution of the compat export (issue #27): its second traced network.
PREVIEW_SIZE = 128


@pytest.fixture(scope="module")
def torch21_python() -> Path:
    """The torch 2.1.2 interpreter; an explicit skip with ``CORRIDORKEY_SKIP_TORCH21=1``, never a silent one."""
    given = os.environ.get(PYTHON_VAR)
    if given:
        if not Path(given).is_file():
            pytest.fail(f"{PYTHON_VAR}={given} does not exist; unset it to build the environment with "
                        f"{ENSURE.relative_to(REPO)}, or set {SKIP_VAR}=1 to skip")
        return Path(given)
    proc = subprocess.run([str(ENSURE)], capture_output=True, text=True)  # builds once (minutes), then reuses
    if proc.returncode != 0:
        pytest.fail(f"could not build the torch 2.1.2 environment with {ENSURE.relative_to(REPO)} "
                    f"(needs PyPI on first use, ~4.5 GB):\n{proc.stderr[-3000:]}\n"
                    f"Set {PYTHON_VAR} to an interpreter with torch 2.1.2, or {SKIP_VAR}=1 to skip.")
    return Path(proc.stdout.strip().splitlines()[-1])


def run_old(python: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    """The runner in the torch 2.1.2 environment, isolated (-I: no project path, no PYTHONPATH)."""
    proc = subprocess.run([str(python), "-I", str(RUNNER), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    print(proc.stdout, proc.stderr, sep="\n")  # shown by pytest on failure
    return proc


@pytest.fixture(scope="module", params=list(_targets_21().values()), ids=list(_targets_21()))
def exported(request, tmp_path_factory, synthetic_model):
    """The synthetic S=256 model exported for a 2.1-era target with a preview path at PREVIEW_SIZE, with cases
    and this torch's outputs beside it."""
    folder = tmp_path_factory.mktemp(f"compat-nuke{request.param}")
    result = export_torchscript(synthetic_model, folder / "CorridorKey.pt", target_nuke=request.param,
                                random_init_seed=0, preview_model=make_preview_model(synthetic_model, PREVIEW_SIZE),
                                cpu_bf16=True)
    cases = make_cases()
    torch.save(cases, folder / "cases.pt")
    module = torch.jit.load(str(result.output), map_location="cpu").eval()
    outputs = runner.run_cases(module, cases, "fp32")
    runner.save_atomic({"torch": str(torch.__version__), "outputs": outputs}, str(folder / "expected.pt"))
    return {"folder": folder, "pt": result.output, "cases": folder / "cases.pt",
            "expected": folder / "expected.pt", "outputs": outputs, "fused_attn": result.fused_attn}


def test_fp32_loads_and_matches_on_torch21(exported, torch21_python):
    folder = exported["folder"]
    proc = run_old(torch21_python, exported["pt"], exported["cases"], folder / "torch21.pt", "--dtype", "fp32",
                   "--expected", exported["expected"], "--atol-fp32", FP32_TOL, cwd=folder)
    assert proc.returncode == 0, f"torch 2.1.2 rejected or mismatched the export:\n{proc.stdout[-4000:]}"
    assert "torch 2.1.2" in proc.stdout
    # Independent of the runner's own verdict: read its outputs back here and compare.
    got = torch.load(folder / "torch21.pt", weights_only=True)
    assert got["torch"].startswith("2.1.2")
    fp32 = {k: v for k, v in exported["outputs"].items() if k.startswith("fp32/")}
    assert set(got["outputs"]) == set(fp32)
    for key, want in fp32.items():
        assert got["outputs"][key].shape == want.shape, key
        assert float((got["outputs"][key] - want).abs().max()) <= FP32_TOL, key


def test_cases_exercise_the_knobs(exported):
    """The cases exercise the knobs: outputs with different knob settings differ (else parity proves little)."""
    out = exported["outputs"]
    square = out["fp32/square_defaults"]
    assert square.shape == (1, 4, 256, 256)
    assert torch.isfinite(square).all()
    extremes = out["fp32/odd_linear_extremes"]
    assert extremes.shape == (1, 4, 97, 61) and torch.isfinite(extremes).all()
    assert 0.0 <= float(extremes[:, 3].min()) and float(extremes[:, 3].max()) <= 1.0
    assert torch.isfinite(out["fp32/nan_inf_patch"]).all()  # the old runtime's run is compared with this
    # same plate, other knobs, in the exporting torch: the knob attributes are live in the saved file
    cases = {c["name"]: c for c in make_cases()}
    module = torch.jit.load(str(exported["pt"]), map_location="cpu").eval()
    base = cases["wide_despill_refiner_half"]
    for knob, value in base["knobs"].items():
        setattr(module, knob, runner.knob_value(value))
    module.refiner_strength = 1.0
    assert float((module(base["input"]) - out["fp32/wide_despill_refiner_half"]).abs().max()) > 1e-3
    auto = cases["auto_hint"]
    for knob, value in auto["knobs"].items():
        setattr(module, knob, runner.knob_value(value))
    module.auto_hint = 0
    assert float((module(auto["input"]) - out["fp32/auto_hint"]).abs().max()) > 1e-3
    # the preview path is another network: the same plate and knobs at quality 0 differ
    preview = cases["preview_wide"]
    for knob, value in preview["knobs"].items():
        setattr(module, knob, runner.knob_value(value))
    assert module.preview_size == PREVIEW_SIZE
    module.quality = 0
    assert float((module(preview["input"]) - out["fp32/preview_wide"]).abs().max()) > 1e-3


def test_fp16_cpu_in_exporting_torch_is_finite_and_close(tmp_path):
    """``.half()`` module and input (Nuke's "Optimize for Speed and Memory") on CPU, exporting torch, S=64."""
    model = make_random_model(FP16_SIZE, seed=1)
    result = export_torchscript(model, tmp_path / "CorridorKey.pt", target_nuke=DEFAULT_TARGET, random_init_seed=1)
    cases = [c for c in make_cases() if c["name"] in ("wide_despill_refiner_half", "odd_linear_extremes")]
    fp32 = runner.run_cases(torch.jit.load(str(result.output), map_location="cpu").eval(), cases, "fp32")
    fp16 = runner.run_cases(torch.jit.load(str(result.output), map_location="cpu").eval(), cases, "fp16")
    for case in cases:
        got, want = fp16["fp16/" + case["name"]], fp32["fp32/" + case["name"]]
        assert torch.isfinite(got).all(), case["name"]
        assert 0.0 <= float(got[:, 3].min()) and float(got[:, 3].max()) <= 1.0, case["name"]
        err = float((got - want).abs().max())
        print(f"fp16 vs fp32 on CPU, torch {torch.__version__}, {case['name']}: max abs err {err:.2e}")
        assert err <= FP16_TOL, case["name"]


def test_fp16_cpu_is_unsupported_by_torch21(exported, torch21_python):
    """Documented limitation: libtorch 2.1 has no CPU fp16 kernels for this network (Nuke: fp16 is GPU-only).

    If this starts passing, the runtime changed: update docs/compatibility.md and export/targets.py.
    """
    folder = exported["folder"]
    proc = run_old(torch21_python, exported["pt"], exported["cases"], folder / "torch21_fp16.pt", "--dtype", "fp16",
                   cwd=folder)
    assert proc.returncode == 1
    assert "cannot run" in proc.stdout and "not implemented for 'Half'" in proc.stdout


def test_cpu_bf16_copy_loads_and_runs_on_torch21(exported, torch21_python, tmp_path):
    """The file's CPU bfloat16 copy (attribute ``cpu_bf16`` = 1, issue #29) in torch 2.1.2: it loads, runs in
    bfloat16 (its output differs from fp32's), and stays within the validation's bf16 tolerance of the fp32
    output of the exporting torch, as it does there."""
    from corridorkey_export.validate import BF16_TOLERANCE

    names = ("square_defaults", "wide_despill_refiner_half")
    base = {c["name"]: c for c in make_cases() if c["name"] in names}
    cases = [dict(c, name="bf16_" + n, knobs=dict(c["knobs"], cpu_bf16=torch.tensor(1))) for n, c in base.items()]
    torch.save(cases, tmp_path / "cases_bf16.pt")
    here = runner.run_cases(torch.jit.load(str(exported["pt"]), map_location="cpu").eval(), cases, "fp32")
    proc = run_old(torch21_python, exported["pt"], tmp_path / "cases_bf16.pt", tmp_path / "torch21_bf16.pt",
                   "--dtype", "fp32", cwd=tmp_path)
    assert proc.returncode == 0, f"torch 2.1.2 could not run the bfloat16 copy:\n{proc.stdout[-4000:]}"
    got = torch.load(tmp_path / "torch21_bf16.pt", weights_only=True)["outputs"]
    for name in names:
        fp32 = exported["outputs"]["fp32/" + name]
        for where, out in (("torch 2.1.2", got["fp32/bf16_" + name]), (torch.__version__, here["fp32/bf16_" + name])):
            err = float((out - fp32).abs().max())
            print(f"{name}: bf16 copy in torch {where} vs fp32: max abs err {err:.2e}")
            assert torch.isfinite(out).all() and 0.0 <= float(out[:, 3].min()) <= float(out[:, 3].max()) <= 1.0
            assert 1e-4 < err <= BF16_TOLERANCE, (name, where, err)  # > 1e-4: it did run in bfloat16


def test_mismatch_is_reported(exported, torch21_python, tmp_path):
    """The check fails on a real mismatch: one expected value moved by 5e-5 (5x the tolerance)."""
    data = torch.load(exported["expected"], weights_only=True)
    key = "fp32/odd_linear_extremes"
    data["outputs"][key] = data["outputs"][key].clone()
    data["outputs"][key][0, 1, 40, 30] += 5e-5
    bad = tmp_path / "expected_perturbed.pt"
    torch.save(data, bad)
    proc = run_old(torch21_python, exported["pt"], exported["cases"], tmp_path / "out.pt", "--dtype", "fp32",
                   "--case", "odd_linear_extremes", "--case", "tiny_17x9", "--expected", bad, cwd=tmp_path)
    assert proc.returncode == 1
    assert "FAIL: 1 of 2 outputs differ" in proc.stdout
    assert key in proc.stdout.split("FAIL:")[-1]


def test_unloadable_file_is_reported(torch21_python, tmp_path):
    """The failure this test exists for: a file the old runtime cannot load makes the check fail.

    Scripting ``F.interpolate`` compiles all its modes, among them
    ``aten::_upsample_lanczos2d_aa`` which torch 2.1 lacks (why colour.py calls the
    bilinear antialiased aten op directly).
    """
    class Resize(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, size=[8, 8], mode="bilinear", antialias=True)

    pt = tmp_path / "interpolate.pt"
    torch.jit.save(torch.jit.script(Resize()), str(pt))
    cases = tmp_path / "cases.pt"
    torch.save([{"name": "x", "input": torch.rand(1, 4, 16, 16), "knobs": {}}], cases)
    proc = run_old(torch21_python, pt, cases, tmp_path / "out.pt", "--dtype", "fp32", cwd=tmp_path)
    assert proc.returncode == 1
    assert "cannot load" in proc.stdout
    assert not (tmp_path / "out.pt").exists()


# ------------------------------------------------------------------------- the automatic hint (corridorkey_model/keying/hint.py)


class HintProbe(torch.nn.Module):
    """The automatic hint in a scripted module: ``[1, 4, S, S]`` in, its RGB and the hint made from it out."""

    def __init__(self) -> None:
        super().__init__()
        self.screen = 1  # an int attribute, read on every call (green 1, blue 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, 0:3], rough_hint(x[:, 0:3], self.screen)], dim=1)


def _script_and_run_here(tmp_path, probe: torch.nn.Module, cases: List[dict], name: str):
    """Script ``probe``, save it and the cases, run them here (fp32 and CPU fp16); (the .pt, the outputs)."""
    pt = tmp_path / f"{name}.pt"
    torch.jit.save(torch.jit.script(probe), str(pt))
    torch.save(cases, tmp_path / "cases.pt")
    module = torch.jit.load(str(pt), map_location="cpu").eval()
    outputs = {**runner.run_cases(module, cases, "fp32"), **runner.run_cases(module, cases, "fp16")}
    runner.save_atomic({"torch": str(torch.__version__), "outputs": outputs}, str(tmp_path / "expected.pt"))
    return pt, outputs


def _run_in_torch21(tmp_path, torch21_python, pt: Path, outputs: dict, name: str) -> dict:
    """Load and run the saved probe in torch 2.1.2 on the same cases; its outputs must match (1e-6 / 1e-3)."""
    proc = run_old(torch21_python, pt, tmp_path / "cases.pt", tmp_path / "torch21.pt", "--dtype", "fp32",
                   "--dtype", "fp16", "--expected", tmp_path / "expected.pt", "--atol-fp32", 1e-6,
                   "--atol-fp16", 1e-3, cwd=tmp_path)
    assert proc.returncode == 0, f"torch 2.1.2 rejected or mismatched the {name}:\n{proc.stdout[-4000:]}"
    got = torch.load(tmp_path / "torch21.pt", weights_only=True)
    assert got["torch"].startswith("2.1.2") and set(got["outputs"]) == set(outputs)
    return got


def _hint_cases() -> List[dict]:
    """Green and blue plates at model resolutions, and an empty screen (tests/model/keying/test_hint.py's kind)."""
    def case(name, size, screen, seed, subject=True):
        rgb = green_screen_plate(size, size, seed=seed, screen_channel=screen)[..., :3]
        if not subject:  # the plate's screen colour everywhere
            rgb = rgb * 0 + rgb[0:1, 0:1]
        return {"name": name, "input": plate_tensor(np.concatenate([rgb, np.zeros_like(rgb[..., :1])], axis=2)),
                "knobs": {"screen": torch.tensor(screen, dtype=torch.int64)}}

    return [case("hint_green_256", 256, 1, 0), case("hint_blue_512", 512, 2, 1), case("hint_green_1024", 1024, 1, 2),
            case("hint_empty_256", 256, 1, 3, subject=False)]


def test_hint_scripted_loads_and_matches_on_torch21(tmp_path, torch21_python):
    """Scripted and saved here, loaded and run in torch 2.1.2 (fp32 and CPU fp16): the same hints."""
    cases = _hint_cases()
    pt, outputs = _script_and_run_here(tmp_path, HintProbe(), cases, "hint")
    for case in cases:  # what the comparison is worth: a matte with a subject and a screen, or none
        hint = outputs["fp32/" + case["name"]][0, 3]
        if case["name"] == "hint_empty_256":
            assert float(hint.max()) == 0.0
        else:
            assert float(hint.max()) == 1.0 and float(hint.min()) == 0.0, case["name"]
    _run_in_torch21(tmp_path, torch21_python, pt, outputs, "hint")


# --------------------------------------------------------------------------- despeckle (corridorkey_model/keying/despeckle.py)


class DespeckleProbe(torch.nn.Module):
    """The despeckle in a scripted module, as the wrapper holds it: ``[1, 4, H, W]`` in, its alpha despeckled."""

    def __init__(self) -> None:
        super().__init__()
        self.despeckle_size = 0  # an int attribute, read on every call (a knob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, 0:3], despeckle(x[:, 3:4], self.despeckle_size)], dim=1)


def _despeckle_cases() -> List[dict]:
    """Mattes with islands of many sizes (tests/support/despeckle_oracle.py) in the alpha of a ``[1, 4, H, W]`` input."""
    def case(name, h, w, size, seed):
        rgba = torch.rand(1, 4, h, w, generator=torch.Generator().manual_seed(seed))
        rgba[0, 3] = torch.from_numpy(despeckle_oracle.islands_matte(h, w, max(size, 2), seed))
        return {"name": name, "input": rgba, "knobs": {"despeckle_size": torch.tensor(size, dtype=torch.int64)}}

    return [case("despeckle_off", 64, 80, 0, 0), case("despeckle_50_odd", 97, 131, 50, 1),
            case("despeckle_400", 256, 384, 400, 2), case("despeckle_1080p", 1080, 1920, 400, 3)]


def test_despeckle_scripted_loads_and_matches_on_torch21(tmp_path, torch21_python):
    """Scripted and saved here, loaded and run in torch 2.1.2 (fp32 and CPU fp16): the same mattes."""
    cases = _despeckle_cases()
    pt, outputs = _script_and_run_here(tmp_path, DespeckleProbe(), cases, "despeckle")
    for case in cases:  # what the comparison is worth: the OpenCV oracle's mattes
        alpha = case["input"][0, 3].numpy()
        got = outputs["fp32/" + case["name"]][0, 3].numpy()
        size = int(case["knobs"]["despeckle_size"])
        want = alpha if size == 0 else despeckle_oracle.despeckle(alpha, size)
        assert float(abs(got - want).max()) <= 1e-5, case["name"]
        assert size == 0 or float(abs(got - alpha).max()) > 0.5, case["name"]
        assert torch.isfinite(outputs["fp16/" + case["name"]]).all(), case["name"]  # fp16 vs fp32: test_despeckle.py
    got = _run_in_torch21(tmp_path, torch21_python, pt, outputs, "despeckle")
    for key, want in outputs.items():
        assert float((got["outputs"][key] - want).abs().max()) <= (1e-6 if key.startswith("fp32/") else 1e-3), key
