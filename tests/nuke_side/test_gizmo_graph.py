"""The gizmo as a graph: its evaluated output equals ``corridorkey run``'s, and its panel behaves.

The gizmo text (``render_gizmo()``, and the committed CorridorKey.gizmo, which must be the same)
is loaded into the executable model of Nuke (tests/support/nuke_graph.py): its knobs typed
from its addUserKnob lines, its children from its graph, its onCreate and knobChanged run,
its expressions and .cat lookup evaluated, its OCIO nodes run through PyOpenColorIO and its
Inference nodes run the exported .pt. The checks are tests/support/gizmo_checks.py.
"""

from __future__ import annotations

from gizmo_checks import (
    CONFIGS,
    HINT_SOURCES,
    TEMPORAL_TOLERANCE,
    TOLERANCE,
    check_cpu_precision_follows_the_machine,
    check_garbage_matte,
    check_half_resolution_hint,
    check_missing_blue_cat_is_harmless,
    check_node_equals_pipeline,
    check_overscan_plate,
    check_panel_changes,
    check_proxy_mode_scales_despeckle,
    check_temporal_sequence,
    check_to_network_keeps_from_network_inverse,
    grid,
    transforms_repeat_edges,
)
from repo_paths import REPO

from corridorkey_export import nuke_files
from corridorkey_export.gizmo import render_gizmo


def test_committed_gizmo_is_the_generated_one():
    assert (REPO / nuke_files.GIZMO_PATH).read_text() == render_gizmo()


def test_the_grid_is_pairwise():
    cases = grid()
    factors = [lambda c: c.screen, lambda c: c.hint, lambda c: c.gamma, lambda c: c.config]
    values = [set(map(f, cases)) for f in factors]
    assert values == [{"green", "blue"}, set(HINT_SOURCES), {0, 1}, set(CONFIGS)]
    for i, fi in enumerate(factors):
        for j, fj in enumerate(factors[i + 1:], i + 1):
            assert {(fi(c), fj(c)) for c in cases} == {(a, b) for a in values[i] for b in values[j]}


def test_node_equals_pipeline_on_the_grid(world):
    """Every Output mode on each case of the pairwise grid of Screen, Hint source, Input Gamma and config."""
    worst = check_node_equals_pipeline(render_gizmo(), world, grid())
    assert worst <= TOLERANCE


def test_to_network_knob_changed_keeps_from_network_inverse(world):
    check_to_network_keeps_from_network_inverse(render_gizmo(), world)


def test_panel_changes_drive_hint_status_and_colour(world):
    check_panel_changes(render_gizmo(), world)


def test_only_the_green_cat_installed_renders_green(world):
    check_missing_blue_cat_is_harmless(render_gizmo(), world)


def test_proxy_mode_scales_the_despeckle_area(world):
    check_proxy_mode_scales_despeckle(render_gizmo(), world)


def test_cpu_precision_is_decided_by_the_machine_that_renders(world):
    check_cpu_precision_follows_the_machine(render_gizmo(), world)


def test_a_half_resolution_hint_keys_as_the_pipeline_does(world):
    """#26 item 4, node = pipeline: the hint at half the plate's size, fitted by nearest neighbour on both sides."""
    assert check_half_resolution_hint(render_gizmo(), world) <= TOLERANCE


def test_an_overscan_plate_keys_its_display_window_as_the_pipeline_does(world, tmp_path):
    """#26 item 7, node = pipeline: an EXR whose data window exceeds its display window (noise in the margin)."""
    assert check_overscan_plate(render_gizmo(), world, tmp_path) <= TOLERANCE


def test_the_temporal_filter_equals_corridorkey_run_temporal(world):
    """#28, node = pipeline over a 4-frame sequence, every frame (tolerance: gizmo_checks.TEMPORAL_TOLERANCE), with
    the gizmo's Transforms repeating their edges (black_outside false: see the xfail below)."""
    text = render_gizmo()
    assert transforms_repeat_edges(text).count("black_outside false") == text.count(" Transform {") == 16
    assert check_temporal_sequence(text, world) <= TEMPORAL_TOLERANCE


def test_the_shipped_temporal_filter_repeats_the_frame_edge(world):
    check_temporal_sequence(render_gizmo(), world, repeat_edges=False)


def test_a_garbage_matte_multiplies_the_automatic_hint_as_in_the_pipeline(world):
    """#30, node = pipeline: no Hint input, a garbage matte on input 2 (auto_hint 2)."""
    assert check_garbage_matte(render_gizmo(), world) <= TOLERANCE
