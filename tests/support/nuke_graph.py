"""An EXECUTABLE MODEL of the Nuke node graph (tests only; not Nuke): the gizmo's behaviour, not its text.

:class:`NukeSession` is a stand-in ``nuke`` module that loads a script the way Nuke does
(parse, create every node with the knobs of its class and the values the script gives, wire
its inputs from the node stack, run each node's ``onCreate``), runs the gizmo's Python
(``onCreate``, ``knobChanged``, buttons) against typed knobs, and renders any node to an
``H x W x 4`` float32 RGBA array (rows top-down; Nuke's y counts from the bottom, so
formats of different sizes are aligned at the bottom-left corner).

Everything is driven by the PARSED script or gizmo text (``tests/support/nukescript.py``):
a gizmo's user knobs come from its ``addUserKnob`` lines, its child nodes from its graph.
Node classes live in :data:`NODE_CLASSES`, a registry: each entry lists the class's knobs
(name -> knob type and default, from Foundry's node reference) and its render function. A
script that sets a knob the class does not list, or uses a class that is not registered,
is an error that says so: add the entry (a few lines, with its Foundry reference).

Behaviours and their Foundry references (Nuke Python API reference unless said otherwise):

* ``Knob.value()`` / ``getValue()`` / ``setValue()``: ``Array_Knob.value()`` and
  ``getValue()`` are the number; ``Enumeration_Knob.value()`` is the selected item's NAME and
  ``getValue()`` its index (a float), ``setValue()`` takes a name or an index;
  ``Boolean_Knob.value()`` is a bool; ``String_Knob.value()`` the text and
  ``EvalString_Knob.evaluate()`` the text with its TCL evaluated; ``Link_Knob`` forwards to
  the knob it links (``Link_Knob.getLink()``); ``Text_Knob`` holds its ``T`` text.
  A knob a node lacks: ``node['x']`` raises ``NameError``, ``node.knob('x')`` is ``None``.
* ``addUserKnob {type ...}`` type ids: NDK Developer Guide, "Knob Types" (1 String, 2 File,
  3 Int, 4 Enumeration, 6 Bool, 7 Double, 20 Tab, 22 PyScript, 26 Text, 41 Link).
* ``nuke.thisNode()`` / ``nuke.thisKnob()``: the node and knob whose callback runs;
  ``nuke.toNode(name)`` finds a node in the current context (the group of the node whose
  callback runs); ``Group.node(name)`` a child; ``Node.input(i)`` the node on input ``i`` or
  ``None``; ``Node.setInput``; ``Node.forceValidate()`` / ``hasError()``; ``nuke.root()``.
* Callbacks: ``onCreate`` runs when a node is created, script load included, after the
  script's knob values are set and its inputs are connected (Python Developer's Guide,
  "Callbacks"); ``knobChanged`` runs when an artist changes a knob (:meth:`Node.user_set`)
  or connects an input (``nuke.thisKnob().name() == 'inputChange'``, :meth:`Node.user_connect`),
  never on a ``setValue`` from Python. Which of these a real Nuke confirms is listed in
  :data:`ASSUMPTIONS` and checked by ``nuke/corridorkey_probe.py`` (tests/nuke_side/test_probe.py).
* Rendering: a disabled node passes its input 0 through ("disable" on every node, Nuke User
  Guide); an unconnected input is black in the root format; each class's own rule is at its
  render function.
"""

from __future__ import annotations

import json
import math
import os
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from nuke_expr import Context, ExprError, lsearch_inline, tcl_eval, tcl_list, tcl_split, tcl_substitute
from nuke_expr import evaluate as evaluate_expression
from nukescript import GROUP_CLASSES, Braced, Token, UserKnob, parse, parse_serialise_knob, token_text
from nukescript import Node as ParsedNode

CHANNELS = ("red", "green", "blue", "alpha")


class GraphError(RuntimeError):
    """The script uses something this model does not know, or a render fails as it would in Nuke."""


# --------------------------------------------------------------------------- knobs


def _expression_of(tokens: Sequence[Token]) -> Optional[str]:
    """``{{expr}}`` (or ``{{"expr"}}``) -> ``expr``; a plain value -> None."""
    if len(tokens) == 1 and isinstance(tokens[0], Braced):
        inner = tokens[0].words()
        if len(inner) == 1 and isinstance(inner[0], Braced):
            return inner[0].inner.strip()
    return None


class Knob:
    """A knob: a plain value, or an expression evaluated when read (``Knob.setExpression``)."""

    CLASS = "Knob"

    def __init__(self, node: Node, name: str, default: Any = "", label: Optional[str] = None):
        self._node, self._name, self.label = node, name, label
        self._value = self._convert(default)
        self._expression: Optional[str] = None

    # Foundry: Knob.name(), Knob.Class(), Knob.node()
    def name(self) -> str:
        return self._name

    def Class(self) -> str:
        return self.CLASS

    def node(self) -> Node:
        return self._node

    def _convert(self, value: Any) -> Any:
        return value

    def _raw(self) -> Any:
        if self._expression is not None:
            return self._node.session.evaluate_in(self._node, self._expression)
        return self._value

    def value(self) -> Any:
        return self._raw()

    def getValue(self) -> Any:
        return self._raw()

    def setValue(self, value: Any) -> bool:
        self._expression = None
        self._value = self._convert(value)
        self._node.session.log.append(("setValue", self.fullname(), value))
        return True

    def setExpression(self, expression: str) -> bool:
        self._expression = expression
        return True

    # Foundry: Knob.setEnabled(enabled) greys the knob out in the panel (its value still counts), Knob.enabled()
    def setEnabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)
        self._node.session.log.append(("setEnabled", self.fullname(), bool(enabled)))

    def enabled(self) -> bool:
        return getattr(self, "_enabled", True)

    def hasExpression(self) -> bool:
        return self._expression is not None

    def fullname(self) -> str:
        return f"{self._node.fullname()}.{self._name}"

    def load(self, tokens: Sequence[Token]) -> None:
        """Set from a script line's value tokens (an expression, or the class's text form)."""
        expr = _expression_of(tokens)
        if expr is not None:
            self._expression = expr
        else:
            self._value = self._convert(" ".join(token_text(t) for t in tokens))

    def expression_value(self) -> float:
        """The number an expression reading this knob sees."""
        value = self._raw()
        if isinstance(value, (bool, int, float, np.floating)):
            return float(value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ExprError(f"knob {self.fullname()} holds {value!r}, not a number") from None


class Array_Knob(Knob):
    """Double (7) knobs: ``value()`` and ``getValue()`` are the float."""

    CLASS = "Double_Knob"

    def _convert(self, value: Any) -> float:
        return float(value)

    def _raw(self) -> float:
        return float(super()._raw())


class Int_Knob(Array_Knob):
    CLASS = "Int_Knob"

    def _convert(self, value: Any) -> int:
        if float(value) != int(float(value)):
            raise TypeError(f"Int_Knob {self._name}: {value!r} is not an integer")
        return int(float(value))

    def value(self) -> int:
        return int(self._raw())


class Boolean_Knob(Array_Knob):
    """Bool (6): ``value()`` is a bool, ``getValue()`` the number (Boolean_Knob derives from Array_Knob)."""

    CLASS = "Boolean_Knob"

    def _convert(self, value: Any) -> float:
        if isinstance(value, str):
            if value not in ("true", "false", "0", "1"):
                raise ValueError(f"Boolean_Knob {self._name}: {value!r} is not true/false")
            return float(value in ("true", "1"))
        return float(bool(value))

    def value(self) -> bool:
        return bool(self._raw())


class Enumeration_Knob(Knob):
    """Menu (4): ``value()`` the item's name, ``getValue()`` the index as a float; ``setValue`` a name or index."""

    CLASS = "Enumeration_Knob"

    def __init__(self, node: Node, name: str, items: Sequence[str], label: Optional[str] = None):
        self.items = list(items)
        super().__init__(node, name, 0, label)

    def _convert(self, value: Any) -> int:
        if isinstance(value, str) and value in self.items:
            return self.items.index(value)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"Enumeration_Knob {self._name}: {value!r} is none of {self.items}") from None
        if not 0 <= int(value) < len(self.items) or int(value) != value:
            raise ValueError(f"Enumeration_Knob {self._name}: index {value!r} out of range")
        return int(value)

    def _index(self) -> int:
        raw = self._raw()
        return int(raw) if not isinstance(raw, str) else self._convert(raw)

    def value(self) -> str:
        return self.items[self._index()]

    def getValue(self) -> float:
        return float(self._index())

    def expression_value(self) -> float:  # Nuke User Guide: a menu's value in an expression is its index
        return float(self._index())


class String_Knob(Knob):
    """String (1) / File (2) / EvalString: ``value()`` the text, ``evaluate()`` with its TCL evaluated."""

    CLASS = "String_Knob"

    def _convert(self, value: Any) -> str:
        return str(value)

    def evaluate(self) -> str:
        return self._node.session.tcl_text(self._node, str(self._raw()))


class File_Knob(String_Knob):
    CLASS = "File_Knob"

    def fromUserText(self, text: str) -> None:
        """Foundry, File_Knob.fromUserText: "Assign string to knob, parses frame range off the end and opens file
        to get set the format" (as typing the path in the panel does). On a Read: ``format`` becomes the file's
        size and ``first``/``last`` its range (one frame here), and the Read knows its error (``hasError``)."""
        self.setValue(text)
        self._node.session.log.append(("fromUserText", self.fullname(), text))
        node = self._node
        if node.Class() == "Read" and self._name == "file":
            node.validated = True
            img = node.session.read_file(node["file"].evaluate(), node)
            if img is not None:
                node["format"].setValue(f"{img.shape[1]} {img.shape[0]} 0 0 {img.shape[1]} {img.shape[0]} 1")


class Text_Knob(String_Knob):
    """Text (26): a label line; its ``T`` text is its value."""

    CLASS = "Text_Knob"


class Channel_Knob(String_Knob):
    """A channel or channel-set knob (Copy from0/to0, Shuffle red, Premult alpha): its text."""

    CLASS = "Channel_Knob"


class Colorspace_Knob(String_Knob):
    """OCIOColorSpace in/out: ``value()`` the colour space or role name (the menu's index depends on the
    config, so ``getValue()`` is not modelled: reading it fails loudly)."""

    CLASS = "Colorspace_Knob"

    def getValue(self) -> Any:
        raise GraphError(f"{self.fullname()}.getValue(): the stand-in does not model a colour space menu's "
                         "index (it depends on the OCIO config); read value() (the name)")


class Tab_Knob(Knob):
    CLASS = "Tab_Knob"


class PyScript_Knob(String_Knob):
    """Python button (22): ``execute()`` runs its ``T`` script with ``nuke.thisNode()`` its node."""

    CLASS = "PyScript_Knob"

    def execute(self) -> None:
        self._node.session.run_python(self._node, str(self._value), self._name)


class Link_Knob:
    """Link (41): every call goes to the linked knob (Foundry: Link_Knob, ``getLink()``)."""

    def __init__(self, node: Node, name: str, link: str, label: Optional[str] = None):
        self._node, self._name, self._link, self.label = node, name, link, label

    def name(self) -> str:
        return self._name

    def Class(self) -> str:
        return "Link_Knob"

    def getLink(self) -> str:
        return self._link

    def target(self) -> Knob:
        node_name, knob_name = self._link.rsplit(".", 1)
        child = self._node.node(node_name) if isinstance(self._node, Group) else None
        if child is None:
            raise GraphError(f"link knob {self._node.fullname()}.{self._name} -> {self._link}: no node {node_name}")
        return child[knob_name]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.target(), attr)

    def load(self, tokens: Sequence[Token]) -> None:
        self.target().load(tokens)

    def expression_value(self) -> float:
        return self.target().expression_value()


#: addUserKnob type id -> knob factory (NDK Developer Guide, "Knob Types").
USER_KNOB_TYPES: Dict[int, Callable[[Node, UserKnob], Any]] = {
    1: lambda n, k: String_Knob(n, k.name, "", k.label),
    2: lambda n, k: File_Knob(n, k.name, "", k.label),
    3: lambda n, k: Int_Knob(n, k.name, 0, k.label),
    4: lambda n, k: Enumeration_Knob(n, k.name, k.menu or [], k.label),
    6: lambda n, k: Boolean_Knob(n, k.name, False, k.label),
    7: lambda n, k: Array_Knob(n, k.name, 0.0, k.label),
    20: lambda n, k: Tab_Knob(n, k.name, "", k.label),
    22: lambda n, k: PyScript_Knob(n, k.name, k.text or "", k.label),
    26: lambda n, k: Text_Knob(n, k.name, k.text or "", k.label),
    41: lambda n, k: Link_Knob(n, k.name, k.text or "", k.label),
}


class Box_Knob(Knob):
    """An array of numbers, each a value or an expression (Crop ``box``: x y r t)."""

    CLASS = "BBox_Knob"

    def load(self, tokens: Sequence[Token]) -> None:
        if len(tokens) != 1 or not isinstance(tokens[0], Braced):
            raise GraphError(f"{self.fullname()}: expected {{x y r t}}, got {tokens!r}")
        self._value = [_expression_of([w]) or token_text(w) for w in tokens[0].words()]

    def _raw(self) -> List[float]:
        out = []
        for item in self._value:
            is_expr = isinstance(item, str) and not _is_number(item)
            out.append(float(self._node.session.evaluate_in(self._node, item)) if is_expr else float(item))
        return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------- node classes


#: (node, knob name) -> a new knob of that node
KnobFactory = Callable[[Any, str], Any]


def _bool(default: bool = False) -> KnobFactory:
    return lambda node, name: Boolean_Knob(node, name, default)


def _double(default: float = 0.0) -> KnobFactory:
    return lambda node, name: Array_Knob(node, name, default)


def _string(default: str = "", cls=String_Knob) -> KnobFactory:
    return lambda node, name: cls(node, name, default)


def _menu(items: Sequence[str], default: str) -> KnobFactory:
    def make(node, name):
        knob = Enumeration_Knob(node, name, items)
        knob._value = knob._convert(default)
        return knob
    return make


#: Knobs every node has (Nuke User Guide, the Node tab): their values matter only for the ones rendered.
COMMON_KNOBS: Dict[str, KnobFactory] = {
    "name": _string(), "disable": _bool(), "xpos": _double(), "ypos": _double(), "inputs": _double(1),
    "label": _string(), "note_font": _string(), "tile_color": _string(), "selected": _bool(),
    "knobChanged": _string(), "onCreate": _string(), "help": _string(),
}


@dataclass(frozen=True)
class NodeClass:
    """A registered node class: its own knobs (Foundry's node reference) and how it renders."""

    name: str
    knobs: Dict[str, KnobFactory]
    render: Callable[[Node, Renderer], np.ndarray]
    reference: str  # where its behaviour comes from


NODE_CLASSES: Dict[str, NodeClass] = {}


def node_class(name: str, reference: str, knobs: Optional[Dict[str, KnobFactory]] = None):
    """Decorator: register ``render(node, renderer) -> image`` for node class ``name``."""
    def register(render):
        NODE_CLASSES[name] = NodeClass(name, dict(knobs or {}), render, reference)
        return render
    return register


class Node:
    """A node of the model: knobs typed by its class (or its ``addUserKnob`` lines), inputs, a parent group."""

    def __init__(self, session: NukeSession, cls: str, parent: Optional[Group]):
        self.session, self._cls, self.parent = session, cls, parent
        self._knobs: Dict[str, Any] = {}
        self._inputs: List[Optional[Node]] = []
        self._order: List[str] = []
        self.validated = False
        spec = NODE_CLASSES.get(cls)
        factories = dict(COMMON_KNOBS)
        if spec is not None:
            factories.update(spec.knobs)
        for name, make in factories.items():
            self._knobs[name] = make(self, name)

    # Foundry: Node.Class(), name(), fullName(), knob(), knobs(), __getitem__
    def Class(self) -> str:
        return self._cls

    def name(self) -> str:
        return str(self._knobs["name"].value())

    def fullname(self) -> str:
        if self.parent is None or self.parent.parent is None:
            return self.name()
        return f"{self.parent.fullname()}.{self.name()}"

    def knob(self, name: str) -> Any:
        return self._knobs.get(name)

    def knobs(self) -> Dict[str, Any]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Any:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")  # what Nuke raises
        return self._knobs[name]

    def addKnob(self, knob: Any) -> None:
        self._knobs[knob.name()] = knob

    def add_user_knob(self, spec: UserKnob) -> None:
        if spec.type_id not in USER_KNOB_TYPES:
            raise GraphError(f"addUserKnob type {spec.type_id} ({spec.name}) is not modelled; add it to "
                             "nuke_graph.USER_KNOB_TYPES with its NDK 'Knob Types' entry")
        self._knobs[spec.name] = USER_KNOB_TYPES[spec.type_id](self, spec)

    # Foundry: Node.input(i), inputs(), setInput(i, node)
    def input(self, i: int) -> Optional[Node]:
        return self._inputs[i] if 0 <= i < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: Optional[Node]) -> bool:
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def sample(self, channel: str, x: float, y: float, dx: Optional[float] = None, dy: Optional[float] = None,
               frame: Optional[float] = None) -> float:
        """Foundry Node.sample: the value of the pixel x, y lands in (origin bottom-left, integers at corners),
        at ``frame`` (default the current frame)."""
        img = self.session.render(self, None if frame is None else int(frame))
        h, w = img.shape[:2]
        col, row = int(math.floor(x)), h - 1 - int(math.floor(y))
        if not (0 <= col < w and 0 <= row < h):
            return 0.0
        return float(img[row, col, _channel_index(channel)])

    # Foundry: Node.width() / height(), the width and height of the node's format
    def width(self) -> int:
        return format_size(self.session.render(self))[0]

    def height(self) -> int:
        return format_size(self.session.render(self))[1]

    def forceValidate(self) -> None:
        self.session.log.append(("forceValidate", self.fullname()))
        self.validated = True

    def hasError(self) -> bool:
        """Foundry, Node.hasError: "True if the node itself has an error", known once the node was validated
        (``forceValidate``; a Read's ``fromUserText`` opens its file). Modelled errors: an Inference node whose
        .cat cannot load; a Read whose file cannot be read; an OCIOColorSpace whose colour space (or role) the
        session's config lacks (Nuke shows "OCIO: ... not found" on the node)."""
        self.session.log.append(("hasError", self.fullname()))
        if not self.validated or self["disable"].value():
            return False
        if self._cls == "Inference":
            try:
                self.session.cat_record(self["modelFile"].evaluate())
            except GraphError:
                return True
        elif self._cls == "Read":
            return self.session.read_file(self["file"].evaluate(), self) is None
        elif self._cls == "OCIOColorSpace":
            cfg = self.session.ocio()
            return any(cfg.getColorSpace(self[k].value()) is None for k in ("in_colorspace", "out_colorspace"))
        return False

    # The artist's actions (they run knobChanged; a setValue from Python does not).
    def user_set(self, knob: str, value: Any) -> None:
        """Change a knob in the node's panel: set it, then run the node's knobChanged with it."""
        self[knob].setValue(value)
        self.session.knob_changed(self, knob)
        if isinstance(self._knobs[knob], Link_Knob):  # the linked child's own knobChanged runs too
            target = self._knobs[knob].target()
            self.session.knob_changed(target.node(), target.name())

    def open_panel(self) -> None:
        """The artist opens the node's panel: knobChanged runs with ``nuke.thisKnob().name() == 'showPanel'``
        (Foundry, Python Developer's Guide, "knobChanged": the showPanel and hidePanel knobs)."""
        self.session.knob_changed(self, "showPanel")

    def user_connect(self, i: int, node: Optional[Node]) -> None:
        """Connect (or with None disconnect) input ``i`` in the node graph: knobChanged with ``inputChange``."""
        self.setInput(i, node)
        self.session.knob_changed(self, "inputChange")

    def load_knob(self, name: str, tokens: Sequence[Token]) -> None:
        if name not in self._knobs:
            raise GraphError(f"{self._cls} {self.fullname()}: knob {name!r} is not modelled for this class; "
                             "add it to its NODE_CLASSES entry (with Foundry's node reference)")
        self._knobs[name].load(tokens)

    def __repr__(self) -> str:
        return f"<{self._cls} {self.fullname()}>"


class Group(Node):
    """A Group or gizmo instance: its children, ``Group.node(name)``, ``begin()`` / ``end()``."""

    def __init__(self, session: NukeSession, cls: str, parent: Optional[Group]):
        super().__init__(session, cls, parent)
        self.children: List[Node] = []
        self._gizmo_file: Optional[str] = None

    def node(self, name: str) -> Optional[Node]:
        for c in self.children:
            if c.name() == name:
                return c
        return None

    def nodes(self) -> List[Node]:
        return list(self.children)

    def begin(self) -> None:
        self.session._context.append(self)

    def end(self) -> None:
        self.session._context.pop()

    def filename(self) -> str:
        """Foundry, nuke.Gizmo.filename(): the .gizmo file the node was made from (a plain Group has none)."""
        if self._gizmo_file is None:
            raise AttributeError(f"{self.fullname()} is a {self.Class()}, not a gizmo: it has no filename()")
        self.session.log.append(("filename", self.fullname()))
        return self._gizmo_file

    def output(self) -> Optional[Node]:
        outputs = [c for c in self.children if c.Class() == "Output"]
        return outputs[0] if outputs else None


# --------------------------------------------------------------------------- the session (the nuke module)


#: Inference results by (.pt, knob values, precision, input bytes), shared by every session of a test run:
#: a .pt is a pure function of these, and the network's forward is the cost of a render.
INFERENCE_CACHE: Dict[tuple, np.ndarray] = {}

#: Assumptions of this model that only a real Nuke can confirm: probe key -> what the model assumes.
#: nuke/corridorkey_probe.py measures each key in Nuke; tests/nuke_side/test_probe.py compares.
ASSUMPTIONS: Dict[str, Any] = {
    "menu_value_is_item_name": True,
    "menu_getvalue_is_index": True,
    "menu_in_expression_is_index": True,
    "bool_value_is_bool": True,
    "knob_values_after_load": True,  # a loaded node's knobs hold the script's values when onCreate runs
    "oncreate_sees_saved_inputs": True,  # Node.input(1) is connected in onCreate during a script load
    "knobchanged_runs_with_panel_closed": False,  # a Python setValue with no panel open runs no knobChanged
    "tonode_in_child_callback_finds_sibling": True,  # the probe measures nuke.toNode inside Group.begin()
    "cat_lookup_returns_first_on_plugin_path": True,
    "disabled_node_passes_input0": True,
    "switch_which_clamped": True,
    "ocio_colorspace_channels_rgb": True,
    "expression_blank_channel_unchanged": True,
    "exists_parent_input1_is_connection": True,
    # Transform's black_outside is on by default: what a whole-pixel translate uncovers is black (the probe
    # measures it; public scripts save "black_outside false" on Transforms, so on is the default)
    "transform_black_outside_default_on": True,
}


class NukeSession(types.ModuleType):
    """Stand-in ``nuke`` module holding one script: load, callbacks, render.

    ``gizmos``: gizmo class name -> gizmo text, or the ``.gizmo`` file's path (what Nuke finds as
    ``<Class>.gizmo`` on the plugin path; ``Gizmo.filename()`` is that path, or ``<Class>.gizmo`` in the
    first plugin-path folder when only the text is given).
    ``plugin_path``: folders ``[plugins -all NAME]`` searches, in order. ``ocio_config``: the root's
    OCIO config (a file or an ``ocio://`` built-in). ``gpu``: whether a GPU is "available"
    (the Inference node then honours halfPrecision; the arithmetic still runs on the CPU).
    ``files``: path -> image, read by Read nodes before the disk (in-memory plates).
    """

    def __init__(self, gizmos: Optional[Dict[str, str]] = None, plugin_path: Sequence[Path] = (),
                 ocio_config: str = "ocio://cg-config-latest", gpu: bool = False, gpu_name: str = "Not available",
                 root_format: Tuple[int, int] = (2048, 1556), script_dir: Optional[Path] = None):
        super().__init__("nuke")
        self.__file__ = __file__  # so nobody mistakes it for Foundry's module
        self.STAND_IN = True
        self.plugin_path = [Path(p) for p in plugin_path]
        self.gizmos: Dict[str, str] = {}
        self.gizmo_files: Dict[str, str] = {}
        for cls, text_or_path in (gizmos or {}).items():
            if isinstance(text_or_path, Path):
                self.gizmos[cls], self.gizmo_files[cls] = text_or_path.read_text(), str(text_or_path)
            else:
                self.gizmos[cls] = text_or_path
                folder = self.plugin_path[0] if self.plugin_path else Path(".")
                self.gizmo_files[cls] = str(folder / f"{cls}.gizmo")
        self.ocio_config = ocio_config
        self.gpu, self.gpu_name = gpu, gpu_name
        self.script_dir = script_dir
        self.files: Dict[str, np.ndarray] = {}
        self.log: List[tuple] = []
        self.warnings: List[str] = []
        self._root = Group(self, "Root", None)
        self._root["name"].setValue("root")
        # The Root's knobs the gizmo reads (Foundry, Nuke Reference Guide, Project Settings: "proxy mode",
        # "proxy scale" (default 0.5), "proxy format"/"proxy scale" choice, and Color > "custom OCIO config").
        # customOCIOConfigPath holds the session's config, which is also what OCIOColorSpace nodes use.
        self._root.addKnob(Boolean_Knob(self._root, "proxy", False))
        self._root.addKnob(Array_Knob(self._root, "proxy_scale", 0.5))
        self._root.addKnob(Enumeration_Knob(self._root, "proxy_type", ["format", "scale"]))
        self._root["proxy_type"].setValue("scale")
        self._root.addKnob(File_Knob(self._root, "customOCIOConfigPath", ocio_config))
        # Foundry: nuke.GUI is True in an interactive session; nuke.ask(prompt) shows a yes/no dialog;
        # nuke.ProgressTask(name) a progress window with Cancel. ``answer``: what the artist clicks in ask;
        # ``cancel_after``: the artist presses Cancel after that many isCancelled() calls (None: never).
        self.GUI = False
        self.answer = True
        self.asked: List[str] = []
        self.cancel_after: Optional[int] = None
        self.progress: List[tuple] = []
        self.frame = 1  # Foundry: nuke.frame(), the current frame (the root's first frame, 1, by default)
        self._root_format = root_format
        self._context: List[Group] = [self._root]
        self._this: List[Tuple[Node, Optional[str]]] = []
        self._models: Dict[str, Any] = {}
        self._ocio = None
        self.inference_cache = INFERENCE_CACHE
        self._renderers: List[Renderer] = []
        self._built: Dict[int, Node] = {}  # parsed node -> the node made from it (inputs are wired through it)

    # ---- Foundry's module-level calls
    def root(self) -> Group:
        return self._root

    def thisNode(self) -> Node:
        if not self._this:
            raise GraphError("nuke.thisNode() outside a callback")
        return self._this[-1][0]

    def thisKnob(self) -> Any:
        node, knob = self._this[-1]
        if knob in ("inputChange", "showPanel"):  # the dummy knobs knobChanged sees (inputs change, panel opens)
            return Knob(node, knob)
        return node[knob] if knob else None

    def toNode(self, name: str) -> Optional[Node]:
        group = self._context[-1]
        node: Any = group
        for part in name.split("."):
            node = node.node(part) if isinstance(node, Group) else None
            if node is None:
                return None
        return node

    def allNodes(self, filter: Optional[str] = None, group: Optional[Group] = None) -> List[Node]:
        nodes = (group or self._context[-1]).children
        return [n for n in nodes if filter is None or n.Class() == filter]

    def ask(self, prompt: str) -> bool:
        """Foundry, nuke.ask(prompt): a yes/no dialog; True for yes. Only in the GUI (a terminal has no dialog)."""
        if not self.GUI:
            raise GraphError("nuke.ask() in a terminal session: there is no dialog to answer")
        self.asked.append(prompt)
        return self.answer

    @property
    def ProgressTask(self):
        session = self

        class ProgressTask:
            """Foundry, nuke.ProgressTask(name): setMessage(text), setProgress(0..100), isCancelled()."""

            def __init__(self, name: str):
                self._checks = 0
                session.progress.append(("task", name))

            def setMessage(self, text: str) -> None:
                session.progress.append(("message", text))

            def setProgress(self, percent: int) -> None:
                if not isinstance(percent, int) or not 0 <= percent <= 100:
                    raise ValueError(f"ProgressTask.setProgress({percent!r}): an int from 0 to 100")
                session.progress.append(("progress", percent))

            def isCancelled(self) -> bool:
                self._checks += 1
                return session.cancel_after is not None and self._checks > session.cancel_after
        return ProgressTask

    def warning(self, message: str) -> None:
        self.log.append(("warning", message))
        self.warnings.append(message)

    def message(self, message: str) -> None:
        self.log.append(("message", message))

    def delete(self, node: Node) -> None:
        self.log.append(("delete", node.fullname()))
        node.parent.children.remove(node)

    NUKE_VERSION_STRING = "stand-in"

    def scriptReadFile(self, path: str) -> None:
        """Foundry: nuke.scriptReadFile, load a .nk's nodes into the current script."""
        self.load(Path(path).read_text(), script_dir=Path(path).parent)

    def tcl(self, command: str, *args: str) -> str:
        """Foundry: nuke.tcl(command, *args), run a TCL command (the modelled ones)."""
        if args:
            return self._tcl_command(self._context[-1], [command, *args])
        return self._tcl(self._context[-1], command)

    def createNode(self, cls: str, knobs: str = "", inpanel: bool = True) -> Node:
        return self._create(cls, self._context[-1], [], None)

    @property
    def nodes(self):
        session = self

        class _Nodes:  # nuke.nodes.<Class>(): "create a node of the named class" (Python API reference)
            def __getattr__(self, cls: str):
                return lambda **knobs: session._make(cls, knobs)
        return _Nodes()

    def _make(self, cls: str, knobs: Dict[str, Any]) -> Node:
        node = self._create(cls, self._context[-1], [], None)
        if cls == "Read":  # a Read made by Python has the root format until fromUserText reads the file's
            w, h = self.root_format()
            node["format"].setValue(f"{w} {h} 0 0 {w} {h} 1")
        for k, v in knobs.items():
            node[k].setValue(v)
        return node

    # ---- loading
    def load(self, text: str, script_dir: Optional[Path] = None) -> Group:
        """Load a script into the root, as Nuke does on open (onCreate of each node included)."""
        if script_dir is not None:
            self.script_dir = Path(script_dir)
        script = parse(text)
        for parsed in script.nodes:
            if parsed.cls == "Root":
                continue
            self._build(parsed, self._root)
        return self._root

    def _build(self, parsed: ParsedNode, group: Group) -> Node:
        inputs = [self._built[id(p)] if p is not None else None for p in parsed.inputs] if parsed.inputs else []
        node = self._create(parsed.cls, group, inputs, parsed)
        return node

    def _create(self, cls: str, group: Group, inputs: List[Optional[Node]], parsed: Optional[ParsedNode]) -> Node:
        gizmo_text = self.gizmos.get(cls)
        if cls not in NODE_CLASSES and cls not in GROUP_CLASSES and gizmo_text is None:
            raise GraphError(f"node class {cls!r} is not modelled; register it in nuke_graph.NODE_CLASSES "
                             "(knobs and render function, with Foundry's node reference)")
        is_group = cls in GROUP_CLASSES or gizmo_text is not None
        node: Node = Group(self, cls, group) if is_group else Node(self, cls, group)
        node["name"].setValue(self._unique_name(group, cls))
        group.children.append(node)
        for i, src in enumerate(inputs):
            node.setInput(i, src)
        if gizmo_text is not None:  # a gizmo: a group whose knobs and children its .gizmo file defines
            definition = parse(gizmo_text).nodes[0]
            node._gizmo_file = self.gizmo_files.get(cls)
            self._fill(node, definition, skip=("name", "inputs"))
            for child in definition.children:
                self._build(child, node)
        if parsed is not None:
            self._fill(node, parsed, skip=())
            self._built[id(parsed)] = node
            if cls in GROUP_CLASSES:
                for child in parsed.children:
                    self._build(child, node)
        on_create = str(node["onCreate"].value())
        if on_create:
            self.run_python(node, on_create, None)
        return node

    def _fill(self, node: Node, parsed: ParsedNode, skip: Iterable[str]) -> None:
        for spec in parsed.user_knobs:
            node.add_user_knob(spec)
        for name in parsed.order:
            if name in skip:
                continue
            node.load_knob(name, parsed.knobs[name])

    @staticmethod
    def _unique_name(group: Group, cls: str) -> str:
        names = {c.name() for c in group.children}
        i = 1
        while f"{cls}{i}" in names:
            i += 1
        return f"{cls}{i}"

    # ---- Python callbacks
    def run_python(self, node: Node, code: str, knob: Optional[str]) -> None:
        """Run a node's Python with ``nuke.thisNode()`` = node, in the node's group's context."""
        import sys

        self._this.append((node, knob))
        self._context.append(node.parent if node.parent is not None else self._root)
        saved = sys.modules.get("nuke")
        sys.modules["nuke"] = self
        try:
            exec(compile(code, f"<{node.fullname()} python>", "exec"), {"nuke": self, "__name__": "__main__"})
        finally:
            self._context.pop()
            self._this.pop()
            if saved is None:
                sys.modules.pop("nuke", None)
            else:
                sys.modules["nuke"] = saved

    def knob_changed(self, node: Node, knob: str) -> None:
        code = str(node["knobChanged"].value())
        self.log.append(("knobChanged", node.fullname(), knob))
        if code:
            self.run_python(node, code, knob)

    # ---- expressions and TCL
    def evaluate_in(self, node: Node, expression: str, variables: Optional[Dict[str, Any]] = None) -> Any:
        """The value of an expression on ``node`` (``variables``: channels and coordinates of an Expression)."""
        def lookup(path: Tuple[str, ...]) -> Any:
            if len(path) == 1 and variables and path[0] in variables:
                return variables[path[0]]
            return self._knob_for(node, path).expression_value()
        return evaluate_expression(expression, Context(lookup, lambda cmd: self._tcl(node, cmd)))

    def _node_scope(self, node: Node, path: Tuple[str, ...]) -> Tuple[Node, Tuple[str, ...]]:
        """Resolve the node part of a dotted name: ``parent``, ``root``, ``this``, sibling or child names."""
        current: Node = node
        rest = path
        while len(rest) > 1:
            head = rest[0]
            if head == "parent":
                current = current.parent if current.parent is not None else self._root
            elif head == "root":
                current = self._root
            elif head == "this":
                pass
            else:
                scope = current if isinstance(current, Group) and current is not node else current.parent
                found = scope.node(head) if scope is not None else None
                if found is None and isinstance(current, Group):
                    found = current.node(head)
                if found is None:
                    found = self._root.node(head)
                if found is None:
                    raise ExprError(f"{node.fullname()}: no node {head!r} (in {'.'.join(path)})")
                current = found
            rest = rest[1:]
        return current, rest

    def _knob_for(self, node: Node, path: Tuple[str, ...]) -> Any:
        target, rest = self._node_scope(node, path)
        name = rest[0]
        if name in ("width", "height") and target.knob(name) is None:  # a node's format (Nuke: width/height)
            renderer = self._renderers[-1] if self._renderers else Renderer(self)
            # a knob of the node itself reads its input's format (the node's own image would need the knob)
            img = renderer.input(target, 0) if target is node else renderer.image(target)
            return _Const(format_size(img)[0 if name == "width" else 1])
        knob = target.knob(name)
        if knob is None:
            raise ExprError(f"{node.fullname()}: {target.fullname()} has no knob {name!r} (in {'.'.join(path)})")
        return knob

    def _tcl(self, node: Node, command: str) -> str:
        return tcl_eval(command, lambda words: self._tcl_command(node, words))

    def tcl_text(self, node: Node, text: str) -> str:
        """A string knob's text with its ``[...]`` TCL evaluated (EvalString_Knob.evaluate)."""
        return tcl_substitute(text, lambda words: self._tcl_command(node, words))

    def _tcl_command(self, node: Node, words: List[str]) -> str:
        cmd, args = words[0], words[1:]
        if cmd == "exists":  # Nuke TCL: exists NAME -> 1 if the node, knob (or here: the connected input) exists
            path = tuple(args[0].split("."))
            target, rest = self._node_scope(node, path) if len(path) > 1 else (node, path)
            name = rest[0]
            if name.startswith("input") and name[5:].isdigit():
                return "1" if target.input(int(name[5:])) is not None else "0"
            return "1" if target.knob(name) is not None else "0"
        if cmd == "value":  # Nuke TCL: value KNOB -> the knob's value as text (a menu: the item's name)
            knob = self._knob_for(node, tuple(args[0].split(".")))
            value = knob.value()
            return str(value) if not isinstance(value, bool) else ("true" if value else "false")
        if cmd == "plugins" and args[:1] == ["-all"]:  # every file of that name on the plugin path, in order
            return tcl_list([str(p / args[1]) for p in self.plugin_path if (p / args[1]).is_file()])
        if cmd == "lsearch" and args[:1] == ["-inline"]:
            return lsearch_inline(tcl_split(args[1]), args[2])
        if cmd == "python" and args == ["nuke.script_directory()"]:
            return str(self.script_dir or "")
        raise ExprError(f"TCL command {' '.join(words)!r} is not modelled; add it to NukeSession._tcl_command")

    # ---- models and colour
    def cat_record(self, cat_path: str) -> Tuple[str, Dict[str, Any]]:
        """(the .pt, the .cat's knob defaults) of a stand-in .cat: the JSON record tests/support/stand_in_nuke.py's
        CatFileCreator writes (``torchScriptFile`` is the .pt it was made from). What forceValidate loads."""
        if not cat_path or not os.path.isfile(cat_path):
            raise GraphError(f"modelFile {cat_path!r}: no such .cat")
        try:
            record = json.loads(Path(cat_path).read_text())
            pt = record["torchScriptFile"]
            defaults = {name: k["value"] for name, k in record["_custom"].items()}
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
            raise GraphError(f"{cat_path}: not a .cat (the stand-in's CatFileCreator record)") from None
        if not os.path.isfile(pt):
            raise GraphError(f"{cat_path}: its model {pt} is missing")
        return pt, defaults

    def read_file(self, path: str, node: Optional[Node] = None, frame: Optional[int] = None) -> Optional[np.ndarray]:
        """The image at ``path`` (``files`` first, then EXR on disk relative to the script), None if unreadable.
        An in-memory sequence (``files[path]`` a dict frame -> image) holds its first frame before its range and
        its last after it: the Read's default before/after "hold" (Foundry, Nuke Reference Guide, Read node)."""
        if path in self.files:
            held = self.files[path]
            if isinstance(held, dict):
                frames = sorted(held)
                f = frames[0] if frame is None else min(max(int(frame), frames[0]), frames[-1])
                return held[f]
            return held
        full = Path(path) if os.path.isabs(path) else Path(self.script_dir or ".") / path
        if full.suffix.lower() != ".exr" or not full.is_file():
            return None
        try:
            return read_exr_with_window(full)
        except Exception:  # a damaged file: the Read reports an error
            return None

    def cat_model(self, cat_path: str):
        """(the .pt, its TorchScript module, the .cat's knob defaults) of a stand-in .cat."""
        import torch

        pt, defaults = self.cat_record(cat_path)
        if pt not in self._models:
            try:
                self._models[pt] = torch.jit.load(pt, map_location="cpu").eval()
            except RuntimeError as exc:
                raise GraphError(f"{cat_path}: its model {pt} cannot be loaded: {exc}") from None
        return pt, self._models[pt], defaults

    def ocio(self):
        """The OCIO config of the script: the Root's customOCIOConfigPath (a file or an ``ocio://`` built-in)."""
        path = str(self._root["customOCIOConfigPath"].value())
        if self._ocio is None or self._ocio[0] != path:
            import PyOpenColorIO as ocio

            self._ocio = (path, ocio.Config.CreateFromFile(path))
        return self._ocio[1]

    # ---- rendering
    def render(self, node: Node, frame: Optional[int] = None) -> np.ndarray:
        """The node's image at ``frame`` (default: the script's current frame, 1): ``H x W x 4`` float32 RGBA,
        rows top-down."""
        return Renderer(self, frame=self.frame if frame is None else int(frame)).image(node)

    def root_format(self) -> Tuple[int, int]:
        return self._root_format


@dataclass(frozen=True)
class _Const:
    value: float

    def expression_value(self) -> float:
        return float(self.value)


@dataclass
class Renderer:
    """One render: each node's image is computed once (``image`` memoises by node)."""

    session: NukeSession
    memo: Dict[Tuple[int, int], np.ndarray] = field(default_factory=dict)
    frame: int = 1

    def at(self, frame: int) -> Renderer:
        """The same render at another frame (TimeOffset): one memo for every frame."""
        return Renderer(self.session, self.memo, int(frame))

    def image(self, node: Node) -> np.ndarray:
        key = (id(node), self.frame)
        if key not in self.memo:
            self.session._renderers.append(self)
            try:
                self.memo[key] = self._compute(node)
            finally:
                self.session._renderers.pop()
        return self.memo[key]

    def input(self, node: Node, i: int) -> np.ndarray:
        src = node.input(i)
        if src is None:  # an unconnected input is black, in the root format
            w, h = self.session.root_format()
            return np.zeros((h, w, 4), np.float32)
        return self.image(src)

    def _compute(self, node: Node) -> np.ndarray:
        cls = node.Class()
        if node["disable"].value():  # a disabled node passes its input 0 through
            return self.input(node, 0)
        if isinstance(node, Group) and cls not in NODE_CLASSES:  # a gizmo or Group: its Output node
            out = node.output()
            if out is None:
                raise GraphError(f"{node.fullname()}: a group without an Output node")
            return self.image(out)
        return NODE_CLASSES[cls].render(node, self)


class Overscan(np.ndarray):
    """An image whose pixels (its bounding box, an EXR's data window) extend past its format (display window):
    ``window`` = (left, top, width, height) of the format inside the array (array indices, rows top-down).
    Nodes other than Crop see all of its pixels, as Nuke processes a node's whole bounding box; ``width`` and
    ``height`` in expressions are the format's (Nuke's format, not the bbox)."""

    window: Tuple[int, int, int, int]

    @staticmethod
    def of(pixels: np.ndarray, window: Tuple[int, int, int, int]) -> Overscan:
        img = np.ascontiguousarray(pixels, np.float32).view(Overscan)
        img.window = tuple(int(v) for v in window)
        return img

    def __array_finalize__(self, obj) -> None:
        self.window = getattr(obj, "window", (0, 0) + (self.shape[1::-1] if self.ndim >= 2 else (0, 0)))

    def display(self) -> np.ndarray:
        left, top, w, h = self.window
        return np.asarray(self)[top:top + h, left:left + w].copy()


def format_size(img: np.ndarray) -> Tuple[int, int]:
    """(width, height) of an image's format (an Overscan's display window)."""
    if isinstance(img, Overscan):
        return img.window[2], img.window[3]
    return img.shape[1], img.shape[0]


def read_exr_with_window(path: Path) -> np.ndarray:
    """An EXR's RGBA (OpenImageIO); a data window that contains the display window and exceeds it is an
    :class:`Overscan`, any other is placed into the display window (black outside it)."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        raise GraphError(f"cannot open {path}: {oiio.geterror()}")
    try:
        spec = inp.spec()
        pixels = np.asarray(inp.read_image(0, 0, 0, spec.nchannels, "float"), np.float32)
    finally:
        inp.close()
    pixels = pixels.reshape(spec.height, spec.width, spec.nchannels)
    names = list(spec.channelnames)
    rgba = np.zeros((spec.height, spec.width, 4), np.float32)
    for i, c in enumerate("RGBA"):
        if c in names:
            rgba[..., i] = pixels[..., names.index(c)]
    left, top = spec.full_x - spec.x, spec.full_y - spec.y
    contains = left >= 0 and top >= 0 and left + spec.full_width <= spec.width and top + spec.full_height <= spec.height
    if contains and (spec.width, spec.height) != (spec.full_width, spec.full_height):
        return Overscan.of(rgba, (left, top, spec.full_width, spec.full_height))
    out = np.zeros((spec.full_height, spec.full_width, 4), np.float32)
    for row in range(spec.height):  # the data window's rows that fall inside the display window
        y = spec.y + row - spec.full_y
        if 0 <= y < spec.full_height:
            xs = np.arange(spec.width) + spec.x - spec.full_x
            keep = (xs >= 0) & (xs < spec.full_width)
            out[y, xs[keep]] = rgba[row, keep]
    return out


def frame_path(path: str, frame: int, node: Optional[Node] = None) -> str:
    """A Read's file name at ``frame``: ``%0Nd`` / ``####`` replaced by the frame number, which is held to the Read's
    ``first``..``last`` range outside it (Foundry, Nuke Reference Guide, Read: before/after default "hold")."""
    import re

    if node is not None and ("%0" in path or "#" in path):
        frame = int(min(max(frame, node["first"].value()), node["last"].value()))
    path = re.sub(r"%0(\d+)d", lambda m: str(frame).zfill(int(m.group(1))), path)
    return re.sub(r"#+", lambda m: str(frame).zfill(len(m.group())), path)


def fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``img`` placed into a ``height x width`` format at the bottom-left (Nuke's origin), black elsewhere."""
    if img.shape[:2] == (height, width):
        return img
    out = np.zeros((height, width, img.shape[2]), np.float32)
    h, w = min(height, img.shape[0]), min(width, img.shape[1])
    out[height - h:, :w] = img[img.shape[0] - h:, :w]
    return out


def _channel_index(name: str) -> int:
    """``rgba.alpha`` / ``alpha`` / ``a`` -> 3."""
    short = name.split(".")[-1]
    for i, full in enumerate(CHANNELS):
        if short in (full, full[0]):
            return i
    raise GraphError(f"channel {name!r} is not one of rgba")


# --------------------------------------------------------------------------- registered classes


@node_class("Dot", "Nuke User Guide, Dot: passes its input through")
@node_class("Output", "Nuke User Guide, Output: the group's output, its input unchanged")
def _pass_through(node: Node, r: Renderer) -> np.ndarray:
    return r.input(node, 0)


NODE_CLASSES["NoOp"] = NodeClass("NoOp", {}, _pass_through, "Nuke User Guide, NoOp: does nothing to the image")


@node_class("Input", "Nuke User Guide, Input: the group's input number `number` (default 0)",
            {"number": _double(0)})
def _input(node: Node, r: Renderer) -> np.ndarray:
    group = node.parent
    return r.input(group, int(node["number"].value()))


@node_class("Read", "Nuke User Guide, Read: file relative to the project directory; raw = no colour conversion "
            "(the stand-in reads EXR only, whose default colorspace is linear: no conversion either); the image "
            "sits in the Read's `format` (bottom-left aligned; empty: the file's own size)",
            {"file": _string(cls=File_Knob), "raw": _bool(), "first": _double(1), "last": _double(1),
             "colorspace": _string("default"), "format": _string(),
             # the file's own range as Nuke saves it beside first/last (origfirst/origlast, origset)
             "origfirst": _double(1), "origlast": _double(1), "origset": _bool()})
def _read(node: Node, r: Renderer) -> np.ndarray:
    path = node["file"].evaluate()
    if path not in r.session.files:  # an in-memory sequence is filed under its pattern, a file on disk per frame
        path = frame_path(path, r.frame, node)
    img = r.session.read_file(path, node, r.frame)
    if img is None:
        raise GraphError(f"{node.fullname()}: cannot read {path!r} (the stand-in reads EXR files and "
                         "NukeSession.files)")
    if isinstance(img, Overscan):  # its bounding box exceeds its format: the pixels as they are
        return img
    fmt = str(node["format"].value()).split()
    if fmt:
        return fit(img, int(fmt[1]), int(fmt[0]))
    return fit(img, *img.shape[:2])


@node_class("Copy", "Nuke User Guide, Copy: input 0 is B (the output's base), input 1 is A; "
            "channel from<i> of A replaces channel to<i> of B; the format is B's",
            {f"{d}{i}": _string(cls=Channel_Knob) for d in ("from", "to") for i in range(4)})
def _copy(node: Node, r: Renderer) -> np.ndarray:
    b = r.input(node, 0).copy()
    a = fit(r.input(node, 1), *b.shape[:2])
    for i in range(4):
        src, dst = node[f"from{i}"].value(), node[f"to{i}"].value()
        if src and dst:
            b[..., _channel_index(dst)] = a[..., _channel_index(src)]
    return b


#: channel0..channel3 of Expression and MergeExpression: the channels expr<i> writes, a "-" name off (Foundry,
#: Nuke Reference Guide, Expression: by default expr0 writes red, expr1 green, expr2 blue, expr3 alpha).
EXPRESSION_CHANNEL_KNOBS: Dict[str, KnobFactory] = {
    f"channel{i}": _string(default, Channel_Knob)
    for i, default in enumerate(("{rgba.red -rgba.green -rgba.blue none}", "{-rgba.red rgba.green -rgba.blue none}",
                                 "{-rgba.red -rgba.green rgba.blue none}",
                                 "{-rgba.red -rgba.green -rgba.blue rgba.alpha}"))}


def _apply_expressions(node: Node, r: Renderer, out: np.ndarray, variables: Dict[str, Any]) -> np.ndarray:
    """Write each ``expr0..expr3`` of an Expression or MergeExpression into the channels its ``channelN`` names."""
    h, w = out.shape[:2]
    for i in range(4):
        text = node[f"expr{i}"]._value
        targets = _expression_targets(node, i)
        if text and targets:
            value = np.broadcast_to(r.session.evaluate_in(node, text, variables), (h, w))
            for target in targets:
                out[..., target] = value
    return out


def _expression_targets(node: Node, i: int) -> List[int]:
    """The channel indices expr<i> writes: the names of channel<i> without a leading '-' (``none``: none)."""
    names = tcl_split(str(node[f"channel{i}"].value()).strip().strip("{}"))
    return [_channel_index(c) for c in names if c != "none" and not c.startswith("-")]


@node_class("Expression", "Nuke User Guide, Expression: expr0..expr3 compute the channels channel0..channel3 "
            "enable (by default red, green, blue, alpha) from r g b a (the input) and x y (pixel coordinates, "
            "origin bottom-left); an empty one leaves its channel unchanged",
            {**{f"expr{i}": _string() for i in range(4)}, **EXPRESSION_CHANNEL_KNOBS})
def _expression(node: Node, r: Renderer) -> np.ndarray:
    src = r.input(node, 0)
    h, w = src.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    variables = {"r": src[..., 0], "g": src[..., 1], "b": src[..., 2], "a": src[..., 3],
                 "x": xs, "y": (h - 1 - ys)}
    out = src.copy()
    return _apply_expressions(node, r, out, variables)


@node_class("OCIOColorSpace", "Nuke User Guide, OCIOColorSpace: in_colorspace -> out_colorspace of the root's "
            "OCIO config (roles allowed), on rgb; alpha untouched",
            {"channels": _string("rgb", Channel_Knob), "in_colorspace": _string("scene_linear", Colorspace_Knob),
             "out_colorspace": _string("scene_linear", Colorspace_Knob)})
def _ocio(node: Node, r: Renderer) -> np.ndarray:
    if node["channels"].value() != "rgb":
        raise GraphError(f"{node.fullname()}: OCIOColorSpace channels {node['channels'].value()!r} not modelled")
    cfg = r.session.ocio()
    src, dst = node["in_colorspace"].value(), node["out_colorspace"].value()
    for name in (src, dst):
        if cfg.getColorSpace(name) is None:
            raise GraphError(f"{node.fullname()}: colour space {name!r} is not in the OCIO config")
    out = r.input(node, 0).copy()
    rgb = np.ascontiguousarray(out[..., :3], np.float32)
    cfg.getProcessor(src, dst).getDefaultCPUProcessor().applyRGB(rgb)
    out[..., :3] = rgb
    return out


@node_class("Switch", "Nuke User Guide, Switch: passes input `which` (clamped to the inputs there are)",
            {"which": _double(0)})
def _switch(node: Node, r: Renderer) -> np.ndarray:
    which = int(math.floor(node["which"].getValue()))
    return r.input(node, min(max(which, 0), max(node.inputs() - 1, 0)))


@node_class("Shuffle", "Nuke User Guide, Shuffle: each of red/green/blue/alpha names the input channel "
            "(or black/white) it takes", {c: _string(c, Channel_Knob) for c in CHANNELS})
def _shuffle(node: Node, r: Renderer) -> np.ndarray:
    src = r.input(node, 0)
    out = np.empty_like(src)
    for i, c in enumerate(CHANNELS):
        choice = node[c].value()
        if choice in ("black", "white"):
            out[..., i] = float(choice == "white")
        else:
            out[..., i] = src[..., _channel_index(choice)]
    return out


@node_class("Premult", "Nuke User Guide, Premult: rgb multiplied by alpha",
            {"channels": _string("rgb", Channel_Knob), "alpha": _string("rgba.alpha", Channel_Knob)})
def _premult(node: Node, r: Renderer) -> np.ndarray:
    if node["channels"].value() != "rgb":
        raise GraphError(f"{node.fullname()}: Premult channels {node['channels'].value()!r} not modelled")
    out = r.input(node, 0).copy()
    out[..., :3] *= out[..., _channel_index(node["alpha"].value()), None]
    return out


@node_class("Crop", "Nuke User Guide, Crop: box x y r t (origin bottom-left); outside it black when `crop` "
            "is on, the edge pixels repeated when off; the format is kept unless `reformat`",
            {"box": lambda node, name: Box_Knob(node, name, []), "crop": _bool(True), "reformat": _bool(False)})
def _crop(node: Node, r: Renderer) -> np.ndarray:
    if node["reformat"].value():
        raise GraphError(f"{node.fullname()}: Crop with reformat is not modelled")
    src = r.input(node, 0)
    if isinstance(src, Overscan):
        # the box is in format coordinates: the pixels past the format are cut (this Crop keeps the format)
        x0, y0, x1, y1 = node["box"].value()
        w_fmt, h_fmt = format_size(src)
        if x0 > 0 or y0 > 0 or x1 < w_fmt or y1 < h_fmt:
            raise GraphError(f"{node.fullname()}: a Crop inside the format of an overscan image is not modelled")
        src = src.display()
    h, w = src.shape[:2]
    x0, y0, x1, y1 = node["box"].value()
    cols = np.arange(w) + 0.5
    rows_y = (h - 1 - np.arange(h)) + 0.5  # Nuke y of each array row's pixel centre
    inside = (cols[None, :] >= x0) & (cols[None, :] < x1) & (rows_y[:, None] >= y0) & (rows_y[:, None] < y1)
    if node["crop"].value():
        return np.where(inside[..., None], src, 0.0).astype(np.float32)
    ci = np.clip(np.arange(w), math.ceil(x0 - 0.5), math.ceil(x1 - 0.5) - 1)
    yi = np.clip(h - 1 - np.arange(h), math.ceil(y0 - 0.5), math.ceil(y1 - 0.5) - 1)
    return src[(h - 1 - yi)[:, None], ci[None, :]]


@node_class("Reformat", "Nuke User Guide, Reformat: type 'to box' sizes the output box_width x box_height; "
            "resize distort scales each axis; filter impulse takes the nearest input pixel at the output "
            "pixel's centre (input index floor((i + 0.5) * in / out))",
            {"type": _menu(["to format", "to box", "scale"], "to format"), "box_width": _double(0),
             "box_height": _double(0), "box_fixed": _bool(), "resize": _menu(
                 ["none", "width", "height", "fit", "fill", "distort"], "width"),
             "filter": _string("Cubic"), "format": _string(), "black_outside": _bool(True)})
def _reformat(node: Node, r: Renderer) -> np.ndarray:
    if node["type"].value() != "to box" or node["resize"].value() != "distort" or \
            node["filter"].value().lower() != "impulse":
        raise GraphError(f"{node.fullname()}: only Reformat 'to box' + 'distort' + 'impulse' is modelled")
    src = r.input(node, 0)
    h_in, w_in = src.shape[:2]
    w_out, h_out = int(node["box_width"].value()), int(node["box_height"].value())
    cols = np.minimum(((np.arange(w_out) + 0.5) * w_in / w_out).astype(int), w_in - 1)
    # rows counted from the bottom, as Nuke's y
    ys = np.minimum(((np.arange(h_out) + 0.5) * h_in / h_out).astype(int), h_in - 1)
    rows = (h_in - 1 - ys)[::-1]
    return src[rows[:, None], cols[None, :]]


@node_class("TimeOffset", "Nuke Reference Guide, TimeOffset: time_offset (frames) moves the clip in time, positive "
            "later: the output at frame t is the input at t - time_offset", {"time_offset": _double(0)})
def _time_offset(node: Node, r: Renderer) -> np.ndarray:
    offset = node["time_offset"].value()
    if offset != int(offset):
        raise GraphError(f"{node.fullname()}: a fractional time_offset {offset} is not modelled")
    return r.at(r.frame - int(offset)).input(node, 0)


@node_class("MergeExpression", "Nuke Reference Guide, MergeExpression: input 0 is B, input 1 is A (as every Merge "
            "node); expr0..expr3 compute the channels their channel0..channel3 knobs enable (a name without '-'), "
            "from Ar Ag Ab Aa and Br Bg Bb Ba (and x y); other channels are B's; the output format is B's",
            {**{f"expr{i}": _string() for i in range(4)},
             **EXPRESSION_CHANNEL_KNOBS})
def _merge_expression(node: Node, r: Renderer) -> np.ndarray:
    b = r.input(node, 0)
    a = fit(r.input(node, 1), *b.shape[:2])
    h, w = b.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    variables = {f"{side}{c}": img[..., i] for side, img in (("A", a), ("B", b)) for i, c in enumerate("rgba")}
    variables.update(x=xs, y=h - 1 - ys)
    out = b.copy()
    return _apply_expressions(node, r, out, variables)


@node_class("Transform", "Nuke Reference Guide, Transform: translate x y moves the image (y up); filter impulse keeps "
            "pixel values (a whole-pixel translate is an exact shift); black_outside (default on) makes the area the "
            "moved image no longer covers black, off repeats its edge pixels (what Nuke does outside a bounding box: "
            "Foundry, 'Adjusting the bounding box')",
            {"translate": lambda node, name: Box_Knob(node, name, ["0", "0"]), "filter": _string("Cubic"),
             "black_outside": _bool(True)})
def _transform(node: Node, r: Renderer) -> np.ndarray:
    tx, ty = node["translate"].value()
    if tx != int(tx) or ty != int(ty) or node["filter"].value().lower() != "impulse":
        raise GraphError(f"{node.fullname()}: only a whole-pixel translate with filter impulse is modelled")
    src = r.input(node, 0)
    h, w = src.shape[:2]
    tx, ty = int(tx), int(ty)
    cols = np.arange(w) - tx  # output column x reads input column x - tx
    rows = np.arange(h) + ty  # array rows count down: y up by ty reads the row ty further down
    out = src[np.clip(rows, 0, h - 1)[:, None], np.clip(cols, 0, w - 1)[None, :]]
    if node["black_outside"].value():
        covered = ((cols >= 0) & (cols < w))[None, :] & ((rows >= 0) & (rows < h))[:, None]
        out = np.where(covered[..., None], out, 0.0).astype(np.float32)
    return out


@node_class("Constant", "Nuke User Guide, Constant: the colour `color` (r g b a) over the format (here the root's)",
            {"color": lambda node, name: Box_Knob(node, name, ["0", "0", "0", "0"]), "format": _string()})
def _constant(node: Node, r: Renderer) -> np.ndarray:
    if node["format"].value():
        raise GraphError(f"{node.fullname()}: Constant format {node['format'].value()!r} not modelled")
    w, h = r.session.root_format()
    return np.broadcast_to(np.float32(node["color"].value()), (h, w, 4)).copy()


_INFERENCE_KNOBS: Dict[str, KnobFactory] = {
    "modelFile": _string(cls=File_Knob), "useGPUIfAvailable": _bool(True), "halfPrecision": _bool(False),
    "serialiseKnob": _string(),
    # the Inference node shows the local GPU's name (Nuke: "Not available" without one)
    "gpuName": lambda node, name: Text_Knob(node, name, node.session.gpu_name),
}


@node_class("Inference", "Nuke User Guide, Inference: runs the .cat's model on channelsIn (rgba here) and "
            "writes channelsOut; .cat knobs restored from serialiseKnob; halfPrecision only on the GPU",
            _INFERENCE_KNOBS)
def _inference(node: Node, r: Renderer) -> np.ndarray:
    import torch

    session = r.session
    pt, module, _defaults = session.cat_model(node["modelFile"].evaluate())
    values = cat_knob_values(node)
    gpu = session.gpu and node["useGPUIfAvailable"].value()
    half = bool(gpu and node["halfPrecision"].value())
    src = r.input(node, 0)
    key = (pt, tuple(sorted(values.items())), half, src.shape, hash(src.tobytes()))
    if key not in session.inference_cache:
        for name, v in values.items():
            setattr(module, name, v)
        x = torch.from_numpy(np.ascontiguousarray(src)).permute(2, 0, 1)[None]
        # The profiling executor re-specialises the graph whenever a knob attribute changes (seconds per call
        # on a CPU); the unoptimised executor runs the same ops of the same saved graph.
        with torch.no_grad(), torch.jit.optimized_execution(False):
            m = module.half() if half else module.float()
            y = m(x.half() if half else x).float()[0].permute(1, 2, 0).numpy()
        module.float()
        session.inference_cache[key] = np.ascontiguousarray(y, np.float32)
    return session.inference_cache[key]


def cat_knob_values(node: Node) -> Dict[str, Any]:
    """The .cat knob values an Inference node runs with: the .cat's own, then its serialiseKnob entries (each a
    value or a ``{expression}`` evaluated now, converted to the .cat knob's type)."""
    session = node.session
    cat = node["modelFile"].evaluate()
    _pt, defaults = session.cat_record(cat)
    values = dict(defaults)
    for name, link in parse_serialise_knob(node["serialiseKnob"].value()).items():
        text = link.strip()
        expr = text[1:-1] if text.startswith("{") and text.endswith("}") else None
        if name not in defaults:
            raise GraphError(f"{node.fullname()}: serialiseKnob sets {name!r}, which {cat} does not have")
        raw = session.evaluate_in(node, expr) if expr is not None else float(text)
        values[name] = type(defaults[name])(raw)
    return values


NODE_CLASSES["Write"] = NodeClass("Write", {k: _string() for k in (
    "channels", "file", "file_type", "datatype", "raw", "create_directories", "use_limit", "first", "last")},
    _pass_through, "Nuke User Guide, Write: renders its input to `file` (the model renders its input)")


# --------------------------------------------------------------------------- helpers for tests


def write_cat(cat_path: Path, pt_path: Path, knobs: Sequence[str]) -> Path:
    """A stand-in .cat: the record the stand-in CatFileCreator writes (``torchScriptFile`` = the .pt,
    ``_custom`` = the .cat's knobs with the .pt's values as their defaults)."""
    import torch

    module = torch.jit.load(str(pt_path), map_location="cpu")
    cat_path.parent.mkdir(parents=True, exist_ok=True)
    cat_path.write_text(json.dumps({"torchScriptFile": str(pt_path), "catFile": str(cat_path),
                                    "channelsIn": "rgba.red, rgba.green, rgba.blue, rgba.alpha",
                                    "channelsOut": "rgba.red, rgba.green, rgba.blue, rgba.alpha",
                                    "_custom": {k: {"value": getattr(module, k)} for k in knobs}}))
    return cat_path


def instance_script(cls: str, knobs: Dict[str, str], inputs: Sequence[Optional[str]], name: str = "Node1") -> str:
    """A script with one Read per named input file (None = unconnected) feeding one ``cls`` node.

    ``knobs``: knob name -> value as a script writes it (menus by item name, quoted when needed).
    """
    lines = ["version 15.1 v1"]
    pushes = []
    for i, path in enumerate(inputs):
        if path is None:
            pushes.append("push 0")
            continue
        lines += ["Read {", " inputs 0", f' file "{path}"', " raw true", f" name Read_{i}", "}",
                  f"set N{i} [stack 0]"]
        pushes.append(f"push $N{i}")
    lines += list(reversed(pushes))  # input 0 is the top of the stack
    body = [f" inputs {len(inputs)}"] + [f" {k} {v}" for k, v in knobs.items()] + [f" name {name}"]
    lines += [f"{cls} {{"] + body + ["}"]
    return "\n".join(lines) + "\n"
