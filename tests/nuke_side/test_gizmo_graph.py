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
    TOLERANCE,
    check_missing_blue_cat_is_harmless,
    check_node_equals_pipeline,
    check_panel_changes,
    check_to_network_keeps_from_network_inverse,
    grid,
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
