"""CorridorKey for Nuke, run from a checkout: put this folder (``<repository>/nuke``) on NUKE_PATH.

This folder holds ``Cattery/CorridorKey/``, the Cattery package. In an interactive
session Nuke's Cattery menu finds it by itself (nukescripts/cattery.py scans every
plugin-path folder named ``Cattery`` for ``<package>/cat.json``). This file also puts
the package folder on the plugin path in every session, terminal and render sessions
included (Nuke runs init.py in each of them; it builds no menus there), so that the
``CorridorKey`` node class and its .cat files are found wherever a script is opened.
"""

import os

import nuke


def _here():
    try:
        return os.path.dirname(os.path.abspath(__file__))
    except NameError:  # some Nuke versions run init.py without __file__
        import inspect

        return os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe())))


_package = os.path.join(_here(), "Cattery", "CorridorKey")
if os.path.isfile(os.path.join(_package, "CorridorKey.gizmo")):
    # Forward slashes, as Nuke writes paths on every OS (and as the Cattery menu adds this folder).
    nuke.pluginAddPath(_package.replace("\\", "/"))
else:
    nuke.warning("CorridorKey: the Cattery package %s is missing CorridorKey.gizmo; "
                 "regenerate it: python -m corridorkey_export.nuke_files --write" % _package)
