"""A RECORDING STAND-IN for Foundry's ``nuke`` module (not Nuke; for tests only).

It knows just enough of the Python API that ``nuke/corridorkey_create_cat.py``
uses: ``createNode``, the knob classes it adds (``Double_Knob``, ``Int_Knob``,
``Enumeration_Knob``), ``node.knob`` / ``node[...]`` / ``addKnob`` and the
CatFileCreator node with its documented knobs (``torchScriptFile``, ``catFile``,
``channelsIn``, ``channelsOut``, ``modelId``, ``outputScale``, button
``createCatFile``). Every call is recorded in ``events`` so tests can assert the
exact values set and their order. Pressing ``createCatFile`` simulates NukeX:

* ``"write"``   writes a JSON record of the node's knobs to ``catFile``
* ``"raise"``   raises RuntimeError like a failing CatFileCreator
* ``"nothing"`` returns without writing anything (a silent failure)

Install it for one test with ``monkeypatch.setitem(sys.modules, "nuke", StandInNuke())``.
"""

from __future__ import annotations

import json
import types
from typing import Any, Dict, List, Optional, Sequence, Tuple


class StandInKnob:
    kind = "Knob"

    def __init__(self, owner: StandInNuke, name: str, label: Optional[str] = None, value: Any = ""):
        self._nuke = owner
        self._name = name
        self.label = label
        self.tooltip: Optional[str] = None
        self.range: Optional[Tuple[float, float]] = None
        self._value = value
        self.node: Optional[StandInNode] = None

    def name(self) -> str:
        return self._name

    def Class(self) -> str:
        return self.kind

    def setValue(self, value: Any) -> bool:
        self._nuke.events.append(("setValue", self._path(), value))
        self._value = self._convert(value)
        return True

    def _convert(self, value: Any) -> Any:
        return value

    def value(self) -> Any:
        return self._value

    def getValue(self) -> Any:
        return self._value

    def setTooltip(self, text: str) -> None:
        self._nuke.events.append(("setTooltip", self._path(), text))
        self.tooltip = text

    def setRange(self, minimum: float, maximum: float) -> None:
        self._nuke.events.append(("setRange", self._path(), (minimum, maximum)))
        self.range = (minimum, maximum)

    def _path(self) -> str:
        return f"{self.node.name() if self.node else '?'}.{self._name}"


class StandInStringKnob(StandInKnob):
    kind = "String_Knob"

    def _convert(self, value: Any) -> Any:
        return str(value)


class StandInFileKnob(StandInStringKnob):
    kind = "File_Knob"


class StandInDoubleKnob(StandInKnob):
    kind = "Double_Knob"

    def __init__(self, owner, name, label=None, value=0.0):
        super().__init__(owner, name, label, float(value))

    def _convert(self, value: Any) -> Any:
        return float(value)


class StandInIntKnob(StandInKnob):
    kind = "Int_Knob"

    def __init__(self, owner, name, label=None, value=0):
        super().__init__(owner, name, label, int(value))

    def _convert(self, value: Any) -> Any:
        if float(value) != int(value):
            raise TypeError(f"Int_Knob {self._name}: {value!r} is not an integer")
        return int(value)


class StandInEnumerationKnob(StandInKnob):
    kind = "Enumeration_Knob"

    def __init__(self, owner, name, label, items: Sequence[str]):
        super().__init__(owner, name, label, 0)
        self.items = list(items)

    def _convert(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.items.index(value)
        if not 0 <= int(value) < len(self.items):
            raise ValueError(f"Enumeration_Knob {self._name}: index {value!r} out of range")
        return int(value)

    def value(self) -> str:  # Nuke: value() is the item name, getValue() the index as a float
        return self.items[self._value]

    def getValue(self) -> float:
        return float(self._value)


class StandInButton(StandInKnob):
    kind = "PyScript_Knob"

    def execute(self) -> None:
        self._nuke.events.append(("execute", self._path()))
        self._nuke._press(self.node, self._name)


class StandInNode:
    def __init__(self, owner: StandInNuke, cls: str, name: str, knobs: Sequence[StandInKnob]):
        self._nuke = owner
        self._cls = cls
        self._name = name
        self._knobs: Dict[str, StandInKnob] = {}
        for k in knobs:
            self._attach(k)

    def _attach(self, knob: StandInKnob) -> None:
        knob.node = self
        self._knobs[knob.name()] = knob

    def Class(self) -> str:
        return self._cls

    def name(self) -> str:
        return self._name

    def knob(self, name: str) -> Optional[StandInKnob]:
        return self._knobs.get(name)

    def knobs(self) -> Dict[str, StandInKnob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> StandInKnob:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")  # what Nuke raises
        return self._knobs[name]

    def addKnob(self, knob: StandInKnob) -> None:
        if knob.name() in self._knobs:
            raise ValueError(f"{self._name} already has a knob {knob.name()}")
        self._nuke.events.append(("addKnob", self._name, knob.name(), knob.Class()))
        self._attach(knob)


class StandInNuke(types.ModuleType):
    """Stand-in for the ``nuke`` module. ``on_create_cat`` is "write", "raise" or "nothing"."""

    def __init__(self, on_create_cat: str = "write", nukex: bool = True, mangle: Optional[Dict[str, Any]] = None):
        super().__init__("nuke")
        self.__file__ = __file__  # so nobody mistakes it for Foundry's module
        self.STAND_IN = True
        self.on_create_cat = on_create_cat
        self.env = {"nukex": nukex, "NukeVersionString": "stand-in"}
        #: knob name -> value the CatFileCreator stores instead of what is set (a misbehaving Nuke)
        self.mangle = dict(mangle or {})
        self.events: List[tuple] = []
        self.nodes_created: List[StandInNode] = []
        self.Double_Knob = lambda name, label=None: StandInDoubleKnob(self, name, label)
        self.Int_Knob = lambda name, label=None: StandInIntKnob(self, name, label)
        self.Enumeration_Knob = lambda name, label, items: StandInEnumerationKnob(self, name, label, items)

    def createNode(self, cls: str, args: str = "", inpanel: bool = True) -> StandInNode:
        self.events.append(("createNode", cls))
        if cls != "CatFileCreator":
            raise RuntimeError(f"stand-in knows only CatFileCreator, not {cls}")
        name = f"{cls}{len(self.nodes_created) + 1}"
        knobs = [
            StandInFileKnob(self, "torchScriptFile", "Torchscript File"),
            StandInFileKnob(self, "catFile", "Cat File"),
            StandInStringKnob(self, "channelsIn", "Channels In"),
            StandInStringKnob(self, "channelsOut", "Channels Out"),
            StandInStringKnob(self, "modelId", "Model Id"),
            StandInIntKnob(self, "outputScale", "Output Scale", 1),
            StandInButton(self, "createCatFile", "Create .cat file"),
        ]
        node = StandInNode(self, cls, name, knobs)
        if self.mangle:
            for kname, stored in self.mangle.items():
                knob = node.knob(kname)
                knob._convert = (lambda stored: (lambda value: stored))(stored)  # noqa: B023 (bound by the outer call)
        self.nodes_created.append(node)
        return node

    def _press(self, node: StandInNode, button: str) -> None:
        if self.on_create_cat == "raise":
            raise RuntimeError("CatFileCreator: the model could not be loaded (stand-in failure)")
        if self.on_create_cat == "nothing":
            return
        record = {name: (k.value() if not isinstance(k, StandInButton) else None)
                  for name, k in node.knobs().items()}
        record["_custom"] = {
            name: {"class": k.Class(), "label": k.label, "tooltip": k.tooltip, "range": k.range,
                   "value": k.getValue(), "items": getattr(k, "items", None)}
            for name, k in node.knobs().items()
            if name not in ("torchScriptFile", "catFile", "channelsIn", "channelsOut", "modelId",
                            "outputScale", "createCatFile")
        }
        with open(node["catFile"].value(), "w") as f:
            json.dump(record, f)


# --------------------------------------------------------------------------- the plugin files' Python
#
# (The gizmo's own Python -- onCreate, knobChanged, the Verify button -- runs in the typed, executable model of
# Nuke, tests/support/nuke_graph.py: knobs from its addUserKnob lines, children from its graph.)
#
# A second RECORDING STAND-IN, for nuke/init.py and menu.py. It offers only calls that Foundry documents or
# that public init.py/menu.py files make:
#   nuke.pluginAddPath(), nuke.nodePaste(), nuke.menu().addMenu().addCommand(), nuke.warning(),
#   nuke.env['NukeVersionMajor'] / ['NukeVersionMinor'] (read so in public init.py files, e.g.
#   nim-labs/connectors plugins/Nuke/install/init.py).
# Anything else raises AttributeError, as a call Nuke lacks would.


class PluginRuntime(types.ModuleType):
    """Stand-in ``nuke`` for nuke/init.py and menu.py: records plugin-path, menu and paste calls."""

    def __init__(self, version: Tuple[int, int] = (16, 0)):
        super().__init__("nuke")
        self.__file__ = __file__
        self.STAND_IN = True
        self.events: List[tuple] = []
        self.commands: Dict[str, Any] = {}
        # strings, so that code reading them must int() them, as the public scripts do
        self.env = {"NukeVersionMajor": str(version[0]), "NukeVersionMinor": str(version[1])}

    def pluginAddPath(self, path: str, addToSysPath: bool = True) -> None:
        self.events.append(("pluginAddPath", path))

    def warning(self, message: str) -> None:
        self.events.append(("warning", message))

    def message(self, message: str) -> None:
        self.events.append(("message", message))

    def nodePaste(self, path: str) -> None:
        self.events.append(("nodePaste", path))

    def menu(self, name: str) -> PluginRuntime._Menu:
        return PluginRuntime._Menu(self, name)

    class _Menu:
        def __init__(self, owner: PluginRuntime, path: str):
            self._owner, self._path = owner, path

        def addMenu(self, name: str, icon: str = "") -> PluginRuntime._Menu:
            self._owner.events.append(("addMenu", f"{self._path}/{name}", icon))
            return PluginRuntime._Menu(self._owner, f"{self._path}/{name}")

        def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "") -> None:
            self._owner.events.append(("addCommand", f"{self._path}/{name}"))
            self._owner.commands[f"{self._path}/{name}"] = command
