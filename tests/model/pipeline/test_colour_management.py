"""The pipeline's OCIO conversions (``--ocio-config``): the roles of the built-in ACES config, and Input Gamma
Linear, which bypasses the conversion to the network space (the gizmo's ToNetwork) but not the one back
(FromNetwork). The gizmo's graph against the pipeline: tests/nuke_side/test_gizmo_graph.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from corridorkey_model.keying import frame
from corridorkey_model.pipeline.clips import FrameRef
from corridorkey_model.pipeline.colour_management import OcioConversion
from corridorkey_model.pipeline.stages import Inferred, KeySettings, LoadedFrame, postprocess_frame, preprocess_frame

ACES = "ocio://cg-config-latest"
S = 32


def _loaded():
    rng = np.random.default_rng(4)
    plate = rng.random((13, 21, 4), dtype=np.float32) * 1.5 - 0.1  # scene-linear, superwhite and negative
    plate[..., 3] = rng.random((13, 21)) > 0.5
    return LoadedFrame(FrameRef(0, 1, "f", Path("f.exr"), Path("h.png")), plate)


def test_the_builtin_aces_config_has_the_gizmos_roles():
    colour = OcioConversion(ACES)
    assert (colour.working, colour.network) == ("ACEScg", "sRGB Encoded Rec.709 (sRGB)")


def test_linear_input_gamma_bypasses_the_conversion_to_the_network():
    loaded, colour = _loaded(), OcioConversion(ACES)
    linear = KeySettings(gamma_input=frame.GAMMA_LINEAR, colour=colour)
    plain = KeySettings(gamma_input=frame.GAMMA_LINEAR)
    torch.testing.assert_close(preprocess_frame(loaded, S, linear).x, preprocess_frame(loaded, S, plain).x,
                               rtol=0, atol=0)
    # sRGB (the default) converts the plate first: the network input differs.
    srgb = KeySettings(gamma_input=frame.GAMMA_SRGB, colour=colour)
    converted = LoadedFrame(loaded.ref, np.concatenate([colour.to_network(loaded.plate[..., :3]),
                                                        loaded.plate[..., 3:]], axis=2))
    torch.testing.assert_close(preprocess_frame(loaded, S, srgb).x,
                               preprocess_frame(converted, S, KeySettings(gamma_input=frame.GAMMA_SRGB)).x,
                               rtol=0, atol=0)
    assert not torch.equal(preprocess_frame(loaded, S, srgb).x, preprocess_frame(loaded, S, linear).x)


def test_linear_input_gamma_still_converts_the_foreground_back():
    """FromNetwork runs for both Input Gammas: the fg is the network's sRGB fg in the working space."""
    gen = torch.Generator().manual_seed(2)
    inferred = Inferred(_loaded().ref, torch.rand(1, 1, S, S, generator=gen), torch.rand(1, 3, S, S, generator=gen),
                        13, 21)
    colour = OcioConversion(ACES)
    plain = postprocess_frame(inferred, KeySettings(gamma_input=frame.GAMMA_LINEAR))
    keyed = postprocess_frame(inferred, KeySettings(gamma_input=frame.GAMMA_LINEAR, colour=colour))
    np.testing.assert_array_equal(keyed.fg, colour.to_working(plain.fg))
    np.testing.assert_array_equal(keyed.alpha, plain.alpha)
    np.testing.assert_allclose(keyed.processed[..., :3], keyed.fg * keyed.alpha[..., None], rtol=0, atol=1e-7)
    assert keyed.processed_space == "ACEScg"
