"""CorridorKey menu entries: Nodes toolbar > CorridorKey (the node, and the template comp).

Runs in interactive sessions once this folder is on the plugin path (nuke/init.py, or
the line ``--install-to`` adds to ~/.nuke/init.py). The node is also listed by Nuke's
own Cattery menu (Cattery > Keying > CorridorKey), from cat.json.
"""

import os

import nuke


def _here():
    try:
        return os.path.dirname(os.path.abspath(__file__))
    except NameError:  # some Nuke versions run menu.py without __file__
        import inspect

        return os.path.dirname(os.path.abspath(inspect.getfile(inspect.currentframe())))


_TEMPLATE = os.path.join(_here(), "CorridorKey_template.nk").replace("\\", "/")


def insert_corridorkey_template():
    """Paste the template comp into the current script (the shipped file itself is never opened)."""
    if not os.path.isfile(_TEMPLATE):
        nuke.message("CorridorKey: the template comp %s is missing; reinstall the CorridorKey package." % _TEMPLATE)
        return
    nuke.nodePaste(_TEMPLATE)


#: The oldest Nuke the node works in (cat.json's minimum_nuke_version_required, which Nuke's own
#: Cattery menu honours): its .cat needs the PyTorch 2.1 runtime of Nuke 15.1 and later. Read as
#: public init.py files read it (nim-labs/connectors: nuke.env['NukeVersionMajor'] / ['NukeVersionMinor']).
MINIMUM_NUKE = (15, 1)
_version = (int(nuke.env["NukeVersionMajor"]), int(nuke.env["NukeVersionMinor"]))

if _version < MINIMUM_NUKE:
    nuke.warning("CorridorKey needs Nuke %d.%d or later (its .cat runs on the PyTorch 2.1 runtime of Nuke "
                 "15.1+): no menu entries in this Nuke %d.%d" % (MINIMUM_NUKE + _version))
else:
    _toolbar = nuke.menu("Nodes").addMenu("CorridorKey", icon="CorridorKey.png")
    _toolbar.addCommand("CorridorKey", "nuke.createNode('CorridorKey')", icon="CorridorKey.png")
    _toolbar.addCommand("Insert template comp", insert_corridorkey_template)
