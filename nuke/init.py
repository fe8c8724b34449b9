"""CorridorKey plugin folder for Nuke (put this folder on NUKE_PATH, or install with
``python -m corridorkey_export.nuke_files --install-to ~/.nuke``).

Adds the folder holding CorridorKey.gizmo (and CorridorKey.cat, which you put next
to it) to Nuke's plugin path, so that the node class ``CorridorKey`` exists and
the gizmo's Inference node finds the .cat.
"""

import os

import nuke


def _here():
    try:
        return os.path.dirname(os.path.abspath(__file__))
    except NameError:  # very old Nukes run init.py without __file__
        import inspect

        return os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe())))


def _gizmo_folder(here):
    """The repository layout keeps the gizmo in ../gizmos; an installed copy keeps it here."""
    for folder in (os.path.join(os.path.dirname(here), "gizmos"), here):
        if os.path.isfile(os.path.join(folder, "CorridorKey.gizmo")):
            return folder
    return None


_folder = _gizmo_folder(_here())
if _folder is None:
    nuke.warning("CorridorKey: CorridorKey.gizmo not found next to %s or in ../gizmos" % _here())
elif _folder != _here():
    nuke.pluginAddPath(_folder)
