"""Build CorridorKey.cat (or CorridorKeyBlue.cat) from the exported .pt with NukeX's CatFileCreator node.

A .cat can only be written by NukeX. Two ways to run this script:

* terminal mode, no window::

      Nuke16.0 --nukex -t corridorkey_create_cat.py --pt CorridorKey.pt --cat CorridorKey.cat

* the same with an interactive NukeX licence, for sites whose licences do not cover
  terminal mode (``-i`` makes a batch or terminal session take an interactive licence;
  Foundry support article Q100251)::

      Nuke16.0 --nukex -i -t corridorkey_create_cat.py --pt CorridorKey.pt --cat CorridorKey.cat

Add ``--screen blue --pt CorridorKeyBlue.pt --cat CorridorKeyBlue.cat`` for the
blue-screen model.

It creates a CatFileCreator node, sets Torchscript File, Cat File (as forward-slash
paths, which Nuke uses on every OS), Channels In/Out, Model Id (per screen) and
Output Scale, adds the model's knobs (names, types, ranges, defaults
and tooltips from corridorkey_cat_spec.json, generated from the knob spec) so
that they appear on the Inference node, reads every value back, presses
"Create .cat file", checks that a non-empty .cat was written and moves it into
place. Exit status 0 on success, 1 with a message on any failure; a failed run
leaves no partial .cat behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_FILE = os.path.join(HERE, "corridorkey_cat_spec.json")
#: A TorchScript file is a zip archive.
ZIP_MAGIC = b"PK\x03\x04"


def say(message: str) -> None:
    """Progress for the person running the script (terminal output, not a library log)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class CatError(Exception):
    """A failure with a message for the user."""


def load_spec(path: str = SPEC_FILE) -> dict:
    """The CatFileCreator settings generated from the knob spec."""
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as exc:
        raise CatError(f"cannot read the knob spec {path}: {exc}. Keep corridorkey_cat_spec.json next to this script.") from exc
    missing = {"screens", "channelsIn", "channelsOut", "outputScale", "knobs"} - set(spec)
    if missing:
        raise CatError(f"{path} lacks {sorted(missing)}; regenerate it: python -m corridorkey_export.nuke_files --write")
    return spec


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="corridorkey_create_cat.py",
        description="Build CorridorKey.cat from CorridorKey.pt with NukeX's CatFileCreator "
                    "(run with: NukeX --nukex -t corridorkey_create_cat.py --pt ... --cat ...; "
                    "with an interactive licence: NukeX --nukex -i -t corridorkey_create_cat.py ...).")
    p.add_argument("--pt", required=True, help="the TorchScript file made by export-torchscript (CorridorKey.pt)")
    p.add_argument("--cat", required=True,
                   help="the .cat file to write (CorridorKey.cat; CorridorKeyBlue.cat for --screen blue: the "
                        "gizmo looks for these names)")
    p.add_argument("--screen", choices=("green", "blue"), default="green",
                   help="which model the .pt holds (sets the Model Id; default: green)")
    p.add_argument("--force", action="store_true", help="overwrite an existing .cat file")
    return p.parse_args(argv)


def nuke_path(path: str) -> str:
    """A path as Nuke writes it: forward slashes on every OS (nukescripts/cattery.py normalises the same way)."""
    return path.replace("\\", "/")


def channel_names(text: str) -> list:
    """Channels In/Out as a list of names, whatever the spacing (NukeX stores "rgba.red,rgba.green,...")."""
    return [c.strip() for c in str(text).split(",") if c.strip()]


def screen_settings(spec: dict, screen: str) -> dict:
    """The spec's entry for one screen (its Model Id and default file names)."""
    for entry in spec["screens"]:
        if entry["name"] == screen:
            return entry
    raise CatError(f"the knob spec has no {screen!r} screen; regenerate it: python -m corridorkey_export.nuke_files --write")


def check_paths(pt: str, cat: str, force: bool) -> None:
    if not os.path.isfile(pt):
        raise CatError(f"TorchScript file not found: {pt}. Export it first: export-torchscript ... --output {pt}")
    with open(pt, "rb") as f:
        head = f.read(4)
    if head != ZIP_MAGIC:
        raise CatError(f"{pt} is not a TorchScript file (not a zip archive); give the .pt made by export-torchscript")
    if not cat.lower().endswith(".cat"):
        raise CatError(f"--cat {cat}: the file name must end in .cat")
    if not os.path.isdir(os.path.dirname(cat)):
        raise CatError(f"--cat {cat}: folder {os.path.dirname(cat)} does not exist")
    if os.path.exists(cat) and not force:
        raise CatError(f"{cat} already exists; pass --force to overwrite it")


def get_nuke():
    """Foundry's nuke module, refusing anything that is not NukeX."""
    try:
        import nuke  # noqa: WPS433 (only exists inside Nuke)
    except ImportError:
        nuke = None
    if nuke is None or not hasattr(nuke, "createNode"):
        raise CatError("this script runs inside NukeX: Nuke<version> --nukex -t corridorkey_create_cat.py --pt ... --cat ...")
    env = getattr(nuke, "env", {})
    if "nukex" in env and not env["nukex"]:
        raise CatError("CatFileCreator needs a NukeX licence: start Nuke with --nukex (Nuke<version> --nukex -t ...)")
    return nuke


def make_knob(nuke, spec: dict):
    """A user knob for one model knob: float -> Double_Knob, int -> Int_Knob (an enumeration too).

    The knob types CatFileCreator supports are those of Foundry's .cat File Creation
    Reference Guide, appendix "Supported Nuke Knobs" (learn.foundry.com/nuke/developers/
    14.0/catfilecreationreferenceguide/appendix.html): an integer knob maps to an int
    attribute. No Foundry page we could read confirms how an Enumeration knob maps to an
    attribute, so an enumeration (gamma_input, auto_hint) is an Int knob on the .cat, its
    range the choices' indices and its tooltip naming them; the gizmo shows the choices as
    a menu and links its index to this knob (serialiseKnob).
    """
    if spec["kind"] == "float":
        knob = nuke.Double_Knob(spec["name"], spec["label"])
        knob.setRange(float(spec["minimum"]), float(spec["maximum"]))
    elif spec["kind"] == "int":
        knob = nuke.Int_Knob(spec["name"], spec["label"])
        knob.setRange(int(spec["minimum"]), int(spec["maximum"]))
    else:
        raise CatError(f"knob {spec['name']}: unsupported kind {spec['kind']!r}")
    tooltip = spec["tooltip"]
    if spec.get("choices"):
        tooltip += " (" + ", ".join(f"{i} = {c}" for i, c in enumerate(spec["choices"])) + ")"
    knob.setTooltip(tooltip)
    knob.setValue(spec["default"])
    return knob


def _read_back(node, name: str, expected) -> None:
    knob = node.knob(name)
    if knob is None:
        raise CatError(f"CatFileCreator has no knob {name!r}: this Nuke's CatFileCreator differs from Nuke 15.1-17")
    got = knob.value() if isinstance(expected, str) else knob.getValue()
    if isinstance(got, (list, tuple)):
        # outputScale is a WH knob: getValue() may give [w, h] (Foundry's Python reference, Array_Knob.getValue:
        # "the value at index, or all of them as a list"); both components hold the one scale.
        if not got:
            raise CatError(f"CatFileCreator knob {name} reads back no value, expected {expected!r}")
        got = got[0]
    if name in ("channelsIn", "channelsOut"):
        ok = channel_names(got) == channel_names(expected)
    elif name in ("torchScriptFile", "catFile"):
        ok = nuke_path(str(got)) == nuke_path(expected)
    else:
        ok = got == expected if isinstance(expected, str) else abs(float(got) - float(expected)) < 1e-9
    if not ok:
        raise CatError(f"CatFileCreator knob {name} reads back {got!r}, expected {expected!r}")


def build_cat(nuke, pt: str, cat: str, spec: dict, screen: str = "green") -> str:
    """Drive CatFileCreator; return the path of the written .cat."""
    model_id = screen_settings(spec, screen)["modelId"]
    folder, base = os.path.split(cat)
    partial = os.path.join(folder, f".{base[:-4]}.partial-{os.getpid()}.cat")
    if os.path.exists(partial):
        os.remove(partial)
    node = nuke.createNode("CatFileCreator", inpanel=False)
    settings = [
        ("torchScriptFile", nuke_path(pt)),
        ("catFile", nuke_path(partial)),
        ("channelsIn", spec["channelsIn"]),
        ("channelsOut", spec["channelsOut"]),
        ("modelId", model_id),
        ("outputScale", spec["outputScale"]),
    ]
    try:
        for name, value in settings:
            knob = node.knob(name)
            if knob is None:
                raise CatError(f"CatFileCreator has no knob {name!r}: this Nuke's CatFileCreator differs from Nuke 15.1-17")
            knob.setValue(value)
        for knob_spec in spec["knobs"]:
            node.addKnob(make_knob(nuke, knob_spec))
        for name, value in settings:
            _read_back(node, name, value)
        for knob_spec in spec["knobs"]:
            _read_back(node, knob_spec["name"], knob_spec["default"])
        say(f"creating {cat} from {pt} (model id {model_id}) ...")
        try:
            node["createCatFile"].execute()
        except Exception as exc:  # Nuke raises RuntimeError with its own message
            raise CatError(f"CatFileCreator failed: {exc}") from exc
        if not os.path.isfile(partial) or os.path.getsize(partial) == 0:
            raise CatError(f"CatFileCreator reported no error but wrote no .cat ({partial} missing or empty); "
                           "check Nuke's console output above")
        _replace(partial, cat)
    finally:
        if os.path.exists(partial):
            try:
                os.remove(partial)
            except OSError as exc:  # Windows: still held open by Nuke; say so, the run already failed or succeeded
                say(f"could not remove the temporary file {partial} ({exc}); delete it by hand")
    return cat


#: How long a rename waits for another process to let go of the file (Windows holds open files).
REPLACE_TRIES = 10
REPLACE_WAIT_S = 0.5


def _replace(partial: str, cat: str) -> None:
    """Rename the finished .cat into place. On Windows CatFileCreator (or a virus scanner) may still hold the
    new file, or a Nuke session the old .cat, open: os.replace then raises PermissionError. Retry for a few
    seconds, then stop with a message that says what holds it and what to do."""
    for attempt in range(REPLACE_TRIES):
        try:
            os.replace(partial, cat)
            return
        except PermissionError as exc:
            if attempt == REPLACE_TRIES - 1:
                raise CatError(
                    f"could not move the new .cat into place ({partial} -> {cat}): {exc}. Another program holds "
                    f"one of the files open: close any Nuke session that uses {os.path.basename(cat)} (and wait "
                    "for a virus scanner), then run this script again") from exc
            time.sleep(REPLACE_WAIT_S)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    pt = os.path.abspath(os.path.expanduser(args.pt))
    cat = os.path.abspath(os.path.expanduser(args.cat))
    try:
        spec = load_spec()
        check_paths(pt, cat, args.force)
        nuke = get_nuke()
        build_cat(nuke, pt, cat, spec, args.screen)
    except CatError as exc:
        sys.stderr.write(f"corridorkey_create_cat: error: {exc}\n")
        return 1
    say(f"wrote {cat} ({os.path.getsize(cat)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
