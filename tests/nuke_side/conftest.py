"""Session fixtures of the Nuke-side tests: one green and one blue random-weight network at S = 64, each
exported once to a .pt, with stand-in .cat files on a plugin-path folder (tests/support/nuke_graph.py)."""

from __future__ import annotations

import pytest
from gizmo_checks import NUKE_DEFAULT_LIKE, Keyer, World
from nuke_graph import write_cat

from corridorkey_export.export import export_torchscript
from corridorkey_export.nuke_contract import BLUE, GREEN
from corridorkey_model.keying.knobs import CAT_KNOBS
from corridorkey_model.testing import make_random_model

S = 64


@pytest.fixture(scope="session")
def model64():
    """The green network (its name marks the tests that use it slow: tests/conftest.py MODEL_FIXTURES)."""
    return make_random_model(S, seed=21)


@pytest.fixture(scope="session")
def world(tmp_path_factory, model64) -> World:
    """Both screens' networks, their .pt files, the .cats on one plugin-path folder, the nuke-default config."""
    root = tmp_path_factory.mktemp("nuke_world")
    plugins = root / "plugins"
    keyers = {}
    for screen, model in ((GREEN, model64), (BLUE, make_random_model(S, seed=22))):
        pt = root / f"{screen.name}.pt"
        export_torchscript(model, pt, random_init_seed=21, screen=screen)
        write_cat(plugins / screen.cat_filename, pt, [k.name for k in CAT_KNOBS])
        keyers[screen.name] = Keyer(model, pt, screen.channel)
    config = root / "nuke-default-like.ocio"
    config.write_text(NUKE_DEFAULT_LIKE)
    return World(keyers, plugins, config, S)
