"""CorridorKey menu entries: Nodes toolbar > CorridorKey (the node, and the template comp)."""

import nuke


def open_corridorkey_template():
    """Open CorridorKey_template.nk (it lives next to CorridorKey.gizmo on the plugin path)."""
    path = nuke.findFile("CorridorKey_template.nk")
    if not path:
        nuke.message("CorridorKey_template.nk is not on the plugin path; see the CorridorKey README.")
        return
    nuke.scriptOpen(path)


_toolbar = nuke.menu("Nodes").addMenu("CorridorKey", icon="CorridorKey.png")
_toolbar.addCommand("CorridorKey", "nuke.createNode('CorridorKey')", icon="CorridorKey.png")
_toolbar.addCommand("Open template comp", open_corridorkey_template)
