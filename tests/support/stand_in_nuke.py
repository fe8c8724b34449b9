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


# --------------------------------------------------------------------------- the gizmo's own Python, at run time
#
# (The typed, executable model of the gizmo -- knobs from its addUserKnob lines, children from its graph,
# menus whose value() is the item's name, expressions and renders -- is tests/support/nuke_graph.py; the
# Verify button's tests run there. This hand-listed stand-in stays for the event-log tests of
# tests/export/test_nuke_files.py.)
#
# A second RECORDING STAND-IN, for the Python the gizmo and the plugin files run inside
# Nuke (onCreate / knobChanged, nuke/init.py, menu.py). It offers only calls that
# Foundry documents or that Foundry's own Cattery gizmos make:
#   nuke.thisNode(), nuke.thisKnob(), nuke.toNode(), nuke.warning(), nuke.message(),
#   nuke.pluginAddPath(), nuke.nodePaste(), nuke.menu().addMenu().addCommand(),
#   Group.node(name), Node.forceValidate() (RAFT.gizmo / BackgroundMatting.gizmo onCreate),
#   Node.input(i) (Foundry's Python reference, nuke.Node: the node on input i, None when unconnected),
#   Node.hasError() (Foundry's Python reference, nuke.Node: "True if the node itself has an error"),
#   nuke.env['NukeVersionMajor'] / ['NukeVersionMinor'] (read so in public init.py files, e.g.
#   nim-labs/connectors plugins/Nuke/install/init.py),
#   File_Knob.evaluate() (Python API: EvalString_Knob.evaluate), Knob.value()/getValue()/setValue().
# Anything else raises AttributeError, as a call Nuke lacks would.


class RuntimeKnob:
    def __init__(self, log: List[tuple], node: RuntimeNode, name: str, value: Any = "",
                 evaluates_to: Optional[str] = None):
        self._log, self._node, self._name, self._value = log, node, name, value
        self._evaluates_to = evaluates_to

    def name(self) -> str:
        return self._name

    def value(self) -> Any:
        return self._value

    def getValue(self) -> Any:
        return self._value

    def setValue(self, value: Any) -> bool:
        self._log.append(("setValue", f"{self._node.name()}.{self._name}", value))
        self._value = value
        return True

    def setEnabled(self, enabled: bool) -> None:  # nuke.Knob.setEnabled (Foundry's Python reference)
        self._log.append(("setEnabled", f"{self._node.name()}.{self._name}", bool(enabled)))
        self.enabled = bool(enabled)

    def fromUserText(self, text: str) -> None:  # nuke.File_Knob.fromUserText: set the file as typed by the user
        self._log.append(("fromUserText", f"{self._node.name()}.{self._name}", text))
        self._value = text

    def evaluate(self) -> str:
        self._log.append(("evaluate", f"{self._node.name()}.{self._name}"))
        return self._evaluates_to if self._evaluates_to is not None else str(self._value)


class RuntimeNode:
    def __init__(self, log: List[tuple], name: str, knobs: Dict[str, Any], children=(), loads_cat=True,
                 inputs: Sequence[Optional[RuntimeNode]] = (), has_error: bool = False):
        self._log, self._name = log, name
        self._has_error = has_error
        self._inputs = list(inputs)
        self._knobs = {k: (v if isinstance(v, RuntimeKnob) else RuntimeKnob(log, self, k, v))
                       for k, v in knobs.items()}
        for k in self._knobs.values():
            k._node = self
        self._children = {c.name(): c for c in children}
        self.validated = False

    def name(self) -> str:
        return self._name

    def __getitem__(self, name: str) -> RuntimeKnob:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        self._log.append(("knob", f"{self._name}.{name}"))
        return self._knobs[name]

    def knob(self, name: str) -> Optional[RuntimeKnob]:
        return self._knobs.get(name)

    def node(self, name: str) -> Optional[RuntimeNode]:  # nuke.Group.node
        return self._children.get(name)

    def input(self, i: int) -> Optional[RuntimeNode]:  # nuke.Node.input: None when nothing is connected
        self._log.append(("input", self._name, i))
        return self._inputs[i] if 0 <= i < len(self._inputs) else None

    def forceValidate(self) -> None:
        self._log.append(("forceValidate", self._name))
        self.validated = True

    def hasError(self) -> bool:  # nuke.Node.hasError: the node itself is in error (here: after validating)
        self._log.append(("hasError", self._name))
        return self._has_error and self.validated


class RuntimeGizmo(RuntimeNode):
    """The CorridorKey node itself: a Gizmo, whose ``filename()`` is the .gizmo file it was made from
    (Foundry's Python reference, nuke.Gizmo.filename: "Gizmo filename")."""

    def __init__(self, *args, gizmo_file: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self._gizmo_file = gizmo_file

    def filename(self) -> str:
        self._log.append(("filename", self._name))
        return self._gizmo_file


class GizmoRuntime(types.ModuleType):
    """Stand-in ``nuke`` for running the gizmo's onCreate/knobChanged on one CorridorKey node.

    ``cats``: the path each Inference node's modelFile evaluates to ("" = not found on
    the plugin path). ``screen``: the Screen knob's index. ``hint_connected``: whether a node is
    connected to the Hint input (input 1); ``hint_channel``: the Hint Channel knob's index.
    """

    def __init__(self, cats: Dict[str, str], screen: int = 0, disabled: Sequence[str] = (),
                 hint_connected: bool = True, hint_channel: int = 0, in_error: Sequence[str] = (),
                 gizmo_file: str = ""):
        super().__init__("nuke")
        self.__file__ = __file__
        self.STAND_IN = True
        self.events: List[tuple] = []
        self.warnings: List[str] = []
        children = [RuntimeNode(self.events, name, {"modelFile": RuntimeKnob(self.events, None, "modelFile", "[...]",
                                                                             evaluates_to=path),
                                                    "gpuName": "Stand-in GPU", "disable": name in disabled},
                                has_error=name in in_error)
                    for name, path in cats.items()]
        children += [RuntimeNode(self.events, "ToNetwork", {"in_colorspace": "scene_linear",
                                                            "out_colorspace": "color_picking", "disable": False},
                                 has_error="ToNetwork" in in_error),
                     RuntimeNode(self.events, "FromNetwork", {"in_colorspace": "", "out_colorspace": "",
                                                              "disable": False},
                                 has_error="FromNetwork" in in_error)]
        upstream = [RuntimeNode(self.events, "Read1", {}),
                    RuntimeNode(self.events, "Roto1", {}) if hint_connected else None]
        self.gizmo = RuntimeGizmo(self.events, "CorridorKey1", {"screen": float(screen), "gpuName": "",
                                                              "status": "", "modelFile": "", "halfPrecision": False,
                                                              "hint_channel": float(hint_channel), "quality_mode": 0.0},
                                 children, inputs=upstream, gizmo_file=gizmo_file)
        # Root: customOCIOConfigPath (Project Settings > Color, as saved in public .nk files) is empty here.
        self._root = RuntimeNode(self.events, "root", {"customOCIOConfigPath": ""})
        self._this_knob: Optional[str] = None

    def thisNode(self) -> RuntimeNode:
        return self.gizmo

    def thisKnob(self) -> RuntimeKnob:
        return self.gizmo.knob(self._this_knob) or RuntimeKnob(self.events, self.gizmo, self._this_knob)

    def toNode(self, name: str) -> Optional[RuntimeNode]:
        return self.gizmo.node(name)

    def root(self) -> RuntimeNode:
        return self._root

    def warning(self, message: str) -> None:
        self.events.append(("warning", message))
        self.warnings.append(message)

    def run(self, code: str, knob: Optional[str] = None) -> None:
        """Run gizmo Python as Nuke would (``import nuke`` finds this stand-in)."""
        import sys
        self._this_knob = knob
        saved = sys.modules.get("nuke")
        sys.modules["nuke"] = self
        try:
            exec(compile(code, "<gizmo script>", "exec"), {"nuke": self})
        finally:
            if saved is None:
                sys.modules.pop("nuke", None)
            else:
                sys.modules["nuke"] = saved


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
