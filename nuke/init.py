"""CorridorKey for Nuke, run from a checkout: put this folder (``<repository>/nuke``) on NUKE_PATH.

The Cattery package lives in ``<repository>/gizmos/Cattery/CorridorKey/``. This file puts
two folders on the plugin path in every session, terminal and render sessions included
(Nuke runs init.py in each of them; it builds no menus there):

* ``<repository>/gizmos``: Nuke's Cattery menu finds the package there by itself in an
  interactive session (nukescripts/cattery.py scans every plugin-path folder's children
  named ``Cattery`` for ``<package>/cat.json``);
* the package folder itself, so that the ``CorridorKey`` node class, its menu.py and its
  .cat files are found wherever a script is opened.
"""

import os

import nuke


def _here():
    try:
        return os.path.dirname(os.path.abspath(__file__))
    except NameError:  # some Nuke versions run init.py without __file__
        import inspect

        return os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe())))


#: The oldest Nuke the package works in (cat.json says the same): its .cat needs the PyTorch 2.1
#: runtime of Nuke 15.1 and later. The version is read as public init.py files read it
#: (nim-labs/connectors, plugins/Nuke/install/init.py: nuke.env['NukeVersionMajor'] / ['NukeVersionMinor']).
MINIMUM_NUKE = (15, 1)
_version = (int(nuke.env["NukeVersionMajor"]), int(nuke.env["NukeVersionMinor"]))

_gizmos = os.path.join(os.path.dirname(_here()), "gizmos")
_package = os.path.join(_gizmos, "Cattery", "CorridorKey")
if _version < MINIMUM_NUKE:
    nuke.warning("CorridorKey needs Nuke %d.%d or later (its .cat runs on the PyTorch 2.1 runtime of Nuke "
                 "15.1+): not added to this Nuke %d.%d" % (MINIMUM_NUKE + _version))
elif os.path.isfile(os.path.join(_package, "CorridorKey.gizmo")):
    # Forward slashes, as Nuke writes paths on every OS (and as the Cattery menu adds this folder).
    nuke.pluginAddPath(_gizmos.replace("\\", "/"))
    nuke.pluginAddPath(_package.replace("\\", "/"))
else:
    nuke.warning("CorridorKey: the Cattery package %s is missing CorridorKey.gizmo; "
                 "regenerate it: python -m corridorkey_export.nuke_files --write" % _package)
