"""The TorchScript export at S=256 (and 512 from the 256 checkpoint): parity, knobs, graph, manifest.

One export per module (the session's synthetic checkpoint, random weights: NOT a keyer).
The reference is the eager model + the shared frame math; a few checks below use an
independent few-line computation instead, so that a shared bug cannot hide.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from corridorkey_export.export import export_torchscript, manifest_path_for
from corridorkey_export.graphcheck import find_constant_devices
from corridorkey_export.nuke_contract import MODEL_ID
from corridorkey_export.targets import DEFAULT_TARGET, TARGETS
from corridorkey_export.validate import PlateSpec, knob_settings, validate_torchscript
from corridorkey_export.wrapper import set_knobs
from corridorkey_model.keying import frame
from corridorkey_model.keying.hint import rough_hint
from corridorkey_model.keying.knobs import KNOBS
from corridorkey_model.network.checkpoint import load_model, sha256_of

pytestmark = pytest.mark.slow

S = 256


@pytest.fixture(scope="module")
def model_and_info(synthetic_checkpoint):
    return load_model(synthetic_checkpoint, img_size=S)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, model_and_info):
    model, info = model_and_info
    out = tmp_path_factory.mktemp("export256") / "CorridorKey.pt"
    return export_torchscript(model, out, checkpoint_info=info, cpu_bf16=True)


@pytest.fixture(scope="module")
def loaded(exported):
    return torch.jit.load(str(exported.output))


@pytest.fixture()
def knobs_reset(loaded):
    yield loaded
    set_knobs(loaded, **{k.name: k.typed_default for k in KNOBS})


def plate(h, w, seed=0, linear=False, extremes=False):
    return PlateSpec("p", h, w, seed=seed, extremes=extremes).tensor(linear=linear)


# --------------------------------------------------------------------------- parity


def test_full_knob_sweep_matches_reference_within_1e5(exported, model_and_info):
    model, _ = model_and_info
    # one plate (odd, non-square, larger than S, superwhite + negative): every call is a full forward;
    # tiny plates are covered below and by the pairwise sweep of the CLI test
    plates = [PlateSpec("odd-larger-than-S-superwhite", 301, 417, seed=5, extremes=True)]
    # quality at its default: this file has no preview path, so quality 1 would repeat every call
    # (tests/export/test_preview.py proves that it is ignored, and the preview path of a file that has one)
    settings = [s for s in knob_settings("full") if s["quality"] == 0]
    report = validate_torchscript(exported.output, model, plates=plates, sweep="full", settings=settings,
                                  fp16="off", progress=False)
    # gamma x despill x refiner x despeckle x auto_hint, each end to end
    assert len([r for r in report.rows if r.stage == "forward"]) == len(settings) == 2 * 3 * 3 * 2 * 2
    assert report.passed, report.problems
    assert report.max_abs_fp32 <= 1e-5
    assert all(r.finite and r.alpha_in_range for r in report.rows)  # superwhite/negative plate included


def test_every_knob_changes_the_output(knobs_reset):
    m = knobs_reset
    x = plate(40, 56, seed=6)
    base = m(x)
    # despeckle_size: the random network's alpha has no solid islands to remove; the knob is checked on a
    # matte with islands in tests/export/test_export_cli.py::test_scripted_wrapper_despeckle_knob_removes_small_islands
    for name, value in (("despill_strength", 10.0), ("gamma_input", 1), ("refiner_strength", 0.0), ("auto_hint", 1)):
        set_knobs(m, **{k.name: k.typed_default for k in KNOBS})
        set_knobs(m, **{name: value})
        changed = (m(x) - base).abs().max().item()
        assert changed > 1e-3, f"{name}={value} did not change the output ({changed})"


def test_refiner_zero_is_the_coarse_prediction(knobs_reset, model_and_info):
    model, _ = model_and_info
    m = knobs_reset
    x = plate(45, 31, seed=7)
    set_knobs(m, refiner_strength=0.0, despill_strength=0.0, gamma_input=0)
    out = m(x)
    # independent preprocessing: F.interpolate with antialias, ImageNet constants of the numerics contract
    small = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    alpha_logits, fg_logits, _delta = model(torch.cat([(small[:, :3] - mean) / std, small[:, 3:]], dim=1))
    coarse = torch.cat([torch.sigmoid(fg_logits), torch.sigmoid(alpha_logits)], dim=1)
    expected = F.interpolate(coarse, size=(45, 31), mode="bilinear", align_corners=False, antialias=True)
    assert (out - expected).abs().max().item() <= 1e-5
    set_knobs(m, refiner_strength=1.0)
    assert (m(x) - expected).abs().max().item() > 1e-3  # the refiner does something, so the check above bites


def test_auto_hint_ignores_the_hint_channel_and_uses_the_shared_hint(knobs_reset, model_and_info):
    model, _ = model_and_info
    m = knobs_reset
    x = plate(61, 83, seed=12)
    other = x.clone()
    other[:, 3] = torch.rand(61, 83)  # a different hint channel
    set_knobs(m, auto_hint=1)
    out = m(x)
    assert torch.equal(out, m(other))
    # the network saw the shared hint function's matte of the plate resized to S (not the hint channel)
    net_in = m.preprocess(x, 0, 1, 0)
    small = F.interpolate(x, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
    assert (net_in[:, 3:4] - rough_hint(small[:, :3], 1)).abs().max().item() <= 1e-5
    assert (net_in[:, 3:4] - small[:, 3:4]).abs().max().item() > 0.1  # and not the hint channel
    assert (out - frame.key_frame(model, x, auto_hint=1)).abs().max().item() <= 1e-5
    set_knobs(m, auto_hint=0)
    assert not torch.equal(m(x), m(other))  # the hint channel matters again


def test_despill_follows_the_formula(knobs_reset):
    m = knobs_reset
    x = plate(33, 47, seed=8)
    set_knobs(m, despill_strength=0.0)
    raw = m(x)
    r, g, b = raw[:, 0:1], raw[:, 1:2], raw[:, 2:3]
    spill = torch.clamp(g - (r + b) / 2, min=0)
    assert spill.max().item() > 1e-3  # there is spill to remove
    full = torch.cat([r + spill / 2, g - spill, b + spill / 2, raw[:, 3:4]], dim=1)
    set_knobs(m, despill_strength=10.0)
    assert (m(x) - full).abs().max().item() <= 1e-5
    set_knobs(m, despill_strength=5.0)
    assert (m(x) - (raw + (full - raw) * 0.5)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("h,w", [(17, 9), (9, 17), (1, 1), (257, 255)])
def test_odd_tiny_and_non_square_plates(knobs_reset, h, w):
    out = knobs_reset(plate(h, w, seed=h))
    assert out.shape == (1, 4, h, w)
    assert torch.isfinite(out).all()
    assert out[:, 3].min() >= 0 and out[:, 3].max() <= 1


def test_superwhite_and_negative_plate_linear(knobs_reset):
    x = plate(64, 48, seed=9, extremes=True, linear=True)
    assert x[:, :3].max() > 1 and x[:, :3].min() < 0
    set_knobs(knobs_reset, gamma_input=1, despill_strength=10.0)
    out = knobs_reset(x)
    assert torch.isfinite(out).all()
    assert out[:, 3].min() >= 0 and out[:, 3].max() <= 1


# --------------------------------------------------------------------------- the saved file


def test_knob_attributes_are_typed_with_spec_defaults(loaded):
    for k in KNOBS:
        value = getattr(loaded, k.name)
        assert type(value) is k.python_type and value == k.typed_default
    assert loaded.img_size == S


def test_set_knobs_refuses_out_of_range(knobs_reset):
    with pytest.raises(ValueError, match="despill_strength"):
        set_knobs(knobs_reset, despill_strength=11.0)
    with pytest.raises(KeyError):
        set_knobs(knobs_reset, despill=1.0)


def test_saved_graph_has_no_constant_device(loaded):
    assert find_constant_devices(loaded) == []
    codes = [loaded.code] + [getattr(sub, "code", "") for _, sub in loaded.named_modules() if _ and
                             hasattr(sub, "forward")]
    assert not any("torch.device(" in c for c in codes)


class _OnesOnInputDevice(torch.nn.Module):
    def forward(self, x):
        return x + torch.ones(3, device=x.device)  # tracing bakes the device in


class _DeviceString(torch.nn.Module):
    def forward(self, x):
        return x + torch.zeros(3, device="cpu")


class _TensorConstant(torch.nn.Module):
    def forward(self, x):
        return x + torch.tensor([1.0, 2.0, 3.0])  # traced: a [3] tensor constant on the tracing device


def test_constant_device_check_catches_bad_modules():
    traced = torch.jit.trace(_OnesOnInputDevice(), torch.zeros(3))
    assert "torch.device(" in traced.code
    assert any("Device constant" in p for p in find_constant_devices(traced))
    assert find_constant_devices(torch.jit.script(_DeviceString()))
    assert any("tensor constant" in p for p in find_constant_devices(torch.jit.trace(_TensorConstant(),
                                                                                     torch.zeros(3))))


def test_manifest(exported, model_and_info, synthetic_checkpoint):
    _, info = model_and_info
    path = manifest_path_for(exported.output)
    assert path.name == "CorridorKey.manifest.json" and path.parent == exported.output.parent
    m = json.loads(path.read_text())
    assert m["checkpoint"]["sha256"] == sha256_of(synthetic_checkpoint) == info.sha256
    assert m["checkpoint"]["random_init"] is False
    assert m["file_sha256"] == sha256_of(exported.output)
    assert m["img_size"] == S and m["model_id"] == MODEL_ID
    assert m["preview_size"] == 0  # exported without a preview path
    assert m["versions"]["torch"] == torch.__version__
    assert m["knobs"] == [k.to_dict() for k in KNOBS]
    assert m["nuke_target"]["name"] == DEFAULT_TARGET
    assert m["nuke_target"]["fused_attn_used"] == TARGETS[DEFAULT_TARGET].fused_attn
    assert m["validation"] is None
    assert set(exported.timings) == {"trace", "trace16", "script", "save", "check", "verify"}
    assert m["cpu_bf16"]["included"] is True  # the CPU bfloat16 copy (issue #29)
    assert not [p for p in exported.output.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_stage_methods_compose_to_forward(knobs_reset):
    m = knobs_reset
    x = plate(37, 52, seed=11, linear=True)
    set_knobs(m, gamma_input=1, despill_strength=7.0, refiner_strength=0.3, despeckle_size=20)
    logits = m.run_network(m.preprocess(x, 1, 0, 0))
    composed = m.postprocess(logits[0], logits[1], logits[2], 37, 52, 0.3, 7.0, 20)
    assert torch.equal(m(x), composed)


# --------------------------------------------------------------------------- S=512 from the 256 checkpoint


def test_export_at_512_from_256_checkpoint(tmp_path, synthetic_checkpoint):
    model, info = load_model(synthetic_checkpoint, img_size=512)
    assert info.pos_embed_resized and info.checkpoint_img_size == 256
    result = export_torchscript(model, tmp_path / "ck512.pt", checkpoint_info=info)
    assert result.manifest["img_size"] == 512
    assert result.manifest["checkpoint"]["pos_embed_resized"] is True
    report = validate_torchscript(result.output, model, plates=[PlateSpec("odd", 37, 53, seed=10)],
                                  settings=[{"gamma_input": 1, "despill_strength": 5.0, "refiner_strength": 0.5}],
                                  fp16="off", progress=False)
    assert report.passed and [r.stage for r in report.rows] == ["forward", "preprocess", "postprocess"], \
        report.problems
    assert report.max_abs_fp32 <= 1e-5


# --------------------------------------------------------------------------- memory


def _mmapped_bytes():
    import ctypes

    from corridorkey_export.export import _glibc

    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                   "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    return lambda: libc.mallinfo2().hblkhd


def test_trace_memory_block_mmaps_megabyte_buffers_and_restores():
    """In a fresh process (a long-lived test process may hold freed heap chunks that malloc reuses
    before it ever considers mmap), buffers between 1 and 32 MiB are mmapped inside the block only."""
    import subprocess
    import sys

    _mmapped_bytes()  # skips where glibc has no mallinfo2
    code = """
import ctypes, torch
from corridorkey_export.export import _glibc, returning_freed_memory
libc = _glibc()
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
mmapped = lambda: libc.mallinfo2().hblkhd
size = 3 << 20
with returning_freed_memory():
    with returning_freed_memory():
        pass
    before = mmapped(); buf = torch.empty(size, dtype=torch.uint8); inside = mmapped() - before; del buf
before = mmapped(); buf = torch.empty(size, dtype=torch.uint8); after = mmapped() - before; del buf
print(inside >= size, after < size)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"], out.stdout
