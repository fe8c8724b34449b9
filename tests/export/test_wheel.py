"""The wheel: `pip install .` (not -e) into a fresh venv carries the Nuke files, and installs the node from any folder.

The wheel is built from a copy of the checkout's tracked sources, installed with pip into
a new venv that sees nothing of this one but the folder holding ``click`` (the only
dependency ``corridorkey_export.nuke_files`` imports), and run from an unrelated folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import click
import pytest
from repo_paths import REPO

from corridorkey_export import nuke_files

pytestmark = pytest.mark.slow

#: What a complete install writes into <nuke home>/Cattery/CorridorKey/.
INSTALLED = {"CorridorKey.gizmo", "cat.json", "CorridorKey.png", "CorridorKey_template.nk", "menu.py",
             "corridorkey_create_cat.py", "corridorkey_cat_spec.json", "corridorkey_verify.py"}


def _sources(dest: Path) -> Path:
    """The files a source distribution of the checkout would hold (no tests, no build leftovers, no .cat)."""
    def ignore(_folder, names):
        return [n for n in names if n in ("__pycache__", "build", "dist") or n.endswith((".egg-info", ".cat", ".pt"))]

    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    for folder in ("corridorkey_model", "export", "gizmos", "nuke"):
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)
    return dest


def _pip(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, python of a fresh venv with the wheel installed, its site-packages)."""
    work = tmp_path_factory.mktemp("wheel")
    src = _sources(work / "src")
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(work / "dist"), str(src))
    [wheel] = (work / "dist").glob("*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _pip("--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel))
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_click_only.pth").write_text(str(Path(click.__file__).resolve().parent.parent) + "\n")
    assert Path(sysconfig.get_paths()["purelib"]).resolve() != site.resolve()
    return wheel, python, site


def _run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "corridorkey_export.nuke_files", *args], cwd=cwd,
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                               if k not in ("PYTHONPATH", "NUKE_PATH")})


def test_wheel_carries_the_nuke_files_and_no_top_level_nuke(installed):
    wheel, _python, _site = installed
    names = zipfile.ZipFile(wheel).namelist()
    for rel in nuke_files.PACKAGE_FILES + (nuke_files.NUKE_INIT_PATH,):
        assert f"corridorkey_export/nuke_package/{rel}" in names, rel
    assert not any(n.split("/")[0] in ("nuke", "gizmos", "export") for n in names)
    assert not any(n.endswith(".cat") for n in names)
    for module in ("images", "video", "common"):  # a subpackage pyproject.toml must list
        assert f"corridorkey_model/pipeline/frame_io/{module}.py" in names, module


def test_install_to_from_any_folder_writes_the_complete_package(installed, tmp_path):
    _wheel, python, site = installed
    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    result = _run(python, elsewhere, "--install-to", str(home))
    assert result.returncode == 0, result.stdout + result.stderr
    package = home / "Cattery" / "CorridorKey"
    assert {p.name for p in package.iterdir()} == INSTALLED
    for rel in nuke_files.PACKAGE_FILES:  # byte for byte the checkout's files
        assert (package / Path(rel).name).read_bytes() == (REPO / rel).read_bytes(), rel
    init = (home / "init.py").read_text()
    assert nuke_files.INIT_MARK in init and f"nuke.pluginAddPath({package.absolute().as_posix()!r})" in init

    assert _run(python, elsewhere, "--check").returncode == 0
    refused = _run(python, elsewhere, "--write")
    assert refused.returncode == 1 and "source checkout" in refused.stderr
    after = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written into site-packages
    spec = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('nuke'))"],
                          cwd=elsewhere, capture_output=True, text=True)
    assert spec.stdout.strip() == "None"  # Foundry's `nuke` is never hidden
