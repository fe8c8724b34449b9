"""The validation itself: it must catch what it claims to prove, with few network forwards.

S=64 throughout (a forward is ~0.1 s). Faulty files are built by scripting a
subclass of the real wrapper around the real traced network, with one thing
changed; each must fail validation.
"""

from __future__ import annotations

import itertools
from typing import Tuple

import pytest
import torch
from torch import Tensor

from corridorkey_export.export import export_torchscript, script_wrapper, trace_network
from corridorkey_export.validate import (
    SWEEP_VALUES,
    PlateSpec,
    end_to_end_settings,
    format_report,
    forward_wiring_problems,
    knob_settings,
    plan_validation,
    validate_torchscript,
)
from corridorkey_export.wrapper import CorridorKeyNuke
from corridorkey_model.keying import frame
from corridorkey_model.keying.knobs import KNOBS, KNOBS_BY_NAME
from corridorkey_model.testing import make_random_model

pytestmark = pytest.mark.slow

S = 64
PLATES = (PlateSpec("wide", 41, 67, seed=1), PlateSpec("small", 21, 13, seed=2, end_to_end=False),
          PlateSpec("extremes", 27, 30, seed=3, extremes=True))


@pytest.fixture(scope="module")
def model():
    return make_random_model(S, seed=0)


@pytest.fixture(scope="module")
def traced(model):
    return trace_network(model, S)


def _validate(module, model, **kwargs):
    kwargs.setdefault("plates", PLATES)
    return validate_torchscript(module, model, fp16="off", progress=False, **kwargs)


# --------------------------------------------------------------------------- faulty files


class _KnobUsedInForward(CorridorKeyNuke):
    def forward(self, x: Tensor) -> Tensor:
        net_in = self.preprocess(x, self.gamma_input, self.auto_hint, self.quality)
        a, f, d = self.run_network(net_in)
        out = self.postprocess(a, f, d, x.shape[-2], x.shape[-1], self.refiner_strength, 0.0, self.despeckle_size)
        return out * (1.0 - self.despill_strength * 0.0)  # despill read, but not passed to its stage


class _KnobsSwapped(CorridorKeyNuke):
    def forward(self, x: Tensor) -> Tensor:
        net_in = self.preprocess(x, self.gamma_input, self.auto_hint, self.quality)
        a, f, d = self.run_network(net_in)
        return self.postprocess(a, f, d, x.shape[-2], x.shape[-1], self.despill_strength, self.refiner_strength,
                                self.despeckle_size)


class _GammaIgnored(CorridorKeyNuke):
    def forward(self, x: Tensor) -> Tensor:
        net_in = self.preprocess(x, 0, self.auto_hint, self.quality)
        a, f, d = self.run_network(net_in)
        return self.postprocess(a, f, d, x.shape[-2], x.shape[-1], self.refiner_strength, self.despill_strength,
                                self.despeckle_size)


class _HalfDespill(CorridorKeyNuke):
    @torch.jit.export
    def postprocess(self, alpha_logits: Tensor, fg_logits: Tensor, delta_logits: Tensor, height: int, width: int,
                    refiner_strength: float, despill_strength: float, despeckle_size: int) -> Tensor:
        alpha, fg = frame.combine(alpha_logits, fg_logits, delta_logits, refiner_strength)
        return frame.postprocess(alpha, fg, height, width, despill_strength * 0.5, despeckle_size)


class _WrongNetworkInput(CorridorKeyNuke):
    @torch.jit.export
    def run_network(self, net_in: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        return self.network(net_in * 1.001)


def test_the_real_file_passes_with_wiring_checked(traced, model):
    ts = script_wrapper(traced, S)
    assert forward_wiring_problems(ts) == []
    report = _validate(ts, model)
    assert report.passed, report.problems
    assert report.wiring_ok and report.max_abs_fp32 <= 1e-5
    stages = {r.stage for r in report.rows}
    assert stages == {"forward", "preprocess", "postprocess"}
    assert "forward() wiring: each knob attribute" in format_report(report)


@pytest.mark.parametrize("cls,expect", [
    (_KnobUsedInForward, "uses the knob despill_strength in"),
    (_KnobsSwapped, "passes the knob"),
    (_GammaIgnored, "never reads the knob attribute gamma_input"),
])
def test_wiring_check_catches_knobs_that_do_not_reach_their_stage(traced, model, cls, expect):
    ts = torch.jit.script(cls(traced, S))
    problems = forward_wiring_problems(ts)
    assert any(expect in p for p in problems), problems
    report = _validate(ts, model)
    assert not report.passed and not report.wiring_ok
    assert any(expect in p for p in report.problems)


def test_a_wrong_post_stage_fails_on_cached_outputs(traced, model):
    ts = torch.jit.script(_HalfDespill(traced, S))
    assert forward_wiring_problems(ts) == []  # the wiring is right: only the numbers can show it
    report = _validate(ts, model)
    assert not report.passed
    bad = [r for r in report.rows if r.max_error > 1e-5]
    assert {r.stage for r in bad} >= {"postprocess"}
    assert all(r.knobs["despill_strength"] > 0 for r in bad if r.stage == "postprocess")


def test_a_wrong_network_stage_fails_end_to_end(traced, model):
    ts = torch.jit.script(_WrongNetworkInput(traced, S))
    report = _validate(ts, model)
    assert not report.passed
    assert all(r.max_error <= 1e-5 for r in report.rows if r.stage != "forward")
    assert any(r.max_error > 1e-5 for r in report.rows if r.stage == "forward")


# --------------------------------------------------------------------------- forwards spent


def test_pairwise_spends_two_forwards_and_reuses_the_trace_run(tmp_path, model):
    result = export_torchscript(model, tmp_path / "ck.pt", validate=True,
                                validate_kwargs={"fp16": "off", "progress": False})
    report = result.validation
    assert report.passed, report.problems
    forward_rows = [r for r in report.rows if r.stage == "forward"]
    assert len(forward_rows) == 2  # the two end-to-end plates of the default plates
    assert report.calls == 2 + len(report.bf16_rows)  # + the CPU bfloat16 copy's check, on a CPU with bf16 units
    assert report.reference_forwards == 1  # the first call's reference is the trace's eager forward
    e2e = [p.name for p in plan_validation(S).plates if p.end_to_end]
    assert [r.plate for r in forward_rows] == e2e
    # the stage checks cover every plate and the whole pairwise sweep
    post = {(r.plate, r.knobs["despill_strength"], r.knobs["refiner_strength"]) for r in report.rows
            if r.stage == "postprocess"}
    assert len(post) == len(plan_validation(S).plates) * 9


def test_full_sweep_runs_every_setting_end_to_end(traced, model):
    ts = script_wrapper(traced, S)
    report = _validate(ts, model, sweep="full", plates=PLATES[1:2])
    assert report.passed, report.problems
    assert report.calls == len(knob_settings("full")) == 144  # quality doubles the 72 settings (ignored here)
    # one per gamma and auto_hint value (they change the network input); the other knobs act after the network
    assert report.reference_forwards == 4


# --------------------------------------------------------------------------- settings


def test_end_to_end_settings_move_every_knob():
    first, second = end_to_end_settings(2)
    for k in KNOBS:
        assert first[k.name] != k.typed_default, k.name
        assert first[k.name] != second[k.name], k.name
        assert {first[k.name], second[k.name]} <= set(SWEEP_VALUES[k.name])


def test_pairwise_sweep_covers_every_pair_of_knob_values():
    chosen = knob_settings("pairwise")
    assert len(chosen) < len(knob_settings("full"))
    for a, b in itertools.combinations(SWEEP_VALUES, 2):
        for va, vb in itertools.product(SWEEP_VALUES[a], SWEEP_VALUES[b]):
            assert any(s[a] == va and s[b] == vb for s in chosen), (a, va, b, vb)


def test_sweep_values_must_name_every_knob():
    partial = {k: v for k, v in SWEEP_VALUES.items() if k != "despill_strength"}
    with pytest.raises(ValueError, match="no values for despill_strength"):
        knob_settings(values=partial)
    with pytest.raises(ValueError, match="unknown bogus"):
        knob_settings(values={**SWEEP_VALUES, "bogus": (1,)})
    with pytest.raises(ValueError, match="outside its range"):
        knob_settings(values={**SWEEP_VALUES, "despill_strength": (0.0, 11.0)})
    assert set(SWEEP_VALUES) == set(KNOBS_BY_NAME)
