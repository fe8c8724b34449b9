"""Generator of the Nuke-side files, all from the one knob spec.

Writes (relative to the repository root):

* ``gizmos/Cattery/CorridorKey/``: the Cattery package, the folder layout Nuke's own
  Cattery menu looks for (``nukescripts/cattery.py`` scans every plugin-path folder
  named ``Cattery`` for ``<package>/cat.json``):

  * ``CorridorKey.gizmo``: the node compositors use (a Group around the Inference nodes)
  * ``CorridorKey_template.nk``: a template comp pasted into the current script
  * ``cat.json``, ``CorridorKey.png``: the package description and its icon
  * ``menu.py`` is hand-written; ``CorridorKey.cat`` (and ``CorridorKeyBlue.cat``) are
    built by the user in NukeX and put here.

* ``nuke/corridorkey_cat_spec.json``: what ``nuke/corridorkey_create_cat.py`` sets on
  CatFileCreator. ``nuke/`` holds what runs inside Nuke to build or register things
  (that script, and the ``init.py`` of the NUKE_PATH route).

The committed files must equal this module's output (``--check``, and a test). The
wheel carries ``gizmos/`` and ``nuke/`` as package data (``corridorkey_export/nuke_package/``,
see pyproject.toml), so ``--install-to`` works from an installed copy as from a checkout.

Usage::

    python -m corridorkey_export.nuke_files --write      # regenerate
    python -m corridorkey_export.nuke_files --check      # exit 1 if a committed file is stale
    python -m corridorkey_export.nuke_files --install-to ~/.nuke --cat CorridorKey.cat

"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import click

from corridorkey_export.gizmo import CAT_FILENAME, GIZMO_CLASS, MINIMUM_NUKE, render_gizmo, render_template
from corridorkey_export.nuke_contract import (
    CHANNELS_IN,
    CHANNELS_OUT,
    OUTPUT_SCALE,
    SCREENS,
    NukeModel,
    verify_filenames,
)
from corridorkey_model.keying.knobs import CAT_KNOBS

log = logging.getLogger(__name__)


#: The Cattery package folder in the repository (nuke/init.py puts gizmos/ and it on the plugin path).
PACKAGE_DIR = "gizmos/Cattery/" + GIZMO_CLASS
GIZMO_PATH = f"{PACKAGE_DIR}/{GIZMO_CLASS}.gizmo"
TEMPLATE_PATH = f"{PACKAGE_DIR}/{GIZMO_CLASS}_template.nk"
CAT_JSON_PATH = f"{PACKAGE_DIR}/cat.json"
ICON_PATH = f"{PACKAGE_DIR}/{GIZMO_CLASS}.png"
MENU_PATH = f"{PACKAGE_DIR}/menu.py"
CAT_SPEC_PATH = "nuke/corridorkey_cat_spec.json"
CREATE_CAT_PATH = "nuke/corridorkey_create_cat.py"
NUKE_INIT_PATH = "nuke/init.py"

#: The Verify button's Python (hand-written; runs inside Nuke): corridorkey_verify.verify(node).
VERIFY_MODULE_PATH = f"{PACKAGE_DIR}/corridorkey_verify.py"

#: What ``--install-to`` copies into ``<nuke home>/Cattery/CorridorKey/``.
PACKAGE_FILES = (GIZMO_PATH, TEMPLATE_PATH, CAT_JSON_PATH, ICON_PATH, MENU_PATH, CREATE_CAT_PATH, CAT_SPEC_PATH,
                 VERIFY_MODULE_PATH)

INIT_MARK = "# CorridorKey Cattery package (added by corridorkey_export.nuke_files --install-to)"


# --------------------------------------------------------------------------- Cattery package + .cat spec


def render_cat_json() -> str:
    """``cat.json``: the Cattery package description (its menu entry, category and minimum Nuke).

    Fields as nukescripts/cattery.py reads them: ``minimum_nuke_version_required``,
    ``version``, ``category``, ``description``, ``cats`` [{``filepath``, ``name``, ``icon``}].
    """
    data = {
        "minimum_nuke_version_required": MINIMUM_NUKE,
        "version": 1,
        "category": "Keying",
        "description": ("CorridorKey neural green- and blue-screen keyer (plate + rough hint -> clean matte "
                        "and despilled foreground)."),
        "cats": [{"filepath": Path(GIZMO_PATH).name, "name": GIZMO_CLASS, "icon": Path(ICON_PATH).name}],
    }
    return json.dumps(data, indent=4) + "\n"


def channel_list(channels: Sequence[str]) -> str:
    """Channels In/Out as CatFileCreator stores them: comma-separated, no spaces (RVMNukeCatCreator.py)."""
    return ",".join(channels)


def render_cat_spec() -> str:
    """What the .cat creation script sets on CatFileCreator (read by nuke/corridorkey_create_cat.py)."""
    data = {
        "channelsIn": channel_list(CHANNELS_IN),
        "channelsOut": channel_list(CHANNELS_OUT),
        "outputScale": OUTPUT_SCALE,
        "screens": [{"name": s.name, "modelId": s.model_id, "pt": s.pt_filename, "cat": s.cat_filename}
                    for s in SCREENS],
        "knobs": [k.to_dict() for k in CAT_KNOBS],
    }
    return json.dumps(data, indent=2) + "\n"


def render_icon(size: int = 32) -> bytes:
    """A small PNG icon (a green square with a white key shape), made without image libraries."""
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type 0
        for x in range(size):
            inside_ring = (x - 11) ** 2 + (y - 16) ** 2 <= 49 and (x - 11) ** 2 + (y - 16) ** 2 >= 9
            shaft = 16 <= x <= 27 and 15 <= y <= 17
            teeth = (22 <= x <= 23 or 26 <= x <= 27) and 18 <= y <= 21
            rgba = (255, 255, 255, 255) if inside_ring or shaft or teeth else (46, 160, 67, 255)
            row += bytes(rgba)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))


def generated_files() -> Dict[str, bytes]:
    """Every generated file, by path relative to the repository root."""
    return {
        GIZMO_PATH: render_gizmo().encode(),
        TEMPLATE_PATH: render_template().encode(),
        CAT_JSON_PATH: render_cat_json().encode(),
        ICON_PATH: render_icon(),
        CAT_SPEC_PATH: render_cat_spec().encode(),
    }


# --------------------------------------------------------------------------- write / check / install


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folder) through the project's one atomic-write helper."""
    from corridorkey_model import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, data)


def write(root: Path) -> List[Path]:
    """Write every generated file under ``root``; return the paths whose content changed."""
    changed = []
    for rel, data in generated_files().items():
        path = Path(root) / rel
        if not path.is_file() or path.read_bytes() != data:
            _atomic_write(path, data)
            changed.append(path)
            log.info("wrote %s", path)
    return changed


def check(root: Path) -> List[str]:
    """Paths (relative) of generated files under ``root`` that are missing or differ from the generator."""
    return [rel for rel, data in generated_files().items()
            if not (Path(root) / rel).is_file() or (Path(root) / rel).read_bytes() != data]


#: The init.py block of the earlier layout (``<nuke home>/CorridorKey``), replaced on install.
_OLD_INIT_MARK = "# CorridorKey plugin path (added by corridorkey_export.nuke_files --install-to)"


def nuke_path(path: Path) -> str:
    """An absolute path the way Nuke writes paths: forward slashes on every OS (nukescripts/cattery.py)."""
    return Path(path).expanduser().absolute().as_posix()


def init_block(package_dir: Path) -> str:
    """The lines ``--install-to`` adds to ``<nuke home>/init.py``.

    Nuke's Cattery menu finds ``<nuke home>/Cattery/CorridorKey/cat.json`` by itself in an
    interactive session (and honours its minimum Nuke version); this line also puts the
    package folder on the plugin path in terminal and render sessions (``nuke -x``,
    ``nuke -t``), where no menu is built, so that the ``CorridorKey`` node class and its
    .cat files are found there too, in Nuke MINIMUM_NUKE or later only; an older Nuke gets
    a warning saying why. The version comes from ``nuke.env['NukeVersionMajor']`` /
    ``['NukeVersionMinor']``, as public init.py files read it (nim-labs/connectors
    plugins/Nuke/install/init.py). One statement, so the block stays three lines.
    """
    major, minor = (int(v) for v in str(MINIMUM_NUKE).split("."))
    too_old = (f"nuke.warning('CorridorKey needs Nuke {MINIMUM_NUKE} or later (its .cat runs on the PyTorch 2.1 "
               f"runtime of Nuke {MINIMUM_NUKE}+): not added to this Nuke %s.%s' % "
               "(nuke.env['NukeVersionMajor'], nuke.env['NukeVersionMinor']))")
    return (f"{INIT_MARK}\nimport nuke\n"
            f"nuke.pluginAddPath({nuke_path(package_dir)!r}) if (int(nuke.env['NukeVersionMajor']), "
            f"int(nuke.env['NukeVersionMinor'])) >= ({major}, {minor}) else {too_old}\n")


def _registered_init(text: str, package_dir: Path) -> str:
    """``text`` of an init.py with our block present exactly once (an earlier layout's block replaced)."""
    block = init_block(package_dir)
    kept, skip = [], 0
    for line in text.splitlines(keepends=True):
        if skip:
            skip -= 1
            continue
        if line.rstrip("\n") in (INIT_MARK, _OLD_INIT_MARK):
            skip = 2  # the mark is followed by "import nuke" and the pluginAddPath line
            continue
        kept.append(line)
    body = "".join(kept)
    return body + ("\n" if body and not body.endswith("\n") else "") + block


def install(root: Path, nuke_dir: Path, cat: Optional[Path] = None, blue_cat: Optional[Path] = None) -> Path:
    """Install the Cattery package into ``<nuke_dir>/Cattery/CorridorKey`` and register it in ``<nuke_dir>/init.py``.

    Copies the gizmo, template, cat.json, icon, menu.py, the Verify button's module and the
    .cat creation script, plus the built .cat files when given (saved under the names the
    gizmo looks for) with the Verify plate and reference values found beside them,
    and keeps exactly one registration block in ``init.py``. Returns the package folder.
    """
    stale = check(root)
    if stale:
        fix = ("run: python -m corridorkey_export.nuke_files --write" if checkout_root() == Path(root).resolve()
               else "reinstall corridorkey-nuke, or give --root CHECKOUT")
        raise click.ClickException(f"generated files in {root} are out of date or missing: {', '.join(stale)}; {fix}")
    cats = {}
    for given, screen in ((cat, SCREENS[0]), (blue_cat, SCREENS[1])):
        if given is None:
            continue
        if not Path(given).is_file():
            raise click.ClickException(f"{given}: no such file. Build the {screen.name}-screen .cat in NukeX with "
                                       "corridorkey_create_cat.py (see the README, section Nuke)")
        cats[screen.cat_filename] = Path(given)
    nuke_dir = Path(nuke_dir).expanduser()
    target = nuke_dir / "Cattery" / GIZMO_CLASS
    files: Dict[Path, bytes] = {}
    for rel in PACKAGE_FILES:
        src = Path(root) / rel
        if not src.is_file():
            raise click.ClickException(f"missing {src}: the installation of corridorkey-nuke is incomplete; "
                                       "reinstall it (pip install --force-reinstall corridorkey-nuke)")
        files[target / src.name] = src.read_bytes()
    for name, src in cats.items():
        files[target / name] = src.read_bytes()
    for screen in SCREENS:  # the Verify button's plate and reference values, exported beside the .pt
        given = cat if screen is SCREENS[0] else blue_cat
        if given is not None:
            files.update(_verify_files(Path(given), screen, target))
    init = nuke_dir / "init.py"
    text = _read_init(init)
    if _OLD_INIT_MARK in text:
        log.warning("replaced the registration of the earlier layout %s in %s; that folder can be deleted",
                    nuke_dir / GIZMO_CLASS, init)
    new_text = _registered_init(text, target)
    try:
        init_bytes = new_text.encode("utf-8", "surrogateescape")  # bytes that were not UTF-8 come back unchanged
    except UnicodeEncodeError:
        raise click.ClickException(
            f"{init} is not UTF-8 and the package path {target} is not ASCII, so the registration line cannot be "
            f"added in the file's own encoding: save {init} as UTF-8, or install into a folder with an ASCII "
            f"path") from None
    _check_can_write(nuke_dir, init, target)  # before anything is touched
    _install_files(files, target)
    if new_text != text:
        try:
            _atomic_write(init, init_bytes)
        except OSError as exc:
            raise click.ClickException(f"installed {target}, but could not register it in {init}: "
                                       f"{_why(init, exc)}. Add these lines to it yourself:\n"
                                       f"{init_block(target)}") from None
    return target


def _verify_files(cat: Path, screen: NukeModel, target: Path) -> Dict[Path, bytes]:
    """The Verify plate and reference found beside ``cat``, checked, under the names the gizmo's Verify looks for.

    The export names them after the ``.pt`` (``y.pt`` -> ``y.verify.json``); a ``.cat`` built beside it and
    named after it finds them, else the installed names (``CorridorKey.verify.json``, earlier exports).
    A reference that fails :func:`corridorkey_export.verify_data.check_reference` stops the install.
    """
    from corridorkey_export.verify_data import check_reference  # (imports torch: only when a .cat is installed)

    candidates = [cat.parent / verify_filenames(cat.stem)[1], cat.parent / screen.verify_filename]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        log.warning("no %s beside %s: the node's Verify button needs it (export-torchscript writes it beside the "
                    ".pt, named after it; build the .cat in that folder, named after the .pt, or copy it there)",
                    " or ".join(sorted({p.name for p in candidates})), cat)
        return {}
    try:
        data, plate = check_reference(found, screen)
    except ValueError as exc:
        raise click.ClickException(f"{exc}. The Verify button could not use it: export the .pt again "
                                   f"(export-torchscript writes it beside the .pt) and install again; nothing was "
                                   f"installed") from None
    raw = found.read_bytes()
    if data["plate"] != screen.verify_plate_filename:  # the installed JSON names the installed plate
        data["plate"] = screen.verify_plate_filename
        raw = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    return {target / screen.verify_filename: raw, target / screen.verify_plate_filename: plate.read_bytes()}


def _why(path: Path, exc: OSError) -> str:
    from corridorkey_model import atomic

    return atomic.why_write_failed(path, exc)


def _read_init(init: Path) -> str:
    """``init.py``'s text ('' if absent). Bytes that are not UTF-8 (an older file in another encoding) are kept
    as they are (``surrogateescape``), so the rest of the file is written back byte for byte."""
    try:
        return init.read_bytes().decode("utf-8", "surrogateescape") if init.exists() else ""
    except OSError as exc:
        raise click.ClickException(f"cannot read {init} ({exc.strerror or exc}); fix its permissions or install "
                                   f"into another Nuke home folder") from None


def _check_can_write(nuke_dir: Path, init: Path, target: Path) -> None:
    """ClickException unless the package folder and ``init.py`` can be written: a probe file is made and removed
    in the nearest existing folder of each, so a read-only or full folder stops the install with nothing done."""
    from corridorkey_model import atomic

    for folder in {target, init.parent}:
        existing = folder
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
        if not existing.is_dir():
            raise click.ClickException(f"cannot install into {nuke_dir}: {existing} is a file, not a folder")
        try:
            atomic.discard(atomic.temp_path_for(existing / "install-probe"))
        except OSError as exc:
            raise click.ClickException(f"cannot install into {nuke_dir}: {existing} is not writable "
                                       f"({_why(existing / 'x', exc)}); nothing was changed. Fix its permissions "
                                       f"or give another --install-to folder") from None


def _install_files(files: Dict[Path, bytes], target: Path) -> None:
    """Write every file to a temporary name first, then rename them all into place; on a failure nothing of the
    package is changed (temporaries and folders made here are removed)."""
    from corridorkey_model import atomic

    created = []
    p = target
    while not p.exists():
        created.append(p)
        p = p.parent
    temps: List[Tuple[Path, Path]] = []
    try:
        for folder in reversed(created):
            folder.mkdir()
        for final, data in files.items():
            tmp = atomic.temp_path_for(final)
            temps.append((tmp, final))
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        for tmp, _final in temps:
            atomic.discard(tmp)
        for folder in created:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                pass
        raise click.ClickException(f"cannot install into {target}: {_why(target / 'x', exc)}; nothing was "
                                   f"changed") from None
    for tmp, final in temps:
        atomic.commit(tmp, final)


#: Where an installed wheel keeps ``gizmos/`` and ``nuke/`` (package data; pyproject.toml maps them here).
INSTALLED_DATA_DIR = Path(__file__).resolve().parent / "nuke_package"


def checkout_root() -> Optional[Path]:
    """The repository root when this module runs from a checkout (``export/`` is its child), else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "export" / Path(__file__).name).is_file():
        return root
    return None


def default_root() -> Path:
    """Where the Nuke files are read from: the checkout, or the installed wheel's package data."""
    return checkout_root() or INSTALLED_DATA_DIR


def _refuse_outside_checkout(root: Path) -> None:
    """``--write`` regenerates a checkout's files; an installed package (site-packages) is never written."""
    resolved = Path(root).resolve()
    if resolved == INSTALLED_DATA_DIR or INSTALLED_DATA_DIR in resolved.parents:
        raise click.ClickException(
            f"--write regenerates the files of a source checkout; {root} is the installed package's copy. "
            "Run it in a checkout (or give --root CHECKOUT); --check and --install-to work from here.")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--write", "do_write", is_flag=True, help="Regenerate the gizmo, template, cat.json, icon and .cat spec.")
@click.option("--check", "do_check", is_flag=True, help="Exit with status 1 if a committed generated file is stale.")
@click.option("--install-to", "install_to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install the Cattery package into this Nuke home folder (usually ~/.nuke): "
                   "<dir>/Cattery/CorridorKey, registered in <dir>/init.py.")
@click.option("--cat", "cat", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"With --install-to: the built green-screen .cat, installed as {SCREENS[0].cat_filename}.")
@click.option("--blue-cat", "blue_cat", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"With --install-to: the built blue-screen .cat, installed as {SCREENS[1].cat_filename}.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Folder holding gizmos/ and nuke/. Default: this checkout, or the installed package's copy.")
def main(do_write: bool, do_check: bool, install_to: Optional[Path], cat: Optional[Path], blue_cat: Optional[Path],
         root: Optional[Path]) -> None:
    """Generate, check or install CorridorKey's Nuke files.

    Every knob name, type, range and default in the gizmo, the template comp and the
    .cat creation script comes from corridorkey_model.keying.knobs. --check exits 1 and names
    the stale files; --write rewrites them. --install-to copies the Cattery package into
    a Nuke home folder and registers it in that folder's init.py.
    """
    if sum([do_write, do_check, install_to is not None]) != 1:
        raise click.UsageError("give exactly one of --write, --check, --install-to")
    if (cat is not None or blue_cat is not None) and install_to is None:
        raise click.UsageError("--cat and --blue-cat only go with --install-to")
    root = root if root is not None else default_root()
    if do_write:
        _refuse_outside_checkout(root)
        changed = write(root)
        click.echo(f"{len(changed)} file(s) updated" + "".join(f"\n  {p}" for p in changed))
    elif do_check:
        stale = check(root)
        if stale:
            raise click.ClickException(
                "stale generated Nuke files: " + ", ".join(stale)
                + "; run: python -m corridorkey_export.nuke_files --write")
        click.echo(f"{len(generated_files())} generated Nuke files are up to date")
    else:
        target = install(root, install_to, cat, blue_cat)
        click.echo(f"installed into {target.absolute()}; restart Nuke and find CorridorKey under Cattery > Keying "
                   "(and Nodes > CorridorKey)")
        if cat is None and not (target / CAT_FILENAME).is_file():
            click.echo(f"note: no {CAT_FILENAME} there yet: build it with corridorkey_create_cat.py in NukeX and "
                       f"copy it into {target} (or rerun with --cat)")


if __name__ == "__main__":  # pragma: no cover
    main()
